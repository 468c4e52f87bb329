/**
 * A fake Baileys `makeWASocket` for tests. Each socket behaves like Baileys 7 as far as the session uses it:
 * its own `creds.update` listener merges updates into `config.auth.creds` before anyone else sees them;
 * `connection.update {connection: 'connecting'}` comes on the next tick; a linked socket then opens (as a
 * real reconnect with valid creds does) and an unlinked one shows a QR; `end(err)` emits
 * `connection.update {connection: 'close', lastDisconnect: {error}}` with a Boom-shaped error and then drops
 * every listener; `sendMessage` echoes the sent message as `messages.upsert` of type `append`
 * (`emitOwnEvents`); `requestPairingCode` sets `creds.me` and `creds.pairingCode` and emits `creds.update`.
 *
 * Test helpers drive the rest: `emitQr`, `scan` (the phone scanned the QR / entered the code), `open`,
 * `close(statusCode)`, `unreachable()`, `receive(messages, type)`.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { BaileysEventMap, UserFacingSocketConfig, WAMessage } from '@whiskeysockets/baileys';
import type { MakeSocket, SessionSocket } from '../../activities/personal-session/session-registry.js';

/** An error shaped like Baileys' Boom: `output.statusCode`, optional `data`. */
export type BoomLike = Error & {
  isBoom: true;
  output: { statusCode: number; payload: { statusCode: number; message: string } };
  data?: unknown;
};

/** Builds a Boom-like error. */
export function boom(message: string, statusCode: number, data?: unknown): BoomLike {
  return Object.assign(new Error(message), {
    isBoom: true as const,
    output: { statusCode, payload: { statusCode, message } },
    data,
  });
}

/** Baileys' event emitter as far as it is used: `on`/`off`/`emit`/`removeAllListeners`, plus `process`. */
export class FakeEventEmitter {
  private readonly ee = new EventEmitter().setMaxListeners(0);
  on<T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void {
    this.ee.on(event, listener);
  }
  off<T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void {
    this.ee.off(event, listener);
  }
  emit<T extends keyof BaileysEventMap>(event: T, arg: BaileysEventMap[T]): boolean {
    this.ee.emit('event', { [event]: arg });
    return this.ee.emit(event, arg);
  }
  removeAllListeners(event?: keyof BaileysEventMap): void {
    if (event) this.ee.removeAllListeners(event);
    else this.ee.removeAllListeners();
  }
  /** Like Baileys' `ev.process`: the handler receives a map of the events that happened. */
  process(handler: (events: Partial<BaileysEventMap>) => void | Promise<void>): () => void {
    const listener = (map: Partial<BaileysEventMap>) => void handler(map);
    this.ee.on('event', listener);
    return () => this.ee.off('event', listener);
  }
  listenerCount(event: keyof BaileysEventMap): number {
    return this.ee.listenerCount(event);
  }
}

/** One recorded `sendMessage` call: a text, or a file (`image`/`document`/`audio`/`video` bytes, `text` then absent). */
export interface SentMessage {
  jid: string;
  content: { text: string } & Partial<Record<'image' | 'document' | 'audio' | 'video', Buffer>> & {
      caption?: string;
      mimetype?: string;
      fileName?: string;
    };
  options?: { messageId?: string };
  id: string;
}

/** Options of `scan`. */
export interface ScanOptions {
  name?: string;
  lid?: string;
  device?: number;
  /** Like a real first link: close with 515 (restart required) instead of opening; the session reconnects. */
  restart?: boolean;
  /** The phone entered a pairing code instead of scanning (sets `creds.registered`). */
  viaCode?: boolean;
}

let qrSeq = 0;

/** A fake socket; the factory creates one per `makeSocket` call. */
export class FakeSocket implements SessionSocket {
  readonly ev = new FakeEventEmitter();
  readonly sent: SentMessage[] = [];
  readonly pairingRequests: string[] = [];
  readonly qrs: string[] = [];
  ended = false;
  endError: Error | undefined;
  isOpen = false;
  /** When the session created this socket (ms since the epoch): reconnect spacing is measured with it. */
  readonly createdAt = Date.now();

