/**
 * The personal-account (Baileys) session: one long-running, heartbeating activity per `whatsapp_user`
 * channel holds the WhatsApp Web socket (SPEC §2, §5). It reports every state change to the channel
 * workflow with the `sessionUpdate` signal, keeps the current QR (or pairing code) in `session_link` for the
 * API, keeps the auth state in the store (encrypted, written on every `creds.update`), hands inbound
 * messages to the per-chat workflows exactly like the Cloud webhook does, and reconnects by itself on
 * transient drops with capped exponential backoff and full jitter.
 *
 * Sends for the channel run on the worker that holds the socket: `sendText` is registered on this process's
 * own task queue (`sessionQueue`), which the session reports when it connects.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import makeWASocket, {
  DisconnectReason,
  generateMessageIDV2,
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  isLidUser,
  jidDecode,
  makeCacheableSignalKeyStore,
  type BaileysEventMap,
  type UserFacingSocketConfig,
  type WAMessage,
  type proto,
} from '@whiskeysockets/baileys';
import { AckGate } from '../../lib/baileys/ack-gate.js';
import { createStoreAuthState, ownsAuthState, type StoreAuthState } from '../../lib/baileys/auth-state.js';
import { addressToJid, normalizeWaMessage } from '../../lib/baileys/normalize.js';
import { installSignatureCheck, setCertRoot } from '../../lib/baileys/signature-check.js';
import { FAILURE } from '../../lib/errors.js';
import { deliverInbound } from '../../lib/inbound-delivery.js';
import type { Logger } from '../../lib/logger.js';
import type { Db } from '../../lib/store/db.js';
import type { Store } from '../../lib/store/store.js';
import type { InboundMessage } from '../../lib/types.js';
import { sessionUpdate, type SessionUpdate } from '../../workflows/channel-messages.js';

/** The part of Baileys' event emitter the session uses. */
export interface SessionSocketEvents {
  on<T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void;
  off<T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void;
  /** Emits what Baileys' event buffer holds now (absent in test fakes). */
  flush?(): boolean;
}

/** The part of a Baileys socket (`WASocket`) the session uses; the test fake implements exactly this. */
export interface SessionSocket {
  ev: SessionSocketEvents;
  readonly user?: { id: string; lid?: string; name?: string } | undefined;
  /** Baileys' websocket client: inbound receipts are held until the message is durable (absent in test fakes). */
  readonly ws?: object;
  /** Baileys' LID ↔ phone-number mapping (what WhatsApp told this device); absent in test fakes. */
  readonly signalRepository?: { lidMapping: { getPNForLID(lid: string): Promise<string | null> } };
  sendMessage(jid: string, content: { text: string }, options?: { messageId?: string }): Promise<WAMessage | undefined>;
  requestPairingCode(phoneNumber: string): Promise<string>;
  end(error: Error | undefined): void | Promise<void>;
}

/** Creates a socket from a Baileys config (`makeWASocket` in production; it ignores `meta`). */
export type MakeSocket = (config: UserFacingSocketConfig, meta?: { channelId: string }) => SessionSocket;

/** Ids (and texts) of messages this session sent, most recent kept: echoes are never inbound. */
export class RecentSends {
  private readonly items = new Map<string, string>();
  constructor(private readonly capacity = 5000) {}
  add(id: string, text = ''): void {
    this.items.delete(id);
    this.items.set(id, text);
    if (this.items.size > this.capacity) this.items.delete(this.items.keys().next().value as string);
  }
  has(id: string): boolean {
    return this.items.has(id);
  }
  text(id: string): string | undefined {
    return this.items.get(id);
  }
  get size(): number {
    return this.items.size;
  }
}

/** A live (open) session in this process. */
export interface LiveSession {
  channelId: string;
  socket: SessionSocket;
  sentIds: RecentSends;
  /** The linked account's jid and E.164 address. */
  selfJid: string;
  selfAddress: string;
  /** Chats that wrote to this session (Wharf only writes to a chat that wrote first). */
  chats: Set<string>;
  openedAt: string;
}

