/**
 * Temporal user metadata for chat workflows: a static summary naming the provider, the channel's number,
 * space, agent and the chat, and Markdown details with a link back to the console's Messages tab, so the
 * Web UI's workflow list reads without clicking in.
 *
 * The chat workflow is started by the process-wide inbound delivery, which knows only the channel id; the
 * rest comes from the store's channel read model through a lookup registered per Temporal client (the API
 * and the worker of one process share their client). A lookup is cached briefly: a burst of new chats on
 * one channel costs one store read, and a summary is written once, at the start, anyway.
 */
import type { Client } from '@temporalio/client';
import type { ChannelState, InboundMessage } from './types.js';
import { channelSummary, chatSummary } from './workflow-metadata.js';

/** What a chat's metadata names about its channel. */
export type ChatChannel = Pick<ChannelState, 'provider' | 'selfAddress' | 'space' | 'agent'>;

/** Where chat metadata comes from: the channel's read model and the console's public address. */
export interface ChatMetadataSource {
  /** The channel's provider, number, space and agent, or null when the store does not know it. */
  channel(channelId: string): Promise<ChatChannel | null>;
  /** The console's public base URL (`WHARF_PUBLIC_URL`): details link back to it. */
  consoleUrl?: string;
}

/** The user metadata a chat workflow starts with. */
export interface ChatMetadata {
  staticSummary: string;
  staticDetails?: string;
}

// A channel's number appears once it is linked; a short cache keeps that fresh enough for new chats.
const CACHE_MS = 30_000;
const MAX_CACHED = 1_000;

interface Registered {
  source: ChatMetadataSource;
  cache: Map<string, { at: number; channel: Promise<ChatChannel | null> }>;
}

const sources = new WeakMap<Client, Registered>();

/** Makes chat workflows started through `client` carry the channel's details from `source`. */
export function describeChatsWith(client: Client, source: ChatMetadataSource): void {
  sources.set(client, { source, cache: new Map() });
}

/** A chat's Markdown details: the channel it belongs to, and where to read its messages in the console. */
export function chatDetails(channelId: string, chatId: string, channel: ChatChannel, consoleUrl?: string): string {
  const lines = [
    `**${channelSummary(channel)}**`,
    '',
    `Chat: \`${chatId}\``,
    `Channel workflow: \`channel-${channelId}\``,
  ];
  if (consoleUrl) {
    const base = consoleUrl.replace(/\/$/, '');
    lines.push(
      '',
      `[Open channel ${channelId}'s messages in the Wharf console](${base}/#/channels/${encodeURIComponent(channelId)}/messages)`,
    );
  }
  return lines.join('\n');
}

/**
 * The metadata for a new chat workflow: the channel's summary and the chat's when the channel is known,
 * else (no source registered, a channel the store does not know, a store that failed) the chat's alone —
 * metadata must never keep a message from its chat.
 */
export async function chatMetadata(
  client: Client,
  channelId: string,
  chatId: string,
  first?: InboundMessage,
): Promise<ChatMetadata> {
  const chat = chatSummary(channelId, chatId, first);
  const registered = sources.get(client);
  if (!registered) return { staticSummary: chat };
  const channel = await lookup(registered, channelId).catch(() => null);
  if (!channel) return { staticSummary: chat };
  return {
    staticSummary: `${chat} · ${channelSummary(channel)}`,
    staticDetails: chatDetails(channelId, chatId, channel, registered.source.consoleUrl),
  };
}

function lookup({ source, cache }: Registered, channelId: string): Promise<ChatChannel | null> {
  const now = Date.now();
  const hit = cache.get(channelId);
  if (hit && now - hit.at < CACHE_MS) return hit.channel;
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
  const channel = source
    .channel(channelId)
    .then((ch) =>
      ch ? { provider: ch.provider, selfAddress: ch.selfAddress, space: ch.space, agent: ch.agent } : null,
    );
  // A failed read is not remembered: the next chat asks again.
  channel.catch(() => cache.delete(channelId));
  cache.set(channelId, { at: now, channel });
  return channel;
}