  constructor(
    readonly config: UserFacingSocketConfig,
    readonly index: number,
    private readonly factory: FakeBaileys,
  ) {
    // Baileys registers this before handing the socket out: creds are always current for other listeners.
    this.ev.on('creds.update', (update) => Object.assign(this.config.auth.creds, update));
    process.nextTick(() => {
      if (this.ended) return;
      this.ev.emit('connection.update', {
        connection: 'connecting',
        receivedPendingNotifications: false,
        qr: undefined,
      });
      process.nextTick(() => {
        if (this.ended) return;
        if (factory.onConnect) factory.onConnect(this);
        else if (this.linked && factory.autoOpenLinked) this.open();
        else if (!this.linked && factory.autoQr) this.emitQr();
      });
    });
  }

  /** The creds this socket was given (and that Baileys would mutate). */
  get creds() {
    return this.config.auth.creds;
  }
  /** True when the creds are those of a linked device. */
  get linked(): boolean {
    return !!this.creds.account && !!this.creds.me?.id;
  }
  get user() {
    return this.creds.me;
  }

  /** Shows a QR (as Baileys does when WhatsApp sends pair-device refs); returns it. */
  emitQr(
    qr = `2@fake-ref-${++qrSeq},${randomBytes(8).toString('base64')},${randomBytes(8).toString('base64')},${randomBytes(8).toString('base64')}`,
  ): string {
    this.qrs.push(qr);
    this.ev.emit('connection.update', { qr });
    return qr;
  }

  /** The phone linked this device: pair-success creds, then open (or 515 restart with `restart`). */
  scan(selfNumber: string, opts: ScanOptions = {}): void {
    const digits = selfNumber.replace(/\D/g, '');
    const lid = opts.lid ?? `${digits.split('').reverse().join('')}99@lid`;
    this.ev.emit('creds.update', {
      me: { id: `${digits}:${opts.device ?? 7}@s.whatsapp.net`, name: opts.name ?? 'Owner', lid },
      account: {
        details: randomBytes(32),
        accountSignatureKey: randomBytes(32),
        accountSignature: randomBytes(64),
        deviceSignature: randomBytes(64),
      },
      signalIdentities: [{ identifier: { name: lid, deviceId: 0 }, identifierKey: randomBytes(33) }],
      platform: 'android',
      ...(opts.viaCode ? { registered: true } : {}),
    });
    this.ev.emit('connection.update', { isNewLogin: true, qr: undefined });
    if (opts.restart) this.close(515, 'Stream Errored (restart required)');
    else this.open();
  }

  /** Login succeeded: like Baileys' `CB:success`. */
  open(): void {
    if (this.ended) return;
    this.isOpen = true;
    this.ev.emit('creds.update', { me: { ...this.creds.me!, lid: this.creds.me?.lid } });
    this.ev.emit('connection.update', { connection: 'open' });
    this.ev.emit('connection.update', { receivedPendingNotifications: true });
  }

  /** Closes with a DisconnectReason status code, as WhatsApp (or Baileys) would. */
  close(statusCode: number, message = `Connection Failure (${statusCode})`, data?: unknown): void {
    void this.end(boom(message, statusCode, data));
  }

  /** The network cannot reach WhatsApp: the WebSocket error Baileys maps to 408. */
  unreachable(host = 'web.whatsapp.com'): void {
    const cause = Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    void this.end(boom(`WebSocket Error (${cause.message})`, 408, cause));
  }

  /** Messages arrive live (`notify`) or as kept while the device was offline (`append`). */
  receive(messages: WAMessage[], type: 'notify' | 'append' = 'notify'): void {
    this.ev.emit('messages.upsert', { messages, type });
  }

