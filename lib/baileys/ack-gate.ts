/**
 * Acknowledge an inbound WhatsApp message only once it is durable (as the Cloud API path answers Meta's
 * webhook only after Temporal has the message).
 *
 * Baileys sends a message's receipt — the server's signal to drop it from the device's queue — *before* it
 * emits `messages.upsert`, and offers no hook in between. So the gate works one layer down: from the moment
 * a `<message>` frame arrives (the socket's `frame` event fires before Baileys handles it) until Wharf has
 * handed that message to Temporal, every frame the socket writes is queued in order, with its write reported
 * done so Baileys carries on. When no message is pending any more, the queue goes out. If the process dies
 * first, the receipts die with it and WhatsApp redelivers the messages at the next login (the chat workflow
 * drops the duplicates by id). Order is kept because the Noise transport numbers every frame.
 *
 * Baileys may keep upserts in its event buffer until something else happens (the end of the offline queue,
 * its initial history sync, which waits up to 20 s and needs the socket's own queries answered). A held
 * write must never wait on that: when a message is still held after `unstickAfterMs`, the gate flushes
 * Baileys' event buffer (`unstick`), which emits the upsert now. A message Baileys never upserts (a nack, an
 * ignored sender) is released after `maxHoldMs`, so a hold can delay the socket's writes but never stop them.
 */

/** A decoded frame as the socket's `frame` event gives it (binary nodes; raw bytes before login). */
interface FrameNode {
  tag?: unknown;
  attrs?: Record<string, string | undefined>;
}

/** The raw websocket under Baileys' client (a `ws` WebSocket). */
export interface RawSocket {
  send(data: unknown, cb?: (err?: Error) => void): void;
}

/** The part of Baileys' socket client the gate uses. */
export interface GateableClient {
  on(event: 'frame', listener: (frame: FrameNode) => void): unknown;
  socket?: RawSocket | null;
}

/** Options of the gate. */
export interface AckGateOptions {
  /** Longest a message may hold the socket's writes. @default 30_000 */
  maxHoldMs?: number;
  /** Senders Baileys acks without upserting (the session's `shouldIgnoreJid`): never held. */
  ignore?: (jid: string) => boolean;
  /** Called when a hold ran out before the message was released. */
  onExpired?: (id: string) => void;
  /** Makes Baileys emit what its event buffer holds (`sock.ev.flush`). */
  unstick?: () => void;
  /** How often `unstick` is called while a message waits for its upsert. @default 500 */
  unstickAfterMs?: number;
}

/** Holds a socket's writes while inbound messages are not durable yet. */
export class AckGate {
  private readonly held = new Map<string, { expire: NodeJS.Timeout; unstick: NodeJS.Timeout }>();
  private queue: unknown[] = [];
  private write: ((data: unknown) => void) | null = null;
  private readonly maxHoldMs: number;

  constructor(private readonly opts: AckGateOptions = {}) {
    this.maxHoldMs = opts.maxHoldMs ?? 30_000;
  }

  /** Installs the gate on a Baileys client; false when the client has no raw socket (a test fake). */
  attach(baileysClient: object | undefined): boolean {
    // Baileys types its raw socket `protected`; it is a plain property at run time.
    const client = baileysClient as GateableClient | undefined;
    const raw = client?.socket;
    if (!client || !raw || typeof raw.send !== 'function' || typeof client.on !== 'function') return false;
    const original = raw.send.bind(raw);
    // (The callback is kept: a socket closed by then reports the error to nobody, and WhatsApp redelivers.)
    this.write = (data) => original(data, () => undefined);
    raw.send = (data: unknown, cb?: (err?: Error) => void) => {
      if (this.held.size === 0) return original(data, cb);
      this.queue.push(data);
      cb?.();
    };
    client.on('frame', (frame) => {
      if (frame?.tag !== 'message') return;
      const id = frame.attrs?.id;
      const from = frame.attrs?.from ?? '';
      if (id && !this.opts.ignore?.(from)) this.hold(id);
    });
    return true;
  }

  /** Messages holding the socket's writes now. */
  get holding(): number {
    return this.held.size;
  }

  private hold(id: string): void {
    if (this.held.has(id)) return;
    const expire = setTimeout(() => {
      this.opts.onExpired?.(id);
      this.release([id]);
    }, this.maxHoldMs);
    // Repeats: the upsert may land in a buffer Baileys opens only after this message arrived.
    const unstick = setInterval(() => {
      if (this.held.has(id)) this.opts.unstick?.();
    }, this.opts.unstickAfterMs ?? 500);
    expire.unref();
    unstick.unref();
    this.held.set(id, { expire, unstick });
  }

  /** These messages are durable (or were dropped on purpose): their holds end. */
  release(ids: Iterable<string>): void {
    for (const id of ids) {
      const timers = this.held.get(id);
      if (!timers) continue;
      clearTimeout(timers.expire);
      clearInterval(timers.unstick);
      this.held.delete(id);
    }
    if (this.held.size === 0 && this.queue.length && this.write) {
      const queued = this.queue;
      this.queue = [];
      for (const data of queued) this.write(data);
    }
  }

  /** Drops everything (the socket is gone): nothing queued is sent, so WhatsApp redelivers. */
  discard(): void {
    for (const t of this.held.values()) {
      clearTimeout(t.expire);
      clearInterval(t.unstick);
    }
    this.held.clear();
    this.queue = [];
    this.write = null;
  }
}
