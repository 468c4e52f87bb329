/**
 * The bottom layer of the personal session: what a socket is (as far as Wharf uses Baileys' `WASocket`),
 * the sessions this process holds open, the ids of what they sent, and the types the activities take and
 * return. Everything above (close policy, reporter, inbound pump, socket run, sends) builds on these.
 */
import { FAILURE } from '../../lib/errors.js';
import type { Client } from '@temporalio/client';
import type { BaileysEventMap, UserFacingSocketConfig, WAMessage } from '@whiskeysockets/baileys';
import type { Logger } from '../../lib/logger.js';
import type { Db } from '../../lib/store/db.js';
import type { Store } from '../../lib/store/store.js';
import type { BackoffOptions } from './close-policy.js';

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

/** Open sessions of this process, by channel id: a socket is entered when it logs in and leaves when it closes. */
export type SessionRegistry = Map<string, LiveSession>;

/** What the session activities need. */
export interface SessionActivityDeps {
  store: Store;
  /** The store's database: the auth state (lib/store/auth-state.ts) reads and fences through it. */
  db: Db;
  secretKey: Buffer;
  client: Client;
  /** The main Wharf task queue (chat workflows are started there). */
  taskQueue: string;
  /** This worker's own task queue: sends for open sessions go there (`deliverReplies`, which calls `sendText`). */
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
  /** Hosts inbound media may be downloaded from (default WhatsApp's CDN; tests serve files locally). */
  mediaHostAllowed?: (host: string) => boolean;
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
export const SESSION_UNAVAILABLE = FAILURE.sessionUnavailable;
