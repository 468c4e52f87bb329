/**
 * Hands inbound messages and delivery statuses durably to their chat workflows: one signal-with-start per
 * chat carrying every event of the batch for that chat (group commit). Used by the webhook (Cloud API) and
 * by the personal-account session; resolves only once Temporal has every event.
 */
import type { Client } from '@temporalio/client';
import { WharfChannelId } from './search-attributes.js';
import type { DeliveryStatus, InboundMessage } from './types.js';
import { chatWorkflowId, inbound, statuses } from '../workflows/chat-messages.js';
import type { chatWorkflow } from '../workflows/chat-workflow.js';

/** The chat a status belongs to: the recipient, in the same `+digits` form as direct chat ids. */
const statusChat = (s: DeliveryStatus): string => (s.recipient.startsWith('+') || s.recipient.includes('@') ? s.recipient : `+${s.recipient}`);

/** Delivers a batch for one channel. */
export async function deliverInbound(client: Client, taskQueue: string, channelId: string, messages: InboundMessage[], deliveryStatuses: DeliveryStatus[] = []): Promise<void> {
  const byChat = new Map<string, { messages: InboundMessage[]; statuses: DeliveryStatus[] }>();
  const slot = (chatId: string) => {
    let s = byChat.get(chatId);
    if (!s) byChat.set(chatId, (s = { messages: [], statuses: [] }));
    return s;
  };
  for (const m of messages) slot(m.chat.id).messages.push(m);
  for (const s of deliveryStatuses) slot(statusChat(s)).statuses.push(s);
  await Promise.all(
    [...byChat].map(async ([chatId, work]) => {
      const common = {
        workflowId: chatWorkflowId(channelId, chatId),
        taskQueue,
        args: [{ channelId, chatId }] as Parameters<typeof chatWorkflow>,
        typedSearchAttributes: [{ key: WharfChannelId, value: channelId }],
      };
      if (work.messages.length) {
        await client.workflow.signalWithStart<typeof chatWorkflow, [{ messages: InboundMessage[] }]>('chatWorkflow', { ...common, signal: inbound, signalArgs: [{ messages: work.messages }] });
      }
      if (work.statuses.length) {
        await client.workflow.signalWithStart<typeof chatWorkflow, [{ statuses: DeliveryStatus[] }]>('chatWorkflow', { ...common, signal: statuses, signalArgs: [{ statuses: work.statuses }] });
      }
    }),
  );
}