/** Backoff settings for transient reconnects. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** The delay before reconnect number `attempt` (0-based): full jitter over a capped exponential. */
export function backoffDelay(
  attempt: number,
  { initialMs, maxMs }: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

/** What the session activities need. */
export interface SessionActivityDeps {
  store: Store;
  db: Db;
  secretKey: Buffer;
  client: Client;
  /** The main Wharf task queue (chat workflows are started there). */
  taskQueue: string;
  /** This worker's own task queue: `sendText` is registered there; sends for open sessions go there. */
  sessionQueue: string;
  log: Logger;
  /** Socket factory; Baileys' `makeWASocket` unless a test injects a fake. */
  makeSocket?: MakeSocket;
  /** The WhatsApp Web websocket URL (`WHARF_WA_URL`); Baileys' own when unset. */
  waUrl?: string;
  /** The Noise certificate root to trust (`WHARF_WA_CERT_ROOT`, 32 bytes); WhatsApp's when unset. Process-wide. */
  waCertRoot?: Buffer;
  /** Extra Baileys socket options, applied last (e.g. `waWebSocketUrl`, `agent` for a proxy). */
  socketConfig?: Partial<UserFacingSocketConfig>;
  /** Reconnect backoff (default 1 s → 60 s). */
  backoff?: BackoffOptions;
  /** Heartbeat period of `runSession` (default 5 s; keep it well under the activity's heartbeatTimeout). */
  heartbeatMs?: number;
  /** Random source of the jitter (tests pin it). */
  random?: () => number;
  /** Refuse sends to chats that never wrote to the channel (default true). */
  firstContactGuard?: boolean;
  /** Test seam: awaited before inbound messages go to Temporal (a test holds it to see what WhatsApp was told). */
  beforeDeliver?: (messageIds: string[]) => Promise<void>;
  /** Test seam: while this returns false the activity stops heartbeating (simulates a hung or dead worker). */
  heartbeatGate?: () => boolean;
}

/** Input of `runSession`. */
export interface RunSessionInput {
  channelId: string;
  /** E.164 number: link with WhatsApp's phone-number pairing code instead of the QR. */
  phoneNumber?: string;
}

/** Why `runSession` returned (it only returns when the session ended for good or is not wanted). */
export interface RunSessionResult {
  ended: 'logged_out' | 'replaced' | 'forbidden' | 'channel_gone' | 'superseded';
  reason: string;
}

/** Input of `sendText`. */
export interface SendTextInput {
  channelId: string;
  /** The chat to write to: its id (`+<digits>`, `…@lid`, `…@g.us`) — the chat the inbound message came from. */
  to: string;
  text: string;
}

/** Type name of the retryable failure thrown when this worker holds no open socket for the channel. */
export const SESSION_UNAVAILABLE = 'WharfSessionUnavailable';

/** A Baileys close error: a Boom with `output.statusCode`, or a plain error. */
type CloseError = (Error & { output?: { statusCode?: number }; data?: unknown }) | undefined;

const statusCodeOf = (err: CloseError): number | undefined => err?.output?.statusCode;

/** True when the close came from the network (DNS, TCP, TLS, WebSocket), not from WhatsApp's servers. */
function isNetworkError(err: CloseError): boolean {
  if (!err) return false;
  if (/^WebSocket Error/.test(err.message)) return true;
  const data = err.data as { code?: unknown } | undefined;
  return data instanceof Error || (typeof data?.code === 'string' && /^E[A-Z]+$/.test(data.code));
}

/** True when the Noise handshake refused the server's certificate chain (Baileys' noise handler, status 400). */
function isCertificateFailure(err: CloseError): boolean {
  return statusCodeOf(err) === 400 && /certificate|certification/i.test(err?.message ?? '');
}

/** A short, human cause of a close. */
function describeClose(err: CloseError): string {
  const code = statusCodeOf(err);
  const msg = (err?.message ?? 'connection closed').replace(/^WebSocket Error \((.*)\)$/, '$1');
  // Network errors say it best themselves ("getaddrinfo ENOTFOUND web.whatsapp.com").
  if (isNetworkError(err)) return msg;
  if (isCertificateFailure(err)) {
    return `the server failed WhatsApp's certificate check (${msg}): it is not WhatsApp, or WHARF_WA_CERT_ROOT does not match it; nothing was sent to it`;
  }
  switch (code) {
    case DisconnectReason.connectionClosed:
      return `connection closed (${msg})`;
    case DisconnectReason.connectionLost:
      return `connection lost or timed out (${msg})`;
    case DisconnectReason.unavailableService:
      return `WhatsApp service unavailable (${msg})`;
    default:
      return code ? `${msg}, status ${code}` : msg;
  }
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
const formatPairingCode = (code: string): string => (code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code);
const addressOfJid = (jid: string): string => {
  const user = jidDecode(jid)?.user;
  return user ? `+${user}` : jid;
};

/** How long a QR lives in Baileys: the first 60 s, each later one 20 s. */
const FIRST_QR_MS = 60_000;
const NEXT_QR_MS = 20_000;
/** Immediate reconnects (restart required, bad session) allowed in a row before backoff applies. */
const MAX_QUICK_RESTARTS = 3;

/** Builds the session activities (`runSession` on the main queue, `sendText` on this worker's own queue). */
export function createSessionActivities(deps: SessionActivityDeps) {
  const { db, secretKey, client, taskQueue, sessionQueue, log } = deps;
  const makeSocket: MakeSocket = deps.makeSocket ?? makeWASocket;
  const backoff = deps.backoff ?? { initialMs: 1000, maxMs: 60_000 };
  const heartbeatMs = deps.heartbeatMs ?? 5000;
  const random = deps.random ?? Math.random;
  const firstContactGuard = deps.firstContactGuard ?? true;
  // Before any socket: a signature check that refuses forged certificate chains and pairing signatures.
  installSignatureCheck();
  setCertRoot(deps.waCertRoot);
  /** Open sessions of this process, by channel id. */
  const sessionRegistry = new Map<string, LiveSession>();

  const baileysLogger = (channelId: string): Logger => {
    const values = log.levels.values;
    const level = (values[log.level] ?? 30) > values.warn ? log.level : 'warn';
    return log.child({ component: 'baileys', channelId }, { level });
  };

  /** Runs the channel's socket until the session ends for good or the activity is cancelled. */
  async function runSession({ channelId, phoneNumber }: RunSessionInput): Promise<RunSessionResult> {
    const ctx = Context.current();
    const slog = log.child({ component: 'whatsapp-session', channelId, attempt: ctx.info.attempt });
    const token = `${ctx.info.activityId}/${ctx.info.attempt}/${randomUUID()}`;
    const handle = client.workflow.getHandle(`channel-${channelId}`);
    const sentIds = new RecentSends();
    const chats = new Set<string>();
    // Group subjects as WhatsApp tells them (joins, updates, chat lists), for `chat.name`.
    const groupNames = new Map<string, string>();
    const noteGroup = (id: string | null | undefined, name: string | null | undefined): void => {
      if (id && name && isJidGroup(id)) groupNames.set(id, name);
      if (groupNames.size > 5000) groupNames.delete(groupNames.keys().next().value as string);
    };
    const pairingDigits = phoneNumber?.replace(/\D/g, '') || undefined;

    // ---- stop / cancellation -----------------------------------------------------------------------------
    // (An object, so TypeScript does not narrow what the callbacks below change.)
    const st: { cancelled: CancelledFailure | null; result: RunSessionResult | null } = {
      cancelled: null,
      result: null,
    };
    let wake: () => void = () => undefined;
    let woken = new Promise<void>((r) => (wake = r));
    const stopping = (): boolean => st.cancelled !== null || st.result !== null;
    const interrupt = (): void => {
      wake();
      woken = new Promise<void>((r) => (wake = r));
    };
    let endSocket: () => void = () => undefined;
    ctx.cancelled.catch((err: unknown) => {
      st.cancelled = err instanceof CancelledFailure ? err : new CancelledFailure(String(err));
      slog.info({ reason: st.cancelled.message }, 'session activity cancelled; closing the socket');
      endSocket();
      interrupt();
    });
    const stop = (result: RunSessionResult): void => {
      if (stopping()) return;
      st.result = result;
      endSocket();
      interrupt();
    };
    /** Waits `ms`, or less when the session is stopping. */
    const pause = async (ms: number): Promise<void> => {
      if (stopping()) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, ms))), woken]);
      clearTimeout(timer);
    };

    // ---- heartbeat ---------------------------------------------------------------------------------------
    let phase = 'starting';
    let reconnects = 0;
    const beat = (): void => {
      if (deps.heartbeatGate && !deps.heartbeatGate()) return;
      ctx.heartbeat({ phase, reconnects });
    };
    beat();
    const heartbeat = setInterval(beat, heartbeatMs);

    // ---- ordered side effects: session_link writes and signals, in the order the events happened ----------
    // Each one first checks that this session still owns the channel: a stale attempt (its worker hung, a
    // newer attempt took over) must never overwrite the current session's QR or reported state.
    let effects: Promise<void> = Promise.resolve();
    const owns = async (): Promise<boolean> =>
      ownsAuthState({ db, secretKey, channelId, token }).catch((err: unknown) => {
        slog.warn({ err }, 'could not check session ownership; assuming it is still ours');
        return true;
      });
    const effect = (what: string, fn: () => Promise<void>): void => {
      effects = effects
        .then(async () => {
          if (!(await owns())) {
            slog.info({ what }, 'this session no longer owns the channel; nothing reported, stopping');
            stop({
              ended: 'superseded',
              reason: 'Another session took over this channel, or its auth state was cleared.',
            });
            return;
          }
          await fn();
        })
        .catch((err: unknown) => slog.warn({ err }, `session side effect failed: ${what}`));
    };
    let lastSignal = '';
    const signal = (u: SessionUpdate): void =>
      effect('signal', async () => {
        const key = JSON.stringify(u);
        if (key === lastSignal) return;
        for (let i = 0; ; i++) {
          try {
            await handle.signal(sessionUpdate, u);
            lastSignal = key;
            slog.debug({ status: u.status, reason: u.reason }, 'session update signalled');
            return;
          } catch (err) {
            if (err instanceof WorkflowNotFoundError) {
              slog.info('channel workflow is gone; ending the session');
              stop({ ended: 'channel_gone', reason: 'The channel workflow no longer exists.' });
              return;
            }
            if (i >= 4 || stopping()) throw err;
            await pause(250 * 2 ** i);
          }
        }
      });
    const setLink = (qr: string | null, code: string | null, expiresAt: Date): void =>
      effect('write session_link', async () => {
        await db.query(
          `insert into session_link (channel_id, qr, pairing_code, expires_at, updated_at) values ($1, $2, $3, $4, now())
           on conflict (channel_id) do update set qr = excluded.qr, pairing_code = excluded.pairing_code, expires_at = excluded.expires_at, updated_at = now()`,
          [channelId, qr, code, expiresAt.toISOString()],
        );
        deps.store.changes.emit({ channelId, what: 'link' }); // the console shows the new QR at once
      });
    const extendCode = (expiresAt: Date): void =>
      effect('extend pairing code', async () => {
        // (`updated_at` stays: it marks when this code was issued.)
        await db.query(
          'update session_link set expires_at = greatest(expires_at, $2) where channel_id = $1 and pairing_code is not null',
          [channelId, expiresAt.toISOString()],
        );
      });
    const clearLink = (): void =>
      effect('clear session_link', async () => {
        await db.query('delete from session_link where channel_id = $1', [channelId]);
        deps.store.changes.emit({ channelId, what: 'link' });
      });

    // ---- inbound -----------------------------------------------------------------------------------------
    let inbound: Promise<void> = Promise.resolve();
    /** The phone-number jid of a LID, when this device knows it (else null). */
    type PnForLid = (lid: string) => Promise<string | null>;
    /**
     * Gives LID-addressed messages their phone-number twin when Baileys knows it: WhatsApp names one contact
     * by either address, envelope by envelope, and a contact must be one chat whichever one an event carries.
     */
    const addPnAlts = async (messages: WAMessage[], pnForLid: PnForLid | undefined): Promise<void> => {
      if (!pnForLid) return;
      for (const m of messages) {
        const key = m.key;
        if (!key) continue;
        try {
          if (key.remoteJid && isLidUser(key.remoteJid) && !key.remoteJidAlt) {
            key.remoteJidAlt = (await pnForLid(key.remoteJid)) ?? undefined;
          }
          if (key.participant && isLidUser(key.participant) && !key.participantAlt) {
            key.participantAlt = (await pnForLid(key.participant)) ?? undefined;
          }
        } catch (err) {
          slog.debug({ err, messageId: key.id }, 'no phone number known for a LID');
        }
      }
    };
    const deliver = async (
      messages: WAMessage[],
      live: { selfJid: string; selfLid?: string; pnForLid?: PnForLid },
    ): Promise<boolean> => {
      await addPnAlts(messages, live.pnForLid);
      // Wharf's own sends are known by id: in memory, and (across restarts) by the outbound message log.
      const fromMeIds = messages.filter((m) => m.key?.fromMe && m.key.id).map((m) => m.key.id as string);
      const logged = new Set<string>();
      if (fromMeIds.length) {
        const rows = await db.query<{ provider_id: string }>(
          `select provider_id from messages where channel_id = $1 and direction = 'out' and provider_id = any($2::text[])`,
          [channelId, fromMeIds],
        );
        for (const r of rows) logged.add(r.provider_id);
      }
      const known = { has: (id: string) => sentIds.has(id) || logged.has(id) };
      const batch: InboundMessage[] = [];
      for (const m of messages) {
        try {
          const n = normalizeWaMessage(channelId, m, {
            selfJid: live.selfJid,
            selfLid: live.selfLid,
            sentIds: known,
            groupNames,
          });
          if (n) batch.push(n);
        } catch (err) {
          slog.warn({ err, messageId: m.key?.id }, 'could not normalise a WhatsApp message; skipped');
        }
      }
      if (!batch.length) return true;
      for (const m of batch) chats.add(m.chat.id);
      await deps.beforeDeliver?.(batch.map((m) => m.id));
      for (let i = 0; ; i++) {
        try {
          await deliverInbound(client, taskQueue, channelId, batch);
          slog.debug({ count: batch.length }, 'inbound messages delivered');
          return true;
        } catch (err) {
          if (stopping() && i >= 3) {
            // Not acknowledged to WhatsApp either (the ack gate still holds them): redelivered at the next login.
            slog.warn(
              { err, ids: batch.map((m) => m.id) },
              'inbound messages could not be handed to Temporal before the session stopped; WhatsApp redelivers them',
            );
            return false;
          }
          slog.warn({ err, try: i + 1 }, 'inbound delivery to Temporal failed; retrying');
          await new Promise((r) =>
            setTimeout(
              r,
              backoffDelay(i, { initialMs: 500, maxMs: 30_000 }, () => 0.5 + random() / 2),
            ),
          );
        }
      }
    };

    // ---- one socket --------------------------------------------------------------------------------------
    interface Outcome {
      error: CloseError;
      opened: boolean;
      sawQr: boolean;
    }
    const runSocket = (auth: StoreAuthState): Promise<Outcome> =>
      new Promise<Outcome>((resolve, reject) => {
        let opened = false;
        let sawQr = false;
        let qrCount = 0;
        let pairing: 'none' | 'requested' | 'failed' = 'none';
        let settled = false;
        const finish = (o: Outcome): void => {
          if (settled) return;
          settled = true;
          resolve(o);
        };

        if (stopping()) {
          finish({ error: undefined, opened, sawQr });
          return;
        }
        let sock: SessionSocket;
        try {
          sock = makeSocket(
            {
              auth: {
                creds: auth.state.creds,
                keys: makeCacheableSignalKeyStore(auth.state.keys, baileysLogger(channelId)),
              },
              logger: baileysLogger(channelId),
              printQRInTerminal: false,
              browser: ['Wharf', 'Chrome', '1.0'],
              markOnlineOnConnect: false,
              syncFullHistory: false,
              generateHighQualityLinkPreview: false,
              shouldIgnoreJid: (jid: string) => !!isJidBroadcast(jid) || !!isJidNewsletter(jid),
              // Lets Baileys re-send our own messages to a device that could not decrypt them.
              getMessage: async (key: proto.IMessageKey) => {
                const text = key.id ? sentIds.text(key.id) : undefined;
                return text ? { conversation: text } : undefined;
              },
              ...(deps.waUrl ? { waWebSocketUrl: deps.waUrl } : {}),
              ...deps.socketConfig,
            },
            { channelId },
          );
        } catch (err) {
          reject(err);
          return;
        }

        // Receipts for inbound messages leave only once the messages are durable (lib/baileys/ack-gate.ts).
        const gate = new AckGate({
          ignore: (jid) => !!isJidBroadcast(jid) || !!isJidNewsletter(jid),
          onExpired: (id) =>
            slog.warn({ messageId: id }, 'an inbound message was not handed on in time; its receipt is sent anyway'),
          // Wharf reads no history, so Baileys' buffering (meant to merge history with chats) may end early.
          unstick: () => sock.ev.flush?.(),
        });
        gate.attach(sock.ws);

        endSocket = () => {
          Promise.resolve(sock.end(undefined)).catch((err: unknown) => slog.debug({ err }, 'socket end failed'));
          // A socket that never reports its close is not waited for.
          setTimeout(() => finish({ error: undefined, opened, sawQr }), 5000).unref();
        };

        // Inbound messages go to Temporal only once the channel knows where this session's sends go, or
        // their replies would find no session (messages kept offline arrive during login).
        let markConnected: (ok: boolean) => void = () => undefined;
        const connectedReported = {
          promise: new Promise<boolean>((r) => (markConnected = r)),
          resolve: (ok: boolean) => markConnected(ok),
        };
        /** The socket is logged in: the session is open for sends and reported connected. */
        const reportOpen = (): void => {
          if (opened) return;
          opened = true;
          phase = 'open';
          const selfJid = sock.user?.id ?? auth.state.creds.me?.id;
          if (!selfJid) {
            slog.error('socket opened without a user id; closing it');
            endSocket();
            return;
          }
          const selfAddress = addressOfJid(selfJid);
          sessionRegistry.set(channelId, {
            channelId,
            socket: sock,
            sentIds,
            selfJid,
            selfAddress,
            chats,
            openedAt: new Date().toISOString(),
          });
          clearLink();
          signal({
            status: 'connected',
            reason: `Linked to ${selfAddress}; WhatsApp is connected.`,
            selfAddress,
            sessionQueue,
          });
          effect('connected reported', async () => connectedReported.resolve(true));
          slog.info({ selfAddress }, 'WhatsApp session open');
        };
        // WhatsApp's `<success>` (login done) comes before Baileys' `open`, which waits on a few queries;
        // messages kept offline arrive in between, and their receipts are held (ack gate) until they are
        // durable — so the session must count as open from `<success>`, or the two would wait on each other.
        (sock.ws as { on?(event: string, listener: () => void): unknown } | undefined)?.on?.('CB:success', () =>
          reportOpen(),
        );

        sock.ev.on('creds.update', () => {
          auth.saveCreds().catch((err: unknown) => slog.warn({ err }, 'could not save the auth state'));
        });

        sock.ev.on('connection.update', (u) => {
          if (u.qr && !opened) {
            sawQr = true;
            qrCount += 1;
            phase = 'qr';
            const now = Date.now();
            if (pairingDigits && pairing === 'none' && !auth.state.creds.registered) {
              pairing = 'requested';
              sock.requestPairingCode(pairingDigits).then(
                (code) => {
                  setLink(null, formatPairingCode(code), new Date(Date.now() + FIRST_QR_MS));
                  signal({
                    status: 'setup',
                    reason: `Enter the pairing code for ${phoneNumber} on that phone: WhatsApp → Linked devices → Link a device → Link with phone number instead.`,
                  });
                },
                (err: unknown) => {
                  pairing = 'failed';
                  slog.warn({ err }, 'pairing code request failed; the QR stays available');
                  setLink(u.qr ?? null, null, new Date(Date.now() + FIRST_QR_MS));
                  signal({
                    status: 'setup',
                    reason: `Could not get a pairing code for ${phoneNumber} (${(err as Error)?.message ?? err}); scan the QR code instead.`,
                  });
                },
              );
            } else if (pairing === 'requested') {
              // Each rotation proves the connection (and so the pairing code) is still alive.
              extendCode(new Date(now + NEXT_QR_MS));
            } else {
              setLink(u.qr, null, new Date(now + (qrCount === 1 ? FIRST_QR_MS : NEXT_QR_MS)));
              signal({
                status: 'setup',
                reason: `Scan the QR code with WhatsApp on the phone (Settings → Linked devices → Link a device); GET /api/channels/${channelId}/qr shows it.`,
              });
            }
          }
          if (u.connection === 'open') reportOpen();
          if (u.connection === 'close') {
            gate.discard();
            connectedReported.resolve(false);
            if (sessionRegistry.get(channelId)?.socket === sock) sessionRegistry.delete(channelId);
            finish({ error: u.lastDisconnect?.error as CloseError, opened, sawQr });
          }
        });

        sock.ev.on('groups.upsert', (groups) => groups.forEach((g) => noteGroup(g.id, g.subject)));
        sock.ev.on('groups.update', (groups) => groups.forEach((g) => noteGroup(g.id, g.subject)));
        sock.ev.on('chats.upsert', (list) => list.forEach((c) => noteGroup(c.id, c.name)));

        sock.ev.on('messages.upsert', ({ messages }) => {
          // `notify` is live; `append` is what WhatsApp kept for this device while it was offline (and our
          // own sends echoed locally, which the normaliser drops by id). History sync comes as
          // `messaging-history.set`, never here.
          const selfJid = sock.user?.id ?? auth.state.creds.me?.id;
          if (!selfJid) return;
          const lidMapping = sock.signalRepository?.lidMapping;
          const live = {
            selfJid,
            selfLid: sock.user?.lid ?? auth.state.creds.me?.lid,
            pnForLid: lidMapping ? (lid: string) => lidMapping.getPNForLID(lid) : undefined,
          };
          const ids = messages.map((m) => m.key?.id).filter((id): id is string => !!id);
          inbound = inbound
            .then(() => connectedReported.promise)
            // (A socket that closed before logging in delivers nothing: WhatsApp redelivers at the next login.)
            .then((connected) => (connected ? deliver(messages, live) : false))
            .then((durable) => {
              if (durable) gate.release(ids);
            })
            .catch((err: unknown) => slog.error({ err }, 'inbound handling failed'));
        });
      });

    // ---- the reconnect loop ------------------------------------------------------------------------------
    let attempt = 0;
    let quickRestarts = 0;
    let claimed = false;
    let auth: StoreAuthState | null = null;
    const newAuth = async (): Promise<StoreAuthState> =>
      createStoreAuthState({
        db,
        secretKey,
        channelId,
        fence: {
          token,
          claim: !claimed,
          onFenced: () => {
            slog.warn('another session took over this channel (or its auth state was cleared); stopping');
            stop({
              ended: 'superseded',
              reason: 'Another session took over this channel, or its auth state was cleared.',
            });
          },
        },
      });
    const restartSoon = async (): Promise<void> => {
      // Immediate restarts are what Baileys asks for; a few in a row without an open fall back to backoff.
      quickRestarts += 1;
      if (quickRestarts > MAX_QUICK_RESTARTS) await pause(backoffDelay(attempt++, backoff, random));
    };

    try {
      while (!stopping()) {
        auth = await newAuth();
        claimed = true;
        if (auth.state.creds.me && !auth.isLinked()) {
          // A pairing code was requested earlier but never entered: those creds cannot log in; start fresh.
          slog.info('discarding an unfinished link attempt');
          await auth.clear();
          auth.close();
          auth = await newAuth();
        }
        phase = 'connecting';
        const outcome = await runSocket(auth);
        endSocket = () => undefined;
        auth.close();
        if (stopping()) break;
        reconnects += 1;
        const code = statusCodeOf(outcome.error);
        const network = isNetworkError(outcome.error);
        if (outcome.opened) {
          attempt = 0;
          quickRestarts = 0;
        }
        slog.info({ code, network, opened: outcome.opened, message: outcome.error?.message }, 'WhatsApp socket closed');

        // (Linked now: the creds object is the one the socket updated, so a scan during this socket counts.)
        const linkedNow = auth.isLinked() || outcome.opened;
        if (code === DisconnectReason.loggedOut && !network && linkedNow) {
          await auth.clear().catch((err: unknown) => slog.warn({ err }, 'could not clear the auth state'));
          clearLink();
          const reason =
            'Logged out: the session was revoked from the phone (WhatsApp → Linked devices), and its auth state was deleted. Refresh the QR code to link again.';
          signal({ status: 'disconnected', reason, final: true });
          st.result = { ended: 'logged_out', reason };
          break;
        }
        if (code === DisconnectReason.connectionReplaced) {
          const reason =
            'Another client took over this session (WhatsApp reported a conflict: the same linked device connected elsewhere). Reconnect the channel to take it back.';
          signal({ status: 'disconnected', reason, final: true });
          st.result = { ended: 'replaced', reason };
          break;
        }
        if (code === DisconnectReason.forbidden && !network) {
          const reason =
            'WhatsApp refused this account (403 forbidden): it may be banned or restricted. Check the phone, then link again.';
          signal({ status: 'failed', reason, final: true });
          st.result = { ended: 'forbidden', reason };
          break;
        }
        if (code === DisconnectReason.restartRequired) {
          await restartSoon();
          continue;
        }
        if (!network && (code === DisconnectReason.badSession || code === DisconnectReason.loggedOut)) {
          // A session WhatsApp no longer accepts (or an unfinished link): clear it and show a new QR.
          await auth.clear().catch((err: unknown) => slog.warn({ err }, 'could not clear the auth state'));
          clearLink();
          signal({
            status: 'setup',
            reason: 'Bad session: WhatsApp did not accept the saved session, so it was cleared; scan a new QR code.',
          });
          await restartSoon();
          continue;
        }
        if (!network && code === DisconnectReason.timedOut && outcome.sawQr && !outcome.opened && !auth.isLinked()) {
          // Every QR of this connection expired unscanned: connect again for fresh ones.
          clearLink();
          await pause(Math.min(backoff.initialMs, 1000));
          continue;
        }

        // Transient: connection lost / closed / timed out / WhatsApp unreachable or unavailable.
        const delay = backoffDelay(attempt++, backoff, random);
        const linked = auth.isLinked();
        const cause = describeClose(outcome.error);
        const reason =
          network && !outcome.opened
            ? `WhatsApp unreachable: ${cause}; retrying in ${seconds(delay)}.`
            : `Disconnected from WhatsApp: ${cause}; reconnecting in ${seconds(delay)}.`;
        if (!linked) clearLink();
        signal({ status: linked ? 'disconnected' : 'setup', reason });
        phase = 'backoff';
        await pause(delay);
      }
    } finally {
      clearInterval(heartbeat);
      auth?.close();
      if (sessionRegistry.get(channelId)?.sentIds === sentIds) sessionRegistry.delete(channelId);
      const why = st.cancelled?.message;
      if (why === 'WORKER_SHUTDOWN') {
        // This worker is going away: sends must stop coming here until the session is back elsewhere.
        clearLink();
        signal({
          status: 'disconnected',
          reason: 'The worker holding the WhatsApp session is shutting down; the session restarts on another worker.',
        });
      } else if (why !== 'TIMED_OUT' && why !== 'NOT_FOUND' && st.result?.ended !== 'superseded') {
        // (A timed-out or superseded attempt leaves session_link alone: a newer attempt may be writing it.)
        clearLink();
      }
      // Let queued store writes, signals and deliveries finish (bounded, so cancellation stays prompt).
      await Promise.race([Promise.all([effects, inbound]), new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    if (st.cancelled) throw st.cancelled;
    return st.result ?? { ended: 'superseded', reason: 'The session stopped.' };
  }

  /** Sends a text over the live socket of this process; the id is recorded so its echo is never inbound. */
  async function sendText({ channelId, to, text }: SendTextInput): Promise<{ messageId: string }> {
    const live = sessionRegistry.get(channelId);
    if (!live) {
      throw ApplicationFailure.retryable(
        `No open WhatsApp session for channel ${channelId} on this worker (${sessionQueue}); the send is retried.`,
        SESSION_UNAVAILABLE,
      );
    }
    if (firstContactGuard && !live.chats.has(to)) {
      const [row] = await db.query(
        `select 1 as one from messages where channel_id = $1 and direction = 'in' and chat_id = $2 limit 1`,
        [channelId, to],
      );
      if (!row) {
        throw ApplicationFailure.nonRetryable(
          `Chat ${to} never wrote to channel ${channelId}; Wharf only writes to chats that wrote first.`,
          FAILURE.sendRejected,
        );
      }
      live.chats.add(to);
    }
    let jid: string;
    try {
      jid = addressToJid(to);
    } catch (err) {
      throw ApplicationFailure.nonRetryable((err as Error).message, FAILURE.sendRejected);
    }
    const id = generateMessageIDV2(live.selfJid);
    live.sentIds.add(id, text);
    try {
      const sent = await live.socket.sendMessage(jid, { text }, { messageId: id });
      const messageId = sent?.key?.id ?? id;
      if (messageId !== id) live.sentIds.add(messageId, text);
      return { messageId };
    } catch (err) {
      const code = statusCodeOf(err as CloseError);
      if (
        code === DisconnectReason.connectionClosed ||
        code === DisconnectReason.connectionLost ||
        sessionRegistry.get(channelId) !== live
      ) {
        throw ApplicationFailure.retryable(
          `The WhatsApp session of channel ${channelId} closed during the send (${(err as Error).message}); the send is retried.`,
          SESSION_UNAVAILABLE,
        );
      }
      throw err;
    }
  }

  return { runSession, sendText, sessionRegistry };
}

/** The session activities' type (for `proxyActivities`). */
export type SessionActivities = Omit<ReturnType<typeof createSessionActivities>, 'sessionRegistry'>;
