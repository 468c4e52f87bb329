/**
 * Wharf's workflows, bundled for the worker.
 *
 * - {@link channelWorkflow}: one per channel, `channel-<id>`.
 * - {@link chatWorkflow}: one per chat of a channel, `chat-<channelId>-<chatId>`.
 */
export { channelWorkflow } from './channel-workflow.js';
export { chatWorkflow } from './chat-workflow.js';
