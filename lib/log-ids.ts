/**
 * The ids every log line about a message carries, so an operator can follow one message from the webhook to
 * its reply with one filter: its channel, its chat, and the chat's workflow (the one handling it in Temporal).
 */
import { chatWorkflowId } from '../workflows/chat-messages.js';

/** `channelId`, `chatId` and `workflowId` (the chat workflow's id) of a message in chat `chatId`. */
export function messageLogIds(
  channelId: string,
  chatId: string,
): { channelId: string; chatId: string; workflowId: string } {
  return { channelId, chatId, workflowId: chatWorkflowId(channelId, chatId) };
}
