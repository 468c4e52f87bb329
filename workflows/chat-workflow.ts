/**
 * One chat of one channel, `chat-<channelId>-<chatId>` (SPEC §2): takes that chat's messages in order
 * (signal-with-start from the API), runs dedupe → pairing → policy → agent → format → send, keeps a
 * bounded conversation window, and continues-as-new. An idle chat completes; the next message starts it
 * again and its window is rebuilt from the message log.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  TimeoutFailure,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { Admission, ChatActivities, ReplyResult } from '../activities/chat-activities.js';
import type { MediaActivities } from '../activities/media-activities.js';
import { mediaLine, mediaText, type MediaKind, type MediaRef } from '../lib/media.js';
import { FAILURE, FINAL_FAILURE_TYPES } from '../lib/errors.js';
import { channelWorkflowId } from '../lib/workflow-ids.js';
import type { DeliveryStatus, InboundMessage, ReplyAttachment } from '../lib/types.js';
import { handOff, reportProblem } from './channel-messages.js';
import {
  answerReply,
  chatState,
  deliver,
  inbound,
  pairedReply,
  statuses,
  type ReplyInput,
  type Turn,
} from './chat-messages.js';
import { workflowNow } from './clock.js';

/**
 * Store and policy work: quick, retried until it succeeds. Local activities: they run in the worker that
 * runs the workflow and are recorded as markers, which keeps the per-message cost to a few history events.
 */
const local = proxyLocalActivities<ChatActivities>({
  startToCloseTimeout: '15 seconds',
  localRetryThreshold: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});
/** Agents may think for a while; retried a few times (429/5xx), then the message is marked failed. */
const agents = proxyActivities<ChatActivities>({
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [...FINAL_FAILURE_TYPES],
  },
});
/** Sends: retried with backoff while Meta is unavailable or rate limiting; refusals are final. */
const sends = proxyLocalActivities<ChatActivities>({
  startToCloseTimeout: '30 seconds',
  localRetryThreshold: '30 seconds',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '1 minute',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [...FINAL_FAILURE_TYPES],
  },
});

/**
 * Inbound media: looked up and downloaded from Meta (files up to 100 MB), retried while Meta is unavailable;
 * after that the message is handled without its file.
 */
const mediaFetch = proxyActivities<MediaActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '20 seconds', maximumAttempts: 5 },
});
/** Largest image handed to a vision model inline (data URL). */
const VISION_MAX_BYTES = 5 * 1024 * 1024;

/** Sends through a personal-account session: a regular activity on the session worker's own queue. */
const sessionSends = (taskQueue: string) =>
  proxyActivities<ChatActivities>({
    taskQueue,
    startToCloseTimeout: '30 seconds',
    // Short: a queue nobody polls means the session's node is gone; the send is then rerouted (below).
    scheduleToStartTimeout: '20 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
  });

/**
 * A session send that found no worker (its session's node died: the schedule-to-start timeout) or no session
 * is sent again on the queue the channel's session has now: up to this many times, a pause apart while the
 * session reconnects. Parts already sent are known by their claims, so a re-sent reply never doubles.
 */
const SESSION_REROUTES = 12;
const SESSION_REROUTE_PAUSE = '5 seconds';

/** True for a session send that failed because its queue or session is gone (worth sending elsewhere). */
function sessionGone(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof TimeoutFailure) return true;
  return cause instanceof ApplicationFailure && cause.type === FAILURE.sessionUnavailable;
}

/** How many turns of the conversation an agent sees. */
export const WINDOW_TURNS = 20;
/** How long an idle chat workflow waits before completing when its input does not say (the product passes `WHARF_CHAT_IDLE_MINUTES`). */
const IDLE_TIMEOUT_MS = 60 * 60 * 1000;
/** Most queued messages admitted and answered together. */
const BATCH = 50;
/** Send failures that mean the channel's credentials are wrong: the channel is marked failed. */
const CREDENTIAL_FAILURES: string[] = [
  FAILURE.badToken,
  FAILURE.missingPermission,
  FAILURE.unknownPhoneNumber,
  FAILURE.missingSecret,
];
/** Recent message ids kept in memory as a fast path; the store's unique key is the real dedupe. */
const RECENT_IDS = 256;