  async sendMessage(
    jid: string,
    content: SentMessage['content'],
    options?: { messageId?: string },
  ): Promise<WAMessage | undefined> {
    if (this.ended || !this.isOpen) throw boom('Connection Closed', 428);
    const id = options?.messageId ?? `3EB0${randomBytes(8).toString('hex').toUpperCase()}`;
    this.sent.push({ jid, content, options, id });
    const msg: WAMessage = {
      key: { remoteJid: jid, fromMe: true, id },
      message: content.image
        ? { imageMessage: { caption: content.caption, mimetype: content.mimetype } }
        : content.document
          ? { documentMessage: { caption: content.caption, mimetype: content.mimetype, fileName: content.fileName } }
          : { extendedTextMessage: { text: content.text } },
      messageTimestamp: Math.floor(Date.now() / 1000),
      status: 1,
    };
    // emitOwnEvents: Baileys upserts our own message locally as `append`.
    process.nextTick(() => this.ev.emit('messages.upsert', { messages: [msg], type: 'append' }));
    return msg;
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    this.pairingRequests.push(phoneNumber);
    if (this.factory.pairingError) throw this.factory.pairingError;
    const code = this.factory.pairingCode;
    this.creds.pairingCode = code;
    this.creds.me = { id: `${phoneNumber}@s.whatsapp.net`, name: '~' };
    this.ev.emit('creds.update', this.creds);
    return code;
  }

  async end(error: Error | undefined): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.isOpen = false;
    this.endError = error;
    this.ev.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
    this.ev.removeAllListeners();
  }

  async logout(msg?: string): Promise<void> {
    await this.end(boom(msg ?? 'Intentional Logout', 401));
  }
}

/** The fake factory and what it recorded. */
export interface FakeBaileys {
  readonly sockets: FakeSocket[];
  /** Pass as `makeSocket`. */
  readonly makeSocket: MakeSocket;
  /** Open a socket whose creds are linked as soon as it connects (default true). */
  autoOpenLinked: boolean;
  /** Show a QR as soon as an unlinked socket connects (default true). */
  autoQr: boolean;
  /** Overrides the automatic behaviour after `connecting` for every new socket. */
  onConnect: ((s: FakeSocket) => void) | null;
  pairingCode: string;
  pairingError: Error | null;
  /** The latest socket. */
  last(): FakeSocket;
  /** Resolves with socket number `index` (0-based) once it exists. */
  waitForSocket(index: number, timeoutMs?: number): Promise<FakeSocket>;
}

/** Creates a fake `makeWASocket`. */
export function createFakeBaileys(opts: { autoOpenLinked?: boolean; autoQr?: boolean } = {}): FakeBaileys {
  const waiters: Array<() => void> = [];
  const fake: FakeBaileys = {
    sockets: [],
    autoOpenLinked: opts.autoOpenLinked ?? true,
    autoQr: opts.autoQr ?? true,
    onConnect: null,
    pairingCode: 'ABCD1234',
    pairingError: null,
    makeSocket: (config) => {
      const s = new FakeSocket(config, fake.sockets.length, fake);
      fake.sockets.push(s);
      for (const w of waiters.splice(0)) w();
      return s;
    },
    last() {
      const s = fake.sockets.at(-1);
      if (!s) throw new Error('no socket was created yet');
      return s;
    },
    async waitForSocket(index, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!fake.sockets[index]) {
        if (Date.now() > deadline)
          throw new Error(`socket #${index} was not created within ${timeoutMs} ms (${fake.sockets.length} so far)`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return fake.sockets[index];
    },
  };
  return fake;
}

/** Options of `waMessage`. */
export interface WaMessageInput {
  /** Chat jid (`155…@s.whatsapp.net`, `…@lid`, `…@g.us`). */
  remoteJid: string;
  text?: string;
  id?: string;
  fromMe?: boolean;
  participant?: string;
  participantAlt?: string;
  remoteJidAlt?: string;
  pushName?: string;
  message?: WAMessage['message'];
  timestamp?: number;
}

/** A Baileys message as `messages.upsert` carries it. */
export function waMessage(m: WaMessageInput): WAMessage {
  return {
    key: {
      remoteJid: m.remoteJid,
      fromMe: m.fromMe ?? false,
      id: m.id ?? `WA${randomBytes(8).toString('hex').toUpperCase()}`,
      ...(m.participant ? { participant: m.participant } : {}),
      ...(m.participantAlt ? { participantAlt: m.participantAlt } : {}),
      ...(m.remoteJidAlt ? { remoteJidAlt: m.remoteJidAlt } : {}),
    },
    message: m.message ?? { conversation: m.text ?? '' },
    messageTimestamp: m.timestamp ?? Math.floor(Date.now() / 1000),
    ...(m.pushName ? { pushName: m.pushName } : {}),
  };
}
