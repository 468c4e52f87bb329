/** Signals and queries of the chat workflow `chat-<channelId>-<chatId>`. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DeliveryStatus, InboundMessage, ReplyAttachment } from '../lib/types.js';

/** Inbound messages of one chat, in arrival order (several webhook events may share one signal). */
export const inbound = defineSignal<[{ messages: InboundMessage[] }]>('inbound');

/**
 * The same as {@link inbound}, as an update: what a running chat's messages arrive with (lib/inbound-delivery.ts).
 * Accepted means durably in the chat's history, as a signal's acknowledgement does, for less of Temporal's
 * work: the update rides on the workflow task that handles it, where a signal is written first and then
 * handed to a workflow task of its own. Its handler only queues, so it is accepted and completed at once.
 */
export const deliver = defineUpdate<void, [{ messages: InboundMessage[] }]>('deliver');

/** Delivery statuses for messages Wharf sent to this chat. */
export const statuses = defineSignal<[{ statuses: DeliveryStatus[] }]>('statuses');

/** One turn of the conversation window. */
export interface Turn {
  role: 'user' | 'assistant';
  text: string;
  at: string;
}

/** What a chat workflow holds, answered by its `state` query. */
export interface ChatState {
  channelId: string;
  chatId: string;
  window: Turn[];
  queued: number;
  processed: number;
}

/** The chat's current state. */
export const chatState = defineQuery<ChatState>('state');

/** The workflow id of a chat (built in lib/workflow-ids.ts; re-exported for the callers that import it from here). */
export { chatWorkflowId } from '../lib/workflow-ids.js';

/** One reply to send: Markdown for the chat, and the inbound message it answers (for its outcome). */
export interface ReplyInput {
  to: string;
  /** Unique per reply; a part's key is `<replyKey>#<n>`, which makes every retry of a send idempotent. */
  replyKey: string;
  markdown: string;
  /** Files sent after the text (refs only: a stored file's id or a URL; the bytes never enter history). */
  attachments?: ReplyAttachment[];
  inboundId?: string;
  outcome?: string;
}

/** Sent to a sender whose pairing code was accepted. */
export const PAIRED_TEXT = 'Paired. This number now talks to the agent on this channel.';

/** The confirmation to a sender that just paired with `m`. */
export const pairedReply = (m: InboundMessage): ReplyInput => ({
  to: m.sender.address,
  replyKey: `pair:${m.id}`,
  markdown: PAIRED_TEXT,
});

/** The agent's answer to `m`; sending it marks `m` answered. */
export const answerReply = (m: InboundMessage, markdown: string, attachments?: ReplyAttachment[]): ReplyInput => ({
  to: m.sender.address,
  replyKey: `reply:${m.id}`,
  markdown,
  ...(attachments?.length ? { attachments } : {}),
  inboundId: m.id,
  outcome: 'answered',
});
