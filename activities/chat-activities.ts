/**
 * Activities of the chat workflow: admission (dedupe, pairing, policy), agents, and delivery of replies
 * through the provider. Each is idempotent for its own retries, so a crash repeats a send only in the one
 * window nobody can close (the provider accepted it, the crash came before it was recorded).
 */
import { createHash, randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { FAILURE } from '../lib/errors.js';
import { channelWorkflowId } from '../lib/workflow-ids.js';
import { formatReply } from '../lib/format/index.js';
import type { GraphClient } from '../lib/graph/graph-client.js';
import { GraphError } from '../lib/graph/graph-client.js';
import { messageLogIds } from '../lib/log-ids.js';
import type { Logger } from '../lib/logger.js';
import { countWrongPairingCode } from '../lib/metrics.js';
import { isLiveCode, isPairedSender } from '../lib/pairing.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { AgentRecord, Store } from '../lib/store/store.js';
import {
  PROVIDER_INFO,
  type ChannelState,
  type CredentialRef,
  type DeliveryStatus,
  type InboundMessage,
  type InboundMode,
  type Provider,
  type ReplyAttachment,
} from '../lib/types.js';
import { pairSender } from '../workflows/channel-messages.js';
import { answerReply, pairedReply, type ReplyInput, type Turn } from '../workflows/chat-messages.js';
import { checkAttachments, takeMarkdownImages } from '../lib/attachments.js';
import { completeChat, OpenAiAgentConfigSchema } from './openai-agent.js';
import { TRANSCRIPTION_MAX_BYTES, transcribe } from './transcription.js';
import { attachmentLine, createAttachmentSender, type PersonalSends } from './outbound-media.js';
import { resolveChannelSecret, resolveSecret } from './secrets.js';

/** What the chat activities need. */
export interface ChatActivityDeps {
  store: Store;
  graph: GraphClient;
  policy: PolicyService;
  client: Client;
  log: Logger;
  /** Sends through a personal-account session held by this process (only on the session worker). */
  personal?: PersonalSends;
  /** How long one send attempt waits for a file's upload (activities/outbound-media.ts; tests shorten it). */
  uploadWaitMs?: number;
}

/** What became of one reply: the provider's ids of its parts, or why it was refused for good. */
export type ReplyResult = { ok: true; ids: string[] } | { ok: false; type: string; message: string };

/**
 * The outcome of admitting one inbound message (SPEC §5 order: dedupe, pairing, policy, mode). `sent` is
 * set when admission already sent the reply the message implies (see `admitInbound`'s `answer`).
 */
export type Admission =
  | { action: 'duplicate' }
  | { action: 'ignored'; reason: string }
  | { action: 'paired'; provider: Provider; sessionQueue: string | null; sent?: ReplyResult }
  | { action: 'denied'; reasons: string[] }
  | {
      action: 'deliver';
      mode: InboundMode;
      space: string;
      provider: Provider;
      agent: AgentRecord;
      sessionQueue: string | null;
      sent?: ReplyResult;
    };

/**
 * The reply an admission implies when no agent has to run for it — a pairing confirmation, or the built-in
 * echo agent's answer — on a channel whose sends run in this process (Cloud API). `undefined` otherwise.
 */
function replyWithoutAgent(ch: ChannelState, m: InboundMessage, a: Admission): ReplyInput | undefined {
  if (ch.provider === 'whatsapp_user') return undefined;
  if (a.action === 'paired') return pairedReply(m);
  // A media message's file is fetched by the workflow first; its echo line goes out from there.
  if (a.action === 'deliver' && a.mode === 'message' && a.agent.kind === 'echo' && !m.media && m.text.trim())
    return answerReply(m, m.text);
  return undefined;
}

/**
 * A retried admission of the message that used the code (its first attempt paired the sender, then died
 * before recording the outcome) is answered as it was then; any other use of a used code is just a text.
 */
function retriedPairing(ch: ChannelState | null, m: InboundMessage): boolean {
  return !!ch?.lastPairing && ch.lastPairing.messageId === m.id && ch.lastPairing.address === m.sender.address;
}

/** Whether admitting `m` goes to the channel workflow to pair its sender: the live code in a direct chat, or its retry. */
function pairingAttempt(ch: ChannelState, m: InboundMessage): boolean {
  return m.chat.kind === 'direct' && (isLiveCode(ch, m.text, Date.now()) || retriedPairing(ch, m));
}

/** Runs one task per key at a time, in arrival order (this process's pairing attempts, per channel). */
export function createKeyedGate() {
  const tails = new Map<string, Promise<unknown>>();
  return {
    /** Runs `task` once every earlier task of `key` has settled. */
    run<T>(key: string, task: () => Promise<T>): Promise<T> {
      const next = (tails.get(key) ?? Promise.resolve()).then(task, task);
      const tail = next.then(
        () => undefined,
        () => undefined,
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return next;
    },
  };
}

/** PostgreSQL error classes that mean the data itself cannot be stored: retrying the same input never helps. */
const DATA_ERROR_CLASSES = ['22', '23', '54'];

/**
 * Runs a store write of outside input. A data error (SQLSTATE class 22 data exception, 23 integrity, 54
 * limit exceeded) becomes a non-retryable `WharfUnprocessableMessage`, so the chat workflow records the
 * message as failed and moves on instead of retrying it for ever; anything else (the store is down) stays
 * retryable.
 */
async function unprocessable<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && DATA_ERROR_CLASSES.includes(code.slice(0, 2))) {
      throw ApplicationFailure.create({
        type: FAILURE.unprocessableMessage,
        message: `The store refused this message (SQLSTATE ${code}): ${(err as Error).message}`,
        nonRetryable: true,
      });
    }
    throw err;
  }
}

