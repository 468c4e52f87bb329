/**
 * Inbound messages of a session, handed to the per-chat workflows exactly like the Cloud webhook does: in
 * the order WhatsApp sent them (one chain per session), normalised, without Wharf's own sends echoed back,
 * and only once the channel knows where this session's replies go. A batch counts as durable only when
 * Temporal has it; only then may WhatsApp get its receipts (the ack gate, lib/baileys/ack-gate.ts).
 */
import type { Client } from '@temporalio/client';
import { isJidGroup, isLidUser, type WAMessage } from '@whiskeysockets/baileys';
import { normalizeWaMessage } from '../../lib/baileys/normalize.js';
import { deliverInbound } from '../../lib/inbound-delivery.js';
import type { Logger } from '../../lib/logger.js';
import type { Store } from '../../lib/store/store.js';
import type { InboundMessage } from '../../lib/types.js';
import { backoffDelay } from './close-policy.js';
import type { RecentSends } from './session-registry.js';

/** The phone-number jid of a LID, when this device knows it (else null). */
type PnForLid = (lid: string) => Promise<string | null>;

/** Who the socket is logged in as, and how it maps LIDs to numbers (when Baileys knows). */
export interface SelfIdentity {
  selfJid: string;
  selfLid?: string;
  pnForLid?: PnForLid;
}

/** What the pump needs. */
export interface InboundPumpDeps {
  store: Store;
  client: Client;
  /** The main Wharf task queue (chat workflows are started there). */
  taskQueue: string;
  channelId: string;
  /** What this session sent (echoes are never inbound). */
  sentIds: RecentSends;
  /** Chats that wrote to this session; the pump adds each sender's chat. */
  chats: Set<string>;
  slog: Logger;
  stopping: () => boolean;
  random: () => number;
  beforeDeliver?: (messageIds: string[]) => Promise<void>;
  /** Downloads and stores a media message's file (activities/personal-media.ts) before it goes to Temporal. */
  attachMedia?: (n: InboundMessage, raw: WAMessage) => Promise<InboundMessage>;
}

/** The inbound side of a session attempt (see {@link createInboundPump}). */
export type InboundPump = ReturnType<typeof createInboundPump>;

/** Builds the inbound pump of one session attempt. */
export function createInboundPump(deps: InboundPumpDeps) {
  const { store, client, taskQueue, channelId, sentIds, chats, slog, stopping, random } = deps;
  let inbound: Promise<void> = Promise.resolve();
  // Group subjects as WhatsApp tells them (joins, updates, chat lists), for `chat.name`.
  const groupNames = new Map<string, string>();
  const noteGroup = (id: string | null | undefined, name: string | null | undefined): void => {
    if (id && name && isJidGroup(id)) groupNames.set(id, name);
    if (groupNames.size > 5000) groupNames.delete(groupNames.keys().next().value as string);
  };

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

  /** Normalises and delivers a batch; false when the session stopped before Temporal took it. */
  const deliver = async (messages: WAMessage[], live: SelfIdentity): Promise<boolean> => {
    await addPnAlts(messages, live.pnForLid);
    // Wharf's own sends are known by id: in memory, and (across restarts) by the outbound message log.
    const fromMeIds = messages.filter((m) => m.key?.fromMe && m.key.id).map((m) => m.key.id as string);
    const logged = fromMeIds.length ? await store.messages.sentProviderIds(channelId, fromMeIds) : new Set<string>();
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
        if (n) batch.push(n.media && deps.attachMedia ? await deps.attachMedia(n, m) : n);
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

  return {
    noteGroup,
    /**
     * Queues a `messages.upsert` batch behind the earlier ones. It waits for `connected` (the channel was
     * told where sends go; false: the socket closed before logging in, and WhatsApp redelivers at the next
     * login), then calls `durable` with the batch's ids once Temporal has it.
     */
    push(
      messages: WAMessage[],
      live: SelfIdentity,
      connected: Promise<boolean>,
      durable: (ids: string[]) => void,
    ): void {
      const ids = messages.map((m) => m.key?.id).filter((id): id is string => !!id);
      inbound = inbound
        .then(() => connected)
        .then((ok) => (ok ? deliver(messages, live) : false))
        .then((done) => {
          if (done) durable(ids);
        })
        .catch((err: unknown) => slog.error({ err }, 'inbound handling failed'));
    },
    /** Settles once every batch queued so far was handled. */
    idle: (): Promise<void> => inbound,
  };
}