/** Fails a turn because of what the agent is or said (caught below: the message is marked failed). */
const agentFailed = (message: string): never => {
  throw ApplicationFailure.create({ type: FAILURE.agentFailed, message, nonRetryable: true });
};

// The two edges of a Temporal agent are checked by hand, not with zod: this runs in the workflow bundle,
// which stays small and free of libraries the lint allow-list does not know.
/** A Temporal agent's stored config (`{workflowType, taskQueue}`), checked. */
function temporalAgentConfig(config: Record<string, unknown>): { workflowType: string; taskQueue: string } {
  const { workflowType, taskQueue } = config;
  if (typeof workflowType !== 'string' || !workflowType || typeof taskQueue !== 'string' || !taskQueue) {
    return agentFailed('The agent has a stored config without a workflowType and taskQueue; add the agent again.');
  }
  return { workflowType, taskQueue };
}

/**
 * The reply of an agent workflow's result `{reply?: string, attachments?: [...]}` ('' = no answer); any other
 * shape fails the turn. Attachments are checked item by item where they are sent (lib/attachments.ts).
 */
function childReply(out: unknown): { reply: string; attachments?: ReplyAttachment[] } {
  if (out === undefined || out === null) return { reply: '' };
  if (typeof out !== 'object') return agentFailed(`The agent workflow returned a ${typeof out}, not {reply?: string}.`);
  const { reply, attachments } = out as { reply?: unknown; attachments?: unknown };
  if (reply !== undefined && reply !== null && typeof reply !== 'string') {
    return agentFailed(`The agent workflow's reply is a ${typeof reply}, not a string.`);
  }
  if (attachments !== undefined && attachments !== null && !Array.isArray(attachments)) {
    return agentFailed(`The agent workflow's attachments are a ${typeof attachments}, not a list.`);
  }
  const files = Array.isArray(attachments) && attachments.length ? (attachments as ReplyAttachment[]) : undefined;
  return { reply: typeof reply === 'string' ? reply : '', ...(files ? { attachments: files } : {}) };
}

/** Input of a chat run (new chat, or continue-as-new carrying state and unprocessed work). */
export interface ChatWorkflowInput {
  channelId: string;
  chatId: string;
  window?: Turn[];
  recentIds?: string[];
  queue?: InboundMessage[];
  statusQueue?: DeliveryStatus[];
  processed?: number;
  /** Continue-as-new once history has this many events (Temporal's own suggestion comes first). @default 5000 */
  historyLimit?: number;
  /** Milliseconds the chat waits without messages before it completes. @default one hour (new runs get `WHARF_CHAT_IDLE_MINUTES` from lib/inbound-delivery.ts) */
  idleTimeoutMs?: number;
}

