/**
 * Activities of the chat workflow: admission (dedupe, pairing, policy), agents, and delivery of replies
 * through the provider. Each is idempotent for its own retries, so a crash repeats a send only in the one
 * window nobody can close (the provider accepted it, the crash came before it was recorded).
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { FAILURE } from '../lib/errors.js';
import { formatReply } from '../lib/format/index.js';
import type { GraphClient } from '../lib/graph/graph-client.js';
import { GraphError } from '../lib/graph/graph-client.js';
import type { Logger } from '../lib/logger.js';
import { looksLikePairingCode } from '../lib/pairing.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { AgentRecord, Store } from '../lib/store/store.js';
import { PROVIDER_INFO, type CredentialRef, type DeliveryStatus, type InboundMessage, type InboundMode, type Provider } from '../lib/types.js';
import { pairSender } from '../workflows/channel-messages.js';
import type { Turn } from '../workflows/chat-messages.js';
import { completeChat, type OpenAiAgentConfig } from './openai-agent.js';
import { resolveSecret } from './secrets.js';

/** What the chat activities need. */
export interface ChatActivityDeps {
  store: Store;
  graph: GraphClient;
  policy: PolicyService;
  client: Client;
  log: Logger;
  /** Sends through a personal-account session held by this process (only on the session worker). */
  personal?: { sendText(input: { channelId: string; to: string; text: string }): Promise<{ messageId: string }> };
}

/** The outcome of admitting one inbound message (SPEC §5 order: dedupe, pairing, policy, mode). */
export type Admission =
  | { action: 'duplicate' }
  | { action: 'ignored'; reason: string }
  | { action: 'paired'; provider: Provider; sessionQueue: string | null }
  | { action: 'denied'; reasons: string[] }
  | { action: 'deliver'; mode: InboundMode; space: string; provider: Provider; agent: AgentRecord; sessionQueue: string | null };

