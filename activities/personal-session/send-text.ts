/**
 * Sending a text over a session this process holds open. Only a chat that wrote to the channel first is
 * written to (the first-contact guard), and the sent id is recorded before the send so its echo is never
 * taken for an inbound message. A send that finds no open socket here fails as retryable.
 */
import { ApplicationFailure } from '@temporalio/common';
import { DisconnectReason, generateMessageIDV2 } from '@whiskeysockets/baileys';
import { addressToJid } from '../../lib/baileys/normalize.js';
import { FAILURE } from '../../lib/errors.js';
import type { Store } from '../../lib/store/store.js';
import { statusCodeOf, type CloseError } from './close-policy.js';
import { SESSION_UNAVAILABLE, type SendTextInput, type SessionRegistry } from './session-registry.js';

/** What `sendText` needs. */
export interface SendTextDeps {
  registry: SessionRegistry;
  store: Store;
  /** This worker's own task queue (named in the failure when no session is open here). */
  sessionQueue: string;
  /** Refuse sends to chats that never wrote to the channel. */
  firstContactGuard: boolean;
}

/** Builds `sendText` over the sessions in `registry`. */
export function createSendText({ registry, store, sessionQueue, firstContactGuard }: SendTextDeps) {
  /** Sends a text over the live socket of this process; the id is recorded so its echo is never inbound. */
  return async function sendText({ channelId, to, text }: SendTextInput): Promise<{ messageId: string }> {
    const live = registry.get(channelId);
    if (!live) {
      throw ApplicationFailure.retryable(
        `No open WhatsApp session for channel ${channelId} on this worker (${sessionQueue}); the send is retried.`,
        SESSION_UNAVAILABLE,
      );
    }
    if (firstContactGuard && !live.chats.has(to)) {
      if (!(await store.messages.hasInbound(channelId, to))) {
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
        registry.get(channelId) !== live
      ) {
        throw ApplicationFailure.retryable(
          `The WhatsApp session of channel ${channelId} closed during the send (${(err as Error).message}); the send is retried.`,
          SESSION_UNAVAILABLE,
        );
      }
      throw err;
    }
  };
}
