/**
 * The workflow ids Wharf gives its workflows, built in this one place: the API, activities, workflows, the
 * console's links and the benches all find a channel's or a chat's workflow through these. Workflow-safe.
 */

/** The workflow id of a channel's entity workflow: `channel-<channelId>`. */
export const channelWorkflowId = (channelId: string): string => `channel-${channelId}`;

/** The workflow id of one chat of a channel: `chat-<channelId>-<chatId>`. */
export const chatWorkflowId = (channelId: string, chatId: string): string => `chat-${channelId}-${chatId}`;