/** Builds the chat workflow's activities. */
export function createChatActivities({ store, graph, policy, client, log, personal }: ChatActivityDeps) {
  return {
    /** Records the message once (durable dedupe), then applies pairing and the `receive_message` policy. */
    async admitInbound({ message, claim }: { message: InboundMessage; claim: string }): Promise<Admission> {
      const fresh = await store.messages.recordInbound({
        channelId: message.channelId,
        id: message.id,
        chatId: message.chat.id,
        address: message.sender.address,
        text: message.text,
        claim,
      });
      if (!fresh) {
        log.debug({ channelId: message.channelId, messageId: message.id }, 'redelivered message dropped');
        return { action: 'duplicate' };
      }
      const ch = await store.channels.getRecent(message.channelId);
      if (!ch) return outcome(store, message, 'ignored', { reason: 'The channel no longer exists.' });
      if (ch.status === 'failed' || ch.status === 'disconnected') {
        return outcome(store, message, 'ignored', { reason: `The channel is ${ch.status}: ${ch.statusReason}` });
      }
      if (message.chat.kind === 'direct' && looksLikePairingCode(message.text) && (ch.pairing || ch.lastPairing)) {
        const handle = client.workflow.getHandle(`channel-${ch.id}`);
        const { paired } = await handle.executeUpdate(pairSender, { args: [{ code: message.text, address: message.sender.address }] });
        if (paired) {
          await store.messages.setInboundStatus(ch.id, message.id, 'paired');
          log.info({ channelId: ch.id, address: message.sender.address }, 'sender paired');
          return { action: 'paired', provider: ch.provider, sessionQueue: ch.sessionQueue ?? null };
        }
      }
      const paired = ch.selfAddress === message.sender.address || ch.pairedAddresses.some((p) => p.address === message.sender.address);
      const decision = await policy.decide({
        agent: ch.agent,
        channelId: ch.id,
        provider: ch.provider,
        message: { id: message.id, sender: { ...message.sender, paired }, chat: message.chat },
      });
      if (decision.decision === 'deny') {
        await store.messages.setInboundStatus(ch.id, message.id, 'denied', { reasons: decision.reasons, errors: decision.errors });
        return { action: 'denied', reasons: decision.reasons };
      }
      const agent = await store.agents.get(ch.agent);
      if (!agent) return outcome(store, message, 'failed', { reason: `Agent "${ch.agent}" does not exist any more; bind the channel to another agent.` });
      if (ch.inbound === 'signal') await store.messages.setInboundStatus(ch.id, message.id, 'held', { space: ch.space });
      return { action: 'deliver', mode: ch.inbound, space: ch.space, provider: ch.provider, agent, sessionQueue: ch.sessionQueue ?? null };
    },

    /** Records the final outcome of an inbound message on the message log. */
    async setInboundOutcome({ channelId, id, status, detail }: { channelId: string; id: string; status: string; detail?: Record<string, unknown> }): Promise<void> {
      await store.messages.setInboundStatus(channelId, id, status, detail);
    },

    /** Runs a built-in or HTTP agent on the conversation and returns its Markdown reply ('' = no answer). */
    async runAgent({ agent, history, text }: { agent: AgentRecord; channelId: string; history: Turn[]; text: string }): Promise<{ reply: string }> {
      if (agent.kind === 'echo') return { reply: text };
      if (agent.kind === 'openai') {
        const cfg = agent.config as unknown as OpenAiAgentConfig & { apiKey: CredentialRef };
        const apiKey = await resolveSecret(store, `agent ${agent.id} apiKey`, cfg.apiKey);
        return { reply: await completeChat(cfg, apiKey, history, text) };
      }
      throw ApplicationFailure.create({ type: FAILURE.agentFailed, message: `Agent kind "${agent.kind}" cannot run in an activity.`, nonRetryable: true });
    },

    /**
     * Formats Markdown for the channel's provider, splits it at the provider's limit and sends the parts in
     * order. Each part is recorded before and after its send under a key derived from `replyKey`, so a
     * retry skips the parts that already went out.
     */
    async deliverReply(input: { channelId: string; chatId: string; to: string; replyKey: string; markdown: string; inboundId?: string; outcome?: string }): Promise<{ ids: string[] }> {
      const ch = await store.channels.getRecent(input.channelId);
      if (!ch) return { ids: [] };
      const parts = formatReply(input.markdown, { limit: PROVIDER_INFO[ch.provider].textLimit });
      if (ch.provider === 'whatsapp_user' && !personal) {
        throw ApplicationFailure.create({ type: 'WharfSessionUnavailable', message: 'This worker holds no WhatsApp session for the channel.', nonRetryable: false });
      }
      const ids: string[] = [];
      for (const [i, text] of parts.entries()) {
        const key = `${input.replyKey}#${i + 1}`;
        const base = { channelId: ch.id, key, chatId: input.chatId, address: input.to, text };
        const last = i === parts.length - 1;
        // The agent's Markdown goes on the inbound row: a restarted chat rebuilds its window from it.
        const outcome = last && input.inboundId && input.outcome ? { id: input.inboundId, status: input.outcome, detail: { parts: parts.length, markdown: input.markdown } } : undefined;
        const done = await store.messages.claimOutbound(base);
        if (done) {
          ids.push(done);
          if (outcome) await store.messages.setInboundStatus(ch.id, outcome.id, outcome.status, outcome.detail);
          continue;
        }
        let messageId: string;
        if (ch.provider === 'whatsapp_user' && personal) {
          // Session errors are retryable ApplicationFailures thrown by the session layer itself.
          ({ messageId } = await personal.sendText({ channelId: ch.id, to: input.chatId, text }));
        } else {
          try {
            const accessToken = await resolveSecret(store, 'access_token', ch.config.access_token);
            ({ messageId } = await graph.sendText({ phoneNumberId: String(ch.config.phone_number_id), accessToken, to: input.to, body: text }));
          } catch (err) {
            if (!(err instanceof GraphError)) throw err;
            await store.messages.recordOutbound({ ...base, status: err.retryable ? 'sending' : 'failed', detail: { code: err.code, title: err.title, message: err.message } });
            await store.diagnostics.sendError(ch.id, { code: err.code, message: err.message });
            log.warn({ channelId: ch.id, code: err.code, retryable: err.retryable }, 'send refused by the Graph API');
            throw ApplicationFailure.create({ type: err.failureType ?? 'WharfGraphUnavailable', message: err.message, nonRetryable: !err.retryable, details: [{ code: err.code }] });
          }
        }
        await store.messages.completeOutbound({ channelId: ch.id, key, providerId: messageId, inbound: outcome });
        ids.push(messageId);
      }
      if (!parts.length && input.inboundId && input.outcome) await store.messages.setInboundStatus(ch.id, input.inboundId, input.outcome, { parts: 0 });
      return { ids };
    },

    /** Applies delivery statuses to the outbound message log. */
    async recordStatuses({ channelId, statuses }: { channelId: string; statuses: DeliveryStatus[] }): Promise<void> {
      for (const st of statuses) {
        const detail = st.error ? { error: st.error } : undefined;
        const matched = await store.messages.applyStatus(channelId, st.id, st.status, detail);
        if (st.status === 'failed' && st.error) await store.diagnostics.sendError(channelId, { code: st.error.code, message: st.error.title });
        if (!matched) log.debug({ channelId, providerId: st.id, status: st.status }, 'status for an unknown outbound message');
      }
    },

    /** The recent conversation of a chat from the message log (rebuilds the window of a restarted chat). */
    async loadWindow({ channelId, chatId, limit }: { channelId: string; chatId: string; limit: number }): Promise<Turn[]> {
      const rows = await store.messages.chatWindow(channelId, chatId, limit);
      const turns: Turn[] = [];
      for (const r of rows) {
        turns.push({ role: 'user', text: r.text, at: r.createdAt });
        const markdown = r.detail?.markdown;
        if (typeof markdown === 'string') turns.push({ role: 'assistant', text: markdown, at: r.updatedAt });
      }
      return turns.slice(-limit);
    },
  };
}

async function outcome(store: Store, m: InboundMessage, status: 'ignored' | 'failed', detail: { reason: string }): Promise<Admission> {
  await store.messages.setInboundStatus(m.channelId, m.id, status, detail);
  return { action: 'ignored', reason: detail.reason };
}

/** The chat activities' type, for `proxyActivities`. */
export type ChatActivities = ReturnType<typeof createChatActivities>;
