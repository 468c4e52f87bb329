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
import { SESSION_UNAVAILABLE, type LiveSession, type SendTextInput, type SessionRegistry } from './session-registry.js';

/** What `sendText` needs. */
export interface SendTextDeps {
  registry: SessionRegistry;
  store: Store;
  /** This worker's own task queue (named in the failure when no session is open here). */
  sessionQueue: string;
  /** Refuse sends to chats that never wrote to the channel. */
  firstContactGuard: boolean;
}

/**
 * Where a send to `to` goes: this process's live session of the channel and the chat's jid. Fails as
 * retryable when no session is open here, and for good for a chat that never wrote first (when guarded) or
 * an address that is not a WhatsApp one. Texts and files go through the same check.
 */
export async function sendTarget(
  { registry, store, sessionQueue, firstContactGuard }: SendTextDeps,
  channelId: string,
  to: string,
): Promise<{ live: LiveSession; jid: string }> {
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
  try {
    return { live, jid: addressToJid(to) };
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, FAILURE.sendRejected);
  }
}

/**
 * Sends one message (`{text}`, or a file's content) over this process's live session of the channel. Its id is
 * recorded before the send (with `echoText`, for Baileys' re-sends) so its echo is never taken as inbound; a
 * socket that closed during the send fails as retryable.
 */
export async function sendOverSession(
  deps: SendTextDeps,
  channelId: string,
  to: string,
  content: Record<string, unknown>,
  echoText: string,
): Promise<{ messageId: string }> {
  const { live, jid } = await sendTarget(deps, channelId, to);
  const id = generateMessageIDV2(live.selfJid);
  live.sentIds.add(id, echoText);
  const socket = live.socket as unknown as {
    sendMessage(
      jid: string,
      content: Record<string, unknown>,
      options?: { messageId?: string },
    ): Promise<{ key?: { id?: string | null } } | undefined>;
  };
  try {
    const sent = await socket.sendMessage(jid, content, { messageId: id });
    const messageId = sent?.key?.id ?? id;
    if (messageId !== id) live.sentIds.add(messageId, echoText);
    return { messageId };
  } catch (err) {
    const code = statusCodeOf(err as CloseError);
    if (
      code === DisconnectReason.connectionClosed ||
      code === DisconnectReason.connectionLost ||
      deps.registry.get(channelId) !== live
    ) {
      throw ApplicationFailure.retryable(
        `The WhatsApp session of channel ${channelId} closed during the send (${(err as Error).message}); the send is retried.`,
        SESSION_UNAVAILABLE,
      );
    }
    throw err;
  }
}

/** Builds `sendText` over the sessions in `registry`. */
export function createSendText(deps: SendTextDeps) {
  /** Sends a text over the live socket of this process. */
  return async function sendText({ channelId, to, text }: SendTextInput): Promise<{ messageId: string }> {
    return sendOverSession(deps, channelId, to, { text }, text);
  };
}
