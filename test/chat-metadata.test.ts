import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { chatMetadata, describeChatsWith, type ChatChannel } from '../lib/chat-metadata.js';
import type { InboundMessage } from '../lib/types.js';

const channel: ChatChannel = {
  provider: 'whatsapp_cloud',
  selfAddress: '+15550001111',
  space: 'support',
  agent: 'assistant',
};
const first = {
  id: 'wamid.1',
  channelId: 'ch1',
  chat: { kind: 'direct', id: '+15551234567' },
  sender: { address: '+15551234567', name: 'Ada' },
  text: 'hi',
  timestamp: 1_796_202_000,
} as InboundMessage;

describe('chat workflow metadata', () => {
  it('names provider, number, space, agent and chat, and links back to the console', async () => {
    const client = {} as Client;
    describeChatsWith(client, { channel: async () => channel, consoleUrl: 'https://wharf.example.com/' });
    const meta = await chatMetadata(client, 'ch1', '+15551234567', first);
    expect(meta.staticSummary).toBe(
      'WhatsApp chat +15551234567 (Ada) · channel ch1 · WhatsApp (Meta Cloud API) · +15550001111 · space “support” · agent assistant',
    );
    expect(meta.staticDetails).toContain('[Open channel ch1');
    expect(meta.staticDetails).toContain('(https://wharf.example.com/#/channels/ch1/messages)');
  });

  it('reads a channel once for a burst of new chats', async () => {
    const client = {} as Client;
    let reads = 0;
    describeChatsWith(client, { channel: async () => (reads++, channel) });
    await Promise.all(['+1', '+2', '+3'].map((chat) => chatMetadata(client, 'ch1', chat)));
    expect(reads).toBe(1);
  });

  it('falls back to the chat alone when the channel is unknown, the store fails or nothing is registered', async () => {
    const unknown = {} as Client;
    describeChatsWith(unknown, { channel: async () => null });
    expect(await chatMetadata(unknown, 'gone', '+1')).toEqual({ staticSummary: 'WhatsApp chat +1 · channel gone' });
    const failing = {} as Client;
    describeChatsWith(failing, { channel: () => Promise.reject(new Error('store down')) });
    expect((await chatMetadata(failing, 'ch1', '+1')).staticDetails).toBeUndefined();
    expect(await chatMetadata({} as Client, 'ch1', '+1')).toEqual({ staticSummary: 'WhatsApp chat +1 · channel ch1' });
  });
});
