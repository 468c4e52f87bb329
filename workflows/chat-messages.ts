/** Signals and queries of the chat workflow `chat-<channelId>-<chatId>`. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { DeliveryStatus, InboundMessage } from '../lib/types.js';

/** Inbound messages of one chat, in arrival order (several webhook events may share one signal). */
export const inbound = defineSignal<[{ messages: InboundMessage[] }]>('inbound');

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

/** The workflow id of a chat. */
export const chatWorkflowId = (channelId: string, chatId: string): string => `chat-${channelId}-${chatId}`;