/** Builds the chat workflow's activities. */
export function createChatActivities({ store, graph, policy, client, log, personal, uploadWaitMs }: ChatActivityDeps) {
  const pairingGate = createKeyedGate();
  const attachments = createAttachmentSender({ store, graph, log, personal, uploadWaitMs });
  /** `replies` formatted for the channel's provider and split into parts, and this attempt's claim on them. */
  async function claimReplies(ch: ChannelState, chatId: string, replies: ReplyInput[]) {
    const limit = PROVIDER_INFO[ch.provider].textLimit;
    // Files go after the text, one part each (`<replyKey>#f<n>`), claimed and recorded like text parts.
    const planned = replies.map((r) => {
      const files = checkAttachments(r.attachments);
      if (files.problems.length)
        log.warn(
          { channelId: ch.id, replyKey: r.replyKey, problems: files.problems },
          'attachments of a reply were refused',
        );
      const text = formatReply(r.markdown, { limit }).map((t, i) => ({
        key: `${r.replyKey}#${i + 1}`,
        address: r.to,
        text: t,
        attachment: undefined as ReplyAttachment | undefined,
      }));
      const file = files.attachments.map((a, i) => ({
        key: `${r.replyKey}#f${i + 1}`,
        address: r.to,
        text: attachmentLine(a),
        attachment: a as ReplyAttachment | undefined,
      }));
      return { r, parts: [...text, ...file], problems: files.problems };
    });
    // Keys are unique: one reply per inbound message, one key per part. The claim is this attempt's own: a
    // retried task whose first attempt is still sending sees those parts busy and waits for it.
    const owner = randomUUID();
    const { done, busy } = await store.messages.claimOutbound(
      ch.id,
      chatId,
      planned.flatMap((p) => p.parts),
      owner,
    );
    return { planned, owner, done, busy };
  }
  type Claimed = Awaited<ReturnType<typeof claimReplies>>;

  /**
   * Formats each reply's Markdown for the channel's provider, splits it at the provider's limit and sends
   * the parts in order. Every part is claimed by this attempt before its send (all in one statement) and
   * recorded as accepted right after it, under a key derived from `replyKey`, so a later attempt skips
   * parts that already went out, and a part another attempt still holds (a retried task whose first
   * attempt is still sending) is not sent twice: its reply waits, as a failure worth retrying. A reply the
   * provider refuses for good is reported in its result and the next one is tried. A failure worth
   * retrying (Meta unavailable, rate limited) is thrown, or with `onRetryable` 'stop' ends the sending
   * there: the results then cover only the replies before it, and the unsent parts' claims are given back.
   * `claimed` is the claim `claimReplies` took for these replies already (admission takes it in the commit
   * that records the messages).
   */
  async function formatAndSend(
    ch: ChannelState,
    chatId: string,
    replies: ReplyInput[],
    onRetryable: 'throw' | 'stop',
    claimed?: Claimed,
  ): Promise<ReplyResult[]> {
    const { planned, owner, done, busy } = claimed ?? (await claimReplies(ch, chatId, replies));
    let accessToken: string | undefined;
    const token = async (): Promise<string> =>
      (accessToken ??= await resolveChannelSecret({ store, client }, ch, 'access_token', ch.config.access_token));
    const send = async (part: {
      key: string;
      address: string;
      text: string;
      attachment?: ReplyAttachment;
    }): Promise<string> => {
      if (part.attachment)
        return attachments.send({
          ch,
          chatId,
          to: part.address,
          key: part.key,
          attachment: part.attachment,
          accessToken: token,
        });
      // Session errors are retryable ApplicationFailures thrown by the session layer itself.
      if (ch.provider === 'whatsapp_user' && personal)
        return (await personal.sendText({ channelId: ch.id, to: chatId, text: part.text })).messageId;
      return (
        await graph.sendText({
          phoneNumberId: String(ch.config.phone_number_id),
          accessToken: await token(),
          to: part.address,
          body: part.text,
        })
      ).messageId;
    };
    const results: ReplyResult[] = [];
    // Stopped or failed half-way: the parts this attempt claimed and did not send go back at once.
    let finished = false;
    try {
      for (const { r, parts, problems } of planned) {
        // The agent's Markdown goes on the inbound row: a restarted chat rebuilds its window from it.
        const outcome =
          r.inboundId && r.outcome
            ? {
                id: r.inboundId,
                status: r.outcome,
                detail: {
                  parts: parts.length,
                  markdown: r.markdown,
                  ...(problems.length ? { attachmentProblems: problems } : {}),
                },
              }
            : undefined;
        const ids: string[] = [];
        try {
          if (parts.some((part) => busy.has(part.key))) {
            throw ApplicationFailure.create({
              type: FAILURE.sendInProgress,
              message: 'An earlier attempt is still sending this reply; trying again shortly.',
              nonRetryable: false,
            });
          }
          for (const [i, part] of parts.entries()) {
            const last = i === parts.length - 1;
            const earlier = done.get(part.key);
            if (earlier) {
              ids.push(earlier);
              if (last && outcome)
                await store.messages.setInboundStatus(ch.id, outcome.id, outcome.status, outcome.detail);
              continue;
            }
            let messageId: string;
            try {
              messageId = await send(part);
            } catch (err) {
              if (!(err instanceof GraphError)) throw err;
              const base = { channelId: ch.id, key: part.key, chatId, address: part.address, text: part.text };
              await store.messages.recordOutbound({
                ...base,
                status: err.retryable ? 'sending' : 'failed',
                detail: { code: err.code, title: err.title, message: err.message },
              });
              await store.diagnostics.sendError(ch.id, { code: err.code, message: err.message });
              log.warn(
                {
                  ...messageLogIds(ch.id, chatId),
                  messageId: r.inboundId,
                  key: part.key,
                  code: err.code,
                  retryable: err.retryable,
                },
                'send refused by the Graph API',
              );
              throw ApplicationFailure.create({
                type: err.failureType ?? FAILURE.graphUnavailable,
                message: err.message,
                nonRetryable: !err.retryable,
                details: [{ code: err.code }],
              });
            }
            await store.messages.completeOutbound({
              channelId: ch.id,
              key: part.key,
              providerId: messageId,
              inbound: last ? outcome : undefined,
            });
            log.debug(
              { ...messageLogIds(ch.id, chatId), messageId: r.inboundId, key: part.key, providerId: messageId },
              'reply part sent',
            );
            ids.push(messageId);
          }
          if (!parts.length && outcome)
            await store.messages.setInboundStatus(ch.id, outcome.id, outcome.status, { parts: 0 });
          results.push({ ok: true, ids });
        } catch (err) {
          // Refused for good: this reply failed, the others still go. Anything else: the activity retries,
          // or (onRetryable 'stop') leaves this reply and the ones after it to a later delivery.
          if (err instanceof ApplicationFailure && err.nonRetryable) {
            results.push({ ok: false, type: err.type ?? 'Error', message: err.message });
            continue;
          }
          if (onRetryable === 'stop' && err instanceof ApplicationFailure) return results;
          throw err;
        }
      }
      finished = true;
    } finally {
      if (!finished) await store.messages.releaseOutbound(ch.id, owner);
    }
    return results;
  }

  return {
    /**
     * Admits a chat's queued messages together (SPEC §5 order per message: dedupe, pairing, policy, mode):
     * one statement records them all (the durable dedupe), one more writes the outcomes decided here.
     *
     * With `answer`, it also sends the replies that need no agent (pairing confirmations, the echo agent's
     * answers) of the batch's leading messages, in order, so that such a batch costs the chat workflow one
     * local activity instead of two. It stops at the first message that needs the workflow (an agent, a
     * hand-off) or whose send Meta asks to retry: those replies go out from the workflow as before, under
     * the same keys, so nothing is sent twice. Unless the batch holds a pairing attempt, its record, its
     * outcomes and those replies' claim commit together (one commit instead of two on SQLite); a crash after
     * it leaves the claim to be taken over as any other an attempt left.
     */
    async admitInbound({
      channelId,
      messages,
      claim,
      answer,
    }: {
      channelId: string;
      messages: InboundMessage[];
      claim: string;
      answer?: boolean;
    }): Promise<Admission[]> {
      const record = (): Promise<Set<string>> =>
        unprocessable(() =>
          store.messages.recordInbound(
            channelId,
            claim,
            messages.map((m) => ({
              id: m.id,
              chatId: m.chat.id,
              address: m.sender.address,
              text: m.text,
              type: m.type ?? 'text',
            })),
          ),
        );
      // A batch answered here that holds no pairing attempt (those wait for the channel workflow) is recorded,
      // admitted and its replies claimed in one commit (`store.together`); the sends follow it.
      const first = await store.together(async () => {
        const fresh = await record();
        // As fresh as a read (`getRecent`: on a shared store a read, on an embedded one a copy every write
        // drops): pairing and un-pairing take effect for every message admitted after the change returned,
        // whichever process made it (SPEC §5). One read per batch: a batch is admitted at that moment.
        const ch = await store.channels.getRecent(channelId);
        if (!answer || !ch || messages.some((m) => pairingAttempt(ch, m))) return { fresh, ch };
        const admissions = await admitAll(fresh, ch);
        const leading = leadingReplies(ch, admissions);
        const claimed = leading.length
          ? await claimReplies(
              ch,
              messages[0].chat.id,
              leading.map((x) => x.reply),
            )
          : undefined;
        return { fresh, ch, admissions, leading, claimed };
      });
      const { ch } = first;
      const admissions = first.admissions ?? (await admitAll(first.fresh, ch));
      if (!answer || !ch) return admissions;
      const leading = first.leading ?? leadingReplies(ch, admissions);
      if (!leading.length) return admissions;
      const sent = await formatAndSend(
        ch,
        messages[0].chat.id,
        leading.map((x) => x.reply),
        'stop',
        first.claimed,
      );
      for (const [i, result] of sent.entries()) (admissions[leading[i].at] as { sent?: ReplyResult }).sent = result;
      return admissions;

      /** Admits each message in order (dedupe, pairing, policy) and records the outcomes decided here. */
      async function admitAll(fresh: Set<string>, ch: ChannelState | null): Promise<Admission[]> {
        const outcomes: Array<{ id: string; status: string; detail?: Record<string, unknown> }> = [];
        const pairedHere = new Set<string>();
        let agent: AgentRecord | null | undefined;
        const admit = async (message: InboundMessage): Promise<Admission> => {
          if (!fresh.has(message.id)) {
            log.debug(
              { ...messageLogIds(channelId, message.chat.id), messageId: message.id },
              'redelivered message dropped',
            );
            return { action: 'duplicate' };
          }
          const ignore = (status: 'ignored' | 'failed', reason: string): Admission => {
            outcomes.push({ id: message.id, status, detail: { reason } });
            return { action: 'ignored', reason };
          };
          if (!ch) return ignore('ignored', 'The channel no longer exists.');
          if (ch.status === 'failed' || ch.status === 'disconnected')
            return ignore('ignored', `The channel is ${ch.status}: ${ch.statusReason}`);
          // Only the live code itself reaches the channel workflow, and one attempt at a time per channel: a
          // flood of code-shaped texts costs the channel nothing (it once exhausted Temporal's ten in-flight
          // updates per workflow and stalled every channel behind the worker's slots).
          if (pairingAttempt(ch, message)) {
            const paired = await pairingGate.run(ch.id, async () => {
              const now = await store.channels.get(ch.id);
              if (!now || !isLiveCode(now, message.text, Date.now())) return retriedPairing(now, message);
              const handle = client.workflow.getHandle(channelWorkflowId(ch.id));
              return (
                await handle.executeUpdate(pairSender, {
                  args: [{ code: message.text, address: message.sender.address, messageId: message.id }],
                })
              ).paired;
            });
            if (paired) {
              pairedHere.add(message.sender.address);
              outcomes.push({ id: message.id, status: 'paired' });
              log.info(
                { ...messageLogIds(ch.id, message.chat.id), messageId: message.id, address: message.sender.address },
                'sender paired',
              );
              return { action: 'paired', provider: ch.provider, sessionQueue: ch.sessionQueue ?? null };
            }
          }
          const address = message.sender.address;
          const paired = pairedHere.has(address) || isPairedSender(ch, message.sender);
          if (!paired && message.chat.kind === 'direct') countWrongPairingCode(message.text);
          const decision = await policy.decide({
            agent: ch.agent,
            channelId: ch.id,
            provider: ch.provider,
            message: { id: message.id, sender: { ...message.sender, paired }, chat: message.chat },
          });
          if (decision.decision === 'deny') {
            outcomes.push({
              id: message.id,
              status: 'denied',
              detail: { reasons: decision.reasons, errors: decision.errors },
            });
            return { action: 'denied', reasons: decision.reasons };
          }
          if (agent === undefined) agent = await store.agents.get(ch.agent);
          if (!agent)
            return ignore('failed', `Agent "${ch.agent}" does not exist any more; bind the channel to another agent.`);
          if (ch.inbound === 'signal') outcomes.push({ id: message.id, status: 'held', detail: { space: ch.space } });
          return {
            action: 'deliver',
            mode: ch.inbound,
            space: ch.space,
            provider: ch.provider,
            agent,
            sessionQueue: ch.sessionQueue ?? null,
          };
        };
        const admissions: Admission[] = [];
        for (const m of messages) {
          const a = await admit(m);
          admissions.push(a);
          log.debug(
            { ...messageLogIds(channelId, m.chat.id), messageId: m.id, action: a.action },
            'inbound message admitted',
          );
        }
        await store.messages.setInboundStatuses(channelId, outcomes);
        return admissions;
      }

      /** The replies of the batch's leading messages that need no agent, in order (see `replyWithoutAgent`). */
      function leadingReplies(ch: ChannelState, admissions: Admission[]): Array<{ at: number; reply: ReplyInput }> {
        const leading: Array<{ at: number; reply: ReplyInput }> = [];
        for (const [at, m] of messages.entries()) {
          const a = admissions[at];
          if (a.action !== 'paired' && a.action !== 'deliver') continue; // nothing to send for it
          const reply = replyWithoutAgent(ch, m, a);
          if (!reply) break;
          leading.push({ at, reply });
        }
        return leading;
      }
    },

    /**
     * Records a message the store refused for good (see `unprocessable`) as failed, with the reason. If even
     * its id cannot be stored, it is recorded under a digest of the id: the operator still sees it.
     */
    async recordUnprocessable({
      channelId,
      message,
      reason,
    }: {
      channelId: string;
      message: { id: string; chatId: string; address: string; type: string };
      reason: string;
    }): Promise<void> {
      const entry = {
        id: message.id,
        chatId: message.chatId,
        address: message.address,
        type: message.type,
        text: '',
        status: 'failed' as const,
        reason: `Could not be processed: ${reason}`,
      };
      try {
        await store.messages.recordUnhandled(channelId, [entry]);
      } catch (err) {
        const digest = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 32);
        log.warn(
          { ...messageLogIds(channelId, message.chatId.slice(0, 200)), err: (err as Error).message },
          'unprocessable message recorded under a digest of its id',
        );
        await store.messages.recordUnhandled(channelId, [
          {
            ...entry,
            id: `unprocessable:${digest(message.id)}`,
            chatId: digest(message.chatId),
            address: null,
            type: message.type.slice(0, 32),
          },
        ]);
      }
      log.warn(
        { ...messageLogIds(channelId, message.chatId.slice(0, 200)), messageId: message.id.slice(0, 200), reason },
        'inbound message could not be processed; recorded as failed and skipped',
      );
    },

    /** Records final outcomes of inbound messages on the message log (`failed` never replaces `answered`). */
    async setInboundOutcomes({
      channelId,
      outcomes,
    }: {
      channelId: string;
      outcomes: Array<{ id: string; status: string; detail?: Record<string, unknown> }>;
    }): Promise<void> {
      await store.messages.setInboundStatuses(channelId, outcomes);
    },

    /**
     * Runs a built-in or HTTP agent on the conversation and returns its Markdown reply ('' = no answer). An
     * OpenAI-compatible agent's Markdown images with https URLs come back as image attachments.
     */
    async runAgent({
      agent,
      channelId,
      history,
      text,
      imageMediaId,
      audioMediaId,
    }: {
      agent: AgentRecord;
      channelId: string;
      history: Turn[];
      text: string;
      imageMediaId?: string;
      audioMediaId?: string;
    }): Promise<{ reply: string; attachments?: ReplyAttachment[] }> {
      if (agent.kind === 'echo') return { reply: text };
      if (agent.kind === 'openai') {
        const parsed = OpenAiAgentConfigSchema.safeParse(agent.config);
        if (!parsed.success) {
          throw ApplicationFailure.create({
            type: FAILURE.agentFailed,
            message: `Agent "${agent.id}" has a stored config that is not an OpenAI-compatible one (${parsed.error.issues.map((i) => i.path.join('.') || 'config').join(', ')}); add the agent again.`,
            nonRetryable: true,
          });
        }
        const cfg = parsed.data;
        const ch = await store.channels.getRecent(channelId);
        const secret = async (label: string, ref: CredentialRef): Promise<string> =>
          ch ? resolveChannelSecret({ store, client }, ch, label, ref) : resolveSecret(store, label, ref);
        const apiKey = await secret(`agent ${agent.id} apiKey`, cfg.apiKey);
        // Audio is transcribed first when the agent names a transcription model; otherwise it stays described.
        const audio = cfg.transcription && audioMediaId ? await store.media.get(audioMediaId) : null;
        if (cfg.transcription && audio && audio.bytes.length <= TRANSCRIPTION_MAX_BYTES) {
          const t = cfg.transcription;
          const key = t.apiKey ? await secret(`agent ${agent.id} transcription apiKey`, t.apiKey) : apiKey;
          const heard = await transcribe(t.baseUrl ?? cfg.baseUrl, t.model, key, audio);
          text =
            'text' in heard
              ? `${text}\n(Transcript: ${heard.text})`
              : `${text}\n(It could not be transcribed: ${heard.error}.)`;
        }
        // An image goes to the model as an image content part (data URL), read from the store here.
        const file = imageMediaId ? await store.media.get(imageMediaId) : null;
        const image = file ? `data:${file.mime};base64,${file.bytes.toString('base64')}` : undefined;
        const answer = takeMarkdownImages(await completeChat(cfg, apiKey, history, text, { image }));
        return answer.attachments.length
          ? { reply: answer.text, attachments: answer.attachments }
          : { reply: answer.text };
      }
      throw ApplicationFailure.create({
        type: FAILURE.agentFailed,
        message: `Agent kind "${agent.kind}" cannot run in an activity.`,
        nonRetryable: true,
      });
    },

    /** Sends replies (see {@link formatAndSend}); a failure worth retrying fails the activity, which retries. */
    async deliverReplies({
      channelId,
      chatId,
      replies,
    }: {
      channelId: string;
      chatId: string;
      replies: ReplyInput[];
    }): Promise<ReplyResult[]> {
      const ch = await store.channels.getRecent(channelId);
      if (!ch) return replies.map(() => ({ ok: true, ids: [] }));
      if (ch.provider === 'whatsapp_user' && !personal) {
        throw ApplicationFailure.create({
          type: FAILURE.sessionUnavailable,
          message: 'This worker holds no WhatsApp session for the channel.',
          nonRetryable: false,
        });
      }
      return formatAndSend(ch, chatId, replies, 'throw');
    },

    /** Applies delivery statuses to the outbound message log. */
    async recordStatuses({ channelId, statuses }: { channelId: string; statuses: DeliveryStatus[] }): Promise<void> {
      for (const st of statuses) {
        const detail = st.error ? { error: st.error } : undefined;
        const matched = await store.messages.applyStatus(channelId, st.id, st.status, detail);
        if (st.status === 'failed' && st.error)
          await store.diagnostics.sendError(channelId, { code: st.error.code, message: st.error.title });
        if (!matched)
          log.debug({ channelId, providerId: st.id, status: st.status }, 'status for an unknown outbound message');
      }
    },

    /**
     * Where a personal channel's sends go now: the queue of the worker holding its session (a fresh read,
     * not the process copy), or null while no session is connected.
     */
    async currentSessionQueue({ channelId }: { channelId: string }): Promise<string | null> {
      const ch = await store.channels.get(channelId);
      return ch?.provider === 'whatsapp_user' && ch.status === 'connected' ? (ch.sessionQueue ?? null) : null;
    },

    /** The recent conversation of a chat from the message log (rebuilds the window of a restarted chat). */
    async loadWindow({
      channelId,
      chatId,
      limit,
    }: {
      channelId: string;
      chatId: string;
      limit: number;
    }): Promise<Turn[]> {
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

/** The chat activities' type, for `proxyActivities`. */
export type ChatActivities = ReturnType<typeof createChatActivities>;
