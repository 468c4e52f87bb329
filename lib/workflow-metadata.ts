/**
 * What operators read in the Temporal Web UI's workflow list (user metadata): a one-line summary of a
 * channel or chat and Markdown details. Pure functions (workflow code uses them for its current details).
 */
import { PROVIDER_INFO, type ChannelState, type InboundMessage } from './types.js';

/** A channel's one-line summary: provider, number, space and agent. */
export function channelSummary(ch: Pick<ChannelState, 'provider' | 'selfAddress' | 'space' | 'agent'>): string {
  const number = ch.selfAddress ?? 'number not linked yet';
  return `${PROVIDER_INFO[ch.provider].label} · ${number} · space “${ch.space}” · agent ${ch.agent}`;
}

/** A channel's details in Markdown: its state now and, when the console's address is known, a link to it. */
export function channelDetails(
  ch: Pick<
    ChannelState,
    'id' | 'provider' | 'selfAddress' | 'space' | 'agent' | 'status' | 'statusReason' | 'pairedAddresses'
  >,
  consoleUrl?: string,
): string {
  const lines = [
    `**${channelSummary(ch)}**`,
    '',
    `Status: **${ch.status}** — ${ch.statusReason}`,
    `Paired addresses: ${ch.pairedAddresses.length ? ch.pairedAddresses.map((p) => p.address).join(', ') : 'none'}`,
    `Chats: \`WharfChannelId = "${ch.id}"\``,
  ];
  if (consoleUrl)
    lines.push(
      '',
      `[Open channel ${ch.id} in the Wharf console](${consoleUrl.replace(/\/$/, '')}/#/channels/${encodeURIComponent(ch.id)})`,
    );
  return lines.join('\n');
}

/** A chat's one-line summary: who, which kind of chat, which channel. */
export function chatSummary(channelId: string, chatId: string, first?: InboundMessage): string {
  const who = first?.chat.name ?? first?.sender.name;
  const kind = first?.chat.kind === 'group' ? 'group' : 'chat';
  return `WhatsApp ${kind} ${chatId}${who ? ` (${who})` : ''} · channel ${channelId}`;
}