/** Runs one chat: processes its messages strictly in order. */
export async function chatWorkflow(input: ChatWorkflowInput): Promise<void> {
  const { channelId, chatId } = input;
  const queue: InboundMessage[] = [...(input.queue ?? [])];
  const statusQueue: DeliveryStatus[] = [...(input.statusQueue ?? [])];
  const recentIds: string[] = [...(input.recentIds ?? [])];
  let window: Turn[] | undefined = input.window;
  let processed = input.processed ?? 0;

  const enqueue = ({ messages }: { messages: InboundMessage[] }): void => {
    for (const m of messages) if (!recentIds.includes(m.id) && !queue.some((q) => q.id === m.id)) queue.push(m);
  };
  setHandler(inbound, enqueue);
  setHandler(deliver, enqueue);
  setHandler(statuses, ({ statuses: s }) => {
    statusQueue.push(...s);
  });
  setHandler(chatState, () => ({ channelId, chatId, window: window ?? [], queued: queue.length, processed }));

  /**
   * Since the patch below, the window is loaded only when an agent needs it: until then the turns are in
   * the message log, which is where a load reads them from. Histories recorded before it load the window
   * for a chat's first delivered message, as they did then.
   */
  let answersInAdmission: boolean | undefined;
  const remember = (turn: Turn): void => {
    if (window || !answersInAdmission) window = [...(window ?? []), turn].slice(-WINDOW_TURNS);
  };

  /**
   * Replies and window turns of the batch being processed, in message order. Replies go out together in
   * one local activity per batch (per session queue for personal accounts), and a message's turns join the
   * window only once its reply went out: a failed turn leaves no dangling user message.
   */
  let outbox: Array<{
    m: InboundMessage;
    reply?: ReplyInput;
    sessionQueue: string | null;
    turns: Turn[];
    sent?: ReplyResult;
  }> = [];
  /** Outcomes decided in the workflow (agent failed, no answer), written once per batch. */
  let outcomes: Array<{ id: string; status: string; detail?: Record<string, unknown> }> = [];

  /** Sends a session group again on the session's current queue; null when it could not (`onError` has why). */
  const reroute = async (
    input: { channelId: string; chatId: string; replies: ReplyInput[] },
    onError: (err: unknown) => void,
  ): Promise<ReplyResult[] | null> => {
    for (let n = 0; n < SESSION_REROUTES; n++) {
      const now = await local.currentSessionQueue({ channelId });
      if (!now) {
        await sleep(SESSION_REROUTE_PAUSE);
        continue;
      }
      try {
        return await sessionSends(now).deliverReplies(input);
      } catch (err) {
        onError(err);
        if (!sessionGone(err)) return null;
        await sleep(SESSION_REROUTE_PAUSE);
      }
    }
    return null;
  };

  /** Hands outbox items to the deliverReplies activity: one call per run of items sharing a send queue. */
  const deliverOutbox = async (items: typeof outbox): Promise<ReplyResult[]> => {
    const results: ReplyResult[] = [];
    for (let i = 0; i < items.length;) {
      // Personal accounts send through the socket on the worker that holds the session: its own queue.
      const queue = items[i].sessionQueue;
      let j = i + 1;
      while (j < items.length && items[j].sessionQueue === queue) j++;
      const group = items.slice(i, j);
      const input = { channelId, chatId, replies: group.map((x) => x.reply as ReplyInput) };
      try {
        results.push(...(queue ? await sessionSends(queue).deliverReplies(input) : await sends.deliverReplies(input)));
      } catch (first) {
        let err: unknown = first;
        // The session moved (its node died and another took it over): send on the queue it has now.
        if (queue && sessionGone(err) && patched('session-reroute')) {
          const sentElsewhere = await reroute(input, (e) => (err = e));
          if (sentElsewhere) {
            results.push(...sentElsewhere);
            i = j;
            continue;
          }
        }
        // A failed local activity surfaces as the bare ApplicationFailure; a regular one wraps it.
        const cause = err instanceof ActivityFailure ? err.cause : err instanceof Error ? err : undefined;
        const type = cause instanceof ApplicationFailure ? (cause.type ?? 'Error') : 'Error';
        for (const _ of group) results.push({ ok: false, type, message: cause?.message ?? String(err) });
      }
      i = j;
    }
    return results;
  };

  /**
   * Sends what the outbox still holds and records the batch's outcomes. Returns undefined when there was
   * nothing to wait for — the common echo batch, whose replies went out in admission — so the caller need
   * not wait a turn: every promise a workflow makes costs the SDK a stack capture (its stack-trace hook),
   * about a quarter of the workflow thread's time per message.
   */
  const flush = (): Promise<void> | undefined => {
    const items = outbox;
    outbox = [];
    // Admission may already have sent some replies; the rest go now.
    const toSend = items.filter((x) => x.reply && !x.sent);
    return toSend.length ? deliverOutbox(toSend).then((sent) => settle(items, sent)) : settle(items, []);
  };

  /** The outbox items' results: turns of what went out, outcomes and the channel's problem for what did not. */
  const settle = (items: typeof outbox, sent: ReplyResult[]): Promise<void> | undefined => {
    let next = 0; // results come back in the order of the items they were sent for
    let credentialProblem: string | undefined;
    for (const item of items) {
      const r = item.sent ?? (item.reply ? sent[next++] : undefined);
      if (!r || r.ok) {
        for (const t of item.turns) remember(t);
        continue;
      }
      if (CREDENTIAL_FAILURES.includes(r.type)) credentialProblem ??= r.message;
      outcomes.push({ id: item.m.id, status: 'failed', detail: { reason: r.message } });
    }
    if (!credentialProblem && !outcomes.length) return undefined;
    return (async () => {
      if (credentialProblem) {
        await getExternalWorkflowHandle(channelWorkflowId(channelId)).signal(reportProblem, {
          status: 'failed',
          reason: `Sending failed: ${credentialProblem}. Fix the config and save it again.`,
        });
      }
      if (outcomes.length) {
        const batch = outcomes;
        outcomes = [];
        await local.setInboundOutcomes({ channelId, outcomes: batch });
      }
    })();
  };

  /**
   * Handles one admitted message: a pairing reply, an echo of a text or a turn of an agent. Like `flush`, it
   * returns undefined when nothing was asynchronous (a pairing reply, an ignored message, an echo whose
   * window need not be loaded), so the loop waits only for what is.
   */
  const handle = (m: InboundMessage, admission: Admission): Promise<void> | undefined => {
    if (admission.action === 'paired') {
      if (admission.provider === 'whatsapp_user' && !admission.sessionQueue) return;
      outbox.push({ m, sessionQueue: admission.sessionQueue, turns: [], reply: pairedReply(m), sent: admission.sent });
      return;
    }
    if (admission.action !== 'deliver') return;
    const withMedia = !!m.media && patched('inbound-media');
    if (withMedia || admission.mode === 'signal' || admission.agent.kind !== 'echo' || (!window && !answersInAdmission))
      return handleTurn(m, admission, withMedia);
    // The built-in echo agent answers a text with the text (deterministic: no activity).
    answered(
      m,
      admission,
      {
        role: 'user',
        text: m.edit ? `(edited their earlier message) ${m.text}` : m.text,
        at: new Date(m.timestamp).toISOString(),
      },
      m.text,
    );
  };

  const handleTurn = async (
    m: InboundMessage,
    admission: Admission & { action: 'deliver' },
    withMedia: boolean,
  ): Promise<void> => {
    // A media message's file is fetched and stored first (its ref, never its bytes, stays in history).
    // Histories recorded before this patch handled media as their caption alone.
    let media: MediaRef | undefined;
    if (withMedia && m.media) {
      try {
        media = await mediaFetch.fetchInboundMedia({ channelId, messageId: m.id, media: m.media });
      } catch (err) {
        const cause = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
        media = {
          kind: m.media.kind as MediaKind,
          ...(m.media.caption ? { caption: m.media.caption } : {}),
          ...(m.media.voice ? { voice: true } : {}),
          missing: `Meta could not be reached for the file (${cause})`,
        };
      }
    }
    if (admission.mode === 'signal') {
      const message = {
        id: m.id,
        channelId,
        space: admission.space,
        chat: m.chat,
        sender: m.sender,
        text: media ? mediaText(media) : m.text,
        timestamp: m.timestamp,
        ...(media ? { media } : {}),
      };
      await getExternalWorkflowHandle(channelWorkflowId(channelId)).signal(handOff, { message });
      return;
    }
    // An edit reaches an agent as an edit of what it saw before; echo answers the new text as it is.
    const said = media ? mediaText(media) : m.edit ? `(edited their earlier message) ${m.text}` : m.text;
    const userTurn: Turn = { role: 'user', text: said, at: new Date(m.timestamp).toISOString() };
    let answer: string;
    // Files the agent sends back: refs only (stored ids or URLs), checked by the send activity.
    let attachments: ReplyAttachment[] | undefined;
    // A restarted chat rebuilds its window from the message log (once per run).
    if (!window && !answersInAdmission) window = await local.loadWindow({ channelId, chatId, limit: WINDOW_TURNS });
    try {
      if (admission.agent.kind === 'echo') {
        // The built-in echo agent: deterministic, so no activity is needed. A media message gets its line.
        answer = media ? mediaLine(media) : m.text;
      } else {
        // An agent sees the conversation so far, including the replies still waiting in the outbox.
        await flush();
        window ??= await local.loadWindow({ channelId, chatId, limit: WINDOW_TURNS });
        const history = [...window];
        if (admission.agent.kind === 'temporal') {
          const cfg = temporalAgentConfig(admission.agent.config);
          const out = await executeChild<(arg: unknown) => Promise<unknown>>(cfg.workflowType, {
            taskQueue: cfg.taskQueue,
            workflowId: `agent-${channelId}-${m.id}`,
            // A wrong workflow type or a queue nobody polls must fail the turn, not block the chat forever.
            workflowExecutionTimeout: '5 minutes',
            args: [
              {
                channel: channelId,
                chat: m.chat,
                sender: m.sender,
                text: said,
                ...(m.edit ? { edit: m.edit } : {}),
                ...(media ? { media } : {}),
                history,
              },
            ],
          });
          ({ reply: answer, attachments } = childReply(out));
        } else {
          // A vision model sees a stored image inline; the data URL is built in the activity, not carried here.
          const image =
            media?.id && (media.kind === 'image' || media.kind === 'sticker') && (media.size ?? 0) <= VISION_MAX_BYTES
              ? media.id
              : undefined;
          // Audio may be transcribed by the agent's transcription endpoint (read from the store in the activity).
          const audio = media?.id && media.kind === 'audio' ? media.id : undefined;
          const out = await agents.runAgent({
            agent: admission.agent,
            channelId,
            history,
            text: said,
            ...(image ? { imageMediaId: image } : {}),
            ...(audio ? { audioMediaId: audio } : {}),
          });
          answer = out.reply;
          attachments = out.attachments;
        }
      }
    } catch (err) {
      const cause =
        err instanceof ActivityFailure || err instanceof ChildWorkflowFailure
          ? (err.cause?.message ?? err.message)
          : err instanceof Error
            ? err.message
            : String(err);
      outcomes.push({ id: m.id, status: 'failed', detail: { reason: `The agent could not answer: ${cause}` } });
      return;
    }
    answered(m, admission, userTurn, answer, attachments);
  };

  /** Puts an answer (or its absence) in the outbox, or records why it cannot be sent. */
  const answered = (
    m: InboundMessage,
    admission: Admission & { action: 'deliver' },
    userTurn: Turn,
    answer: string,
    attachments?: ReplyAttachment[],
  ): void => {
    if (!answer.trim() && !attachments) {
      outcomes.push({ id: m.id, status: 'answered', detail: { reply: 'none' } });
      outbox.push({ m, sessionQueue: null, turns: [userTurn] });
      return;
    }
    if (admission.provider === 'whatsapp_user' && !admission.sessionQueue) {
      outcomes.push({
        id: m.id,
        status: 'failed',
        detail: { reason: 'The WhatsApp session is not connected; the reply was not sent.' },
      });
      return;
    }
    outbox.push({
      m,
      sessionQueue: admission.sessionQueue,
      turns: [userTurn, { role: 'assistant', text: answer, at: new Date(workflowNow()).toISOString() }],
      reply: answerReply(m, answer, attachments),
      sent: admission.sent,
    });
  };

  /**
   * Admits a batch. When the store refuses a batch's data for good (`WharfUnprocessableMessage` — no retry
   * of the same input can help), the messages are admitted one by one, and the one that cannot be is
   * recorded as failed with the reason and skipped: no content of any field may stop the chat.
   */
  const admitOnce = (batch: InboundMessage[], answer: boolean): Promise<Admission[]> =>
    local.admitInbound({ channelId, messages: batch, claim: uuid4(), answer });
  const admit = async (batch: InboundMessage[], answer: boolean): Promise<Admission[]> => {
    try {
      return await admitOnce(batch, answer);
    } catch (err) {
      return admitRefused(batch, answer, err);
    }
  };
  /** `admit` after the store refused the batch `batch` with `err` (any other failure is thrown again). */
  const admitRefused = async (batch: InboundMessage[], answer: boolean, err: unknown): Promise<Admission[]> => {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    if (!(cause instanceof ApplicationFailure) || cause.type !== FAILURE.unprocessableMessage) throw err;
    if (batch.length > 1) {
      const out: Admission[] = [];
      for (const m of batch) out.push(...(await admit([m], answer)));
      return out;
    }
    const [m] = batch;
    await local.recordUnprocessable({
      channelId,
      message: { id: m.id, chatId: m.chat.id, address: m.sender.address, type: m.type ?? 'text' },
      reason: cause.message,
    });
    return [{ action: 'ignored', reason: cause.message }];
  };

  const historyLimit = input.historyLimit ?? 5000;
  const shouldContinueAsNew = (): boolean =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyLimit;

  // One idle timer per quiet period instead of one per message: a timer started and cancelled around every
  // wake-up costs two history events and a timer task in Temporal's database for each message. When it
  // fires, the chat completes if nothing happened since; otherwise it is set again for the time left.
  const idleMs = input.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  let lastActive = workflowNow();
  let idleFired = false;
  const armIdle = (ms: number): void => {
    void sleep(ms).then(() => {
      idleFired = true;
    });
  };
  armIdle(idleMs);

  for (;;) {
    await condition(() => queue.length > 0 || statusQueue.length > 0 || idleFired || shouldContinueAsNew());
    if (idleFired) {
      idleFired = false;
      const left = idleMs - (workflowNow() - lastActive);
      if (left > 0 || queue.length > 0 || statusQueue.length > 0) {
        armIdle(left > 0 ? left : idleMs);
      } else {
        await condition(allHandlersFinished);
        if (queue.length === 0 && statusQueue.length === 0) return;
        armIdle(idleMs);
      }
    }
    if (statusQueue.length > 0) {
      const batch = statusQueue.splice(0, statusQueue.length);
      await local.recordStatuses({ channelId, statuses: batch });
      lastActive = workflowNow();
    }
    while (queue.length > 0 && !shouldContinueAsNew()) {
      // Everything queued so far is admitted in one local activity, which also sends the replies that need
      // no agent; the rest are answered in one more (per session queue for personal accounts).
      const batch = queue.splice(0, BATCH);
      answersInAdmission ??= patched('answers-in-admission');
      // `admit`, `handle` and `flush` written out so that the common batch makes no promise it need not.
      let admissions: Admission[];
      try {
        admissions = await admitOnce(batch, answersInAdmission);
      } catch (err) {
        admissions = await admitRefused(batch, answersInAdmission, err);
      }
      for (const [i, m] of batch.entries()) {
        const turn = handle(m, admissions[i]);
        if (turn) await turn;
      }
      const flushed = flush();
      if (flushed) await flushed;
      for (const m of batch) recentIds.push(m.id);
      if (recentIds.length > RECENT_IDS) recentIds.splice(0, recentIds.length - RECENT_IDS);
      processed += batch.length;
      lastActive = workflowNow();
    }
    if (shouldContinueAsNew()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof chatWorkflow>({
        channelId,
        chatId,
        window,
        recentIds,
        queue,
        statusQueue,
        processed,
        historyLimit: input.historyLimit,
        idleTimeoutMs: input.idleTimeoutMs,
      });
    }
  }
}
