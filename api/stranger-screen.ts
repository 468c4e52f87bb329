/**
 * Strangers are turned away at the webhook. A message that admission would certainly deny — its sender is
 * neither paired nor the channel's own number, it is not the live pairing code, and Cedar's
 * `receive_message` denies it — is recorded `denied` on the message log right here, before the 200, and
 * never starts or wakes a chat workflow. So a flood from any number of senders costs one policy decision
 * and one row per message, not a workflow each: it cannot take the engine's capacity (workflow starts,
 * worker slots, the dev server's single writer) away from other chats and channels.
 *
 * Nothing is denied on a stale view: a message the cached copy of the channel would deny is decided again
 * on a fresh read (once per request). A sender whose message in this request, or in one this process
 * handed on in the last minutes, is the live code keeps going to their chat, where the code pairs them
 * first — so "code, then hello" is answered as before.
 */
import { countWrongPairingCode } from '../lib/metrics.js';
import { isLiveCode, isPairedSender, PAIRING_TTL_MS } from '../lib/pairing.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelState, InboundMessage, UnhandledInbound } from '../lib/types.js';

/** What the screen decided for one webhook's messages. */
export interface Screened {
  /** Messages that go to their chat workflows (in payload order). */
  toChats: InboundMessage[];
  /** Messages denied here, as message-log entries. */
  denied: UnhandledInbound[];
}

/** Builds the screen; `policy` is the same Cedar service admission uses. */
export function createStrangerScreen({ store, policy }: { store: Store; policy: PolicyService }) {
  // Senders who sent the live code through this process recently (key: channel + address), so their
  // next messages wait behind the code in their chat instead of being denied before it pairs them.
  const codeSenders = new Map<string, number>();
  const remember = (channelId: string, address: string): void => {
    if (codeSenders.size > 10_000) {
      const now = Date.now();
      for (const [k, at] of codeSenders) if (now - at > PAIRING_TTL_MS) codeSenders.delete(k);
      if (codeSenders.size > 10_000) codeSenders.clear();
    }
    codeSenders.set(`${channelId}\u0000${address}`, Date.now());
  };
  const sentCodeRecently = (channelId: string, address: string): boolean => {
    const at = codeSenders.get(`${channelId}\u0000${address}`);
    return at !== undefined && Date.now() - at < PAIRING_TTL_MS;
  };

  /** Whether admission would let `m` through pairing or policy, by `ch` (decided the same way). */
  const mayPass = async (
    ch: ChannelState,
    m: InboundMessage,
    now: number,
  ): Promise<{ pass: true } | { pass: false; reasons: string[] }> => {
    if (m.chat.kind === 'direct' && isLiveCode(ch, m.text, now)) return { pass: true };
    if (sentCodeRecently(ch.id, m.sender.address)) return { pass: true };
    const paired = isPairedSender(ch, m.sender);
    if (paired) return { pass: true };
    const d = await policy.decide({
      agent: ch.agent,
      channelId: ch.id,
      provider: ch.provider,
      message: { id: m.id, sender: { ...m.sender, paired }, chat: m.chat },
    });
    return d.decision === 'allow' ? { pass: true } : { pass: false, reasons: d.reasons };
  };

  return {
    /**
     * Splits a webhook's messages of `cached` (a recent copy of the channel) into those that go to their
     * chats and those denied here.
     */
    async screen(cached: ChannelState, messages: InboundMessage[]): Promise<Screened> {
      // A failed or disconnected channel's messages go on: admission records them as ignored, with why.
      if (cached.status === 'failed' || cached.status === 'disconnected') return { toChats: messages, denied: [] };
      const now = Date.now();
      const toChats: InboundMessage[] = [];
      const candidates: InboundMessage[] = [];
      for (const m of messages) {
        if (m.chat.kind === 'direct' && isLiveCode(cached, m.text, now)) remember(cached.id, m.sender.address);
        if ((await mayPass(cached, m, now)).pass) toChats.push(m);
        else candidates.push(m);
      }
      if (!candidates.length) return { toChats, denied: [] };
      // Decide the would-be denials again on the channel as it is now (a pairing may have just happened).
      const fresh = await store.channels.get(cached.id);
      if (!fresh) return { toChats: messages, denied: [] };
      const denied: UnhandledInbound[] = [];
      const passing = new Set<InboundMessage>(toChats);
      for (const m of candidates) {
        if (m.chat.kind === 'direct' && isLiveCode(fresh, m.text, now)) remember(fresh.id, m.sender.address);
        const r = await mayPass(fresh, m, now);
        if (r.pass) passing.add(m);
        else {
          if (m.chat.kind === 'direct') countWrongPairingCode(m.text);
          denied.push({
            id: m.id,
            chatId: m.chat.id,
            address: m.sender.address,
            type: m.type ?? 'text',
            text: m.text,
            status: 'denied',
            reason:
              'Not paired, and no policy lets this sender through receive_message (decided at the webhook; no chat workflow was started).',
            detail: { reasons: r.reasons },
          });
        }
      }
      return { toChats: messages.filter((m) => passing.has(m)), denied };
    },
  };
}

/** The screen's type. */
export type StrangerScreen = ReturnType<typeof createStrangerScreen>;
