/**
 * Hands inbound messages and delivery statuses durably to their chat workflows with signal-with-start.
 *
 * Group commit: while a signal to a chat is in flight, events for that chat from other requests wait and
 * go together in the next signal — one Temporal transaction for many webhook events. Each caller's promise
 * resolves only once a signal carrying all of its events has been accepted by Temporal (and rejects if
 * one failed), so "200 means durably in Temporal" holds per request. An idle chat's first event goes out
 * at once: grouping adds no latency until there is a queue.
 */
import { createHash } from 'node:crypto';
import {
  InternalConnectionLikeSymbol,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type InternalConnectionLike,
  type WorkflowHandle,
} from '@temporalio/client';
import { WharfChannelId } from './search-attributes.js';
import type { DeliveryStatus, InboundMessage } from './types.js';
import { chatMetadata } from './chat-metadata.js';
import { chatWorkflowId, deliver, inbound, statuses } from '../workflows/chat-messages.js';
import type { chatWorkflow } from '../workflows/chat-workflow.js';
import type { Duration } from '@temporalio/common';

/** The chat a status belongs to: the recipient, in the same `+digits` form as direct chat ids. */
const statusChat = (s: DeliveryStatus): string =>
  s.recipient.startsWith('+') || s.recipient.includes('@') ? s.recipient : `+${s.recipient}`;

/** Chats whose run id is remembered; beyond that the oldest is forgotten (it costs one lookup). */
const MAX_KNOWN_RUNS = 100_000;

/** Most events one signal carries (keeps a signal's payload well under Temporal's size limits). */
const MAX_BATCH = 200;

/**
 * How long a running chat's messages wait for their update to be accepted before they go by signal instead.
 * Accepted means a worker ran the chat's workflow task, so this bounds what a webhook waits on a chat whose
 * task is busy (a send Meta is slowing down), whose worker is gone, or on a server that refuses updates.
 */
const UPDATE_ACCEPT_MS = 2000;
/** After an update was not accepted in time, a chat's messages go by signal for this long. */
const SIGNAL_ONLY_MS = 60_000;

interface Pending {
  messages: InboundMessage[];
  statuses: DeliveryStatus[];
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

interface ChatLane {
  channelId: string;
  chatId: string;
  inFlight: boolean;
  next: Pending | null;
}

/**
 * How long a chat's workflow task may run before Temporal gives it to another worker (continue-as-new keeps
 * it). Temporal's default is 10 s: when a node dies with tasks in flight, those chats waited that long for
 * their next reply (measured with two nodes, kill -9 at 20 msgs/s: per chat p50 8.1 s, max 8.6 s; with
 * 4 s here and a 2 s sticky timeout, p50 2.2 s, max 2.7 s). Local activities that run longer are fine: the
 * worker extends its task while they run. 5 s leaves room for a busy event loop.
 */
export const CHAT_WORKFLOW_TASK_TIMEOUT: Duration = '5s';

/** What this process adds to every new chat run's input (fields of `ChatWorkflowInput`). */
export interface ChatStartOptions {
  /** Milliseconds a run waits without messages before it completes; the workflow's default when absent. */
  idleTimeoutMs?: number;
}

/** Delivers events to chat workflows, grouping concurrent events per chat. */
export class InboundDelivery {
  private readonly lanes = new Map<string, ChatLane>();
  /** Current run id per chat workflow id, as last seen (oldest first, bounded). */
  private readonly runs = new Map<string, string>();
  /** Whether `starter` is on the worker's native connection, so a new chat's first task can go to it directly. */
  private readonly eager: boolean;
  /** How events went to Temporal since this process started: calls of each kind (diagnostics). */
  readonly counts = { updates: 0, signals: 0, starts: 0, eagerStarts: 0, signalsWithStart: 0, updatesNotTaken: 0 };
  /** Chats whose messages go by signal until the time given (an update was not accepted in time, or refused). */
  private readonly signalOnly = new Map<string, number>();
  /** False once the server said it does not take updates at all: every message goes by signal. */
  private updates = true;

  /**
   * @param client signals and signal-with-starts go through it.
   * @param starter new chats are started through it: a client on this process's worker connection (see
   *   {@link useWorkerForStarts}) makes the start eager. Signals stay on `client`: measured at 100 msgs/s,
   *   signals through the native connection took 2–4 times as long to be acknowledged as through the
   *   JavaScript gRPC client (ack p50 143–302 ms against 59–69 ms).
   */
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    private readonly starter: Client = client,
    private readonly chats: ChatStartOptions = {},
  ) {
    this.eager = !!(starter.connection as InternalConnectionLike)[InternalConnectionLikeSymbol]?.supportsEagerStart;
  }

  /** Delivers a batch for one channel; resolves once every event is in Temporal. */
  async deliver(channelId: string, messages: InboundMessage[], deliveryStatuses: DeliveryStatus[] = []): Promise<void> {
    const byChat = new Map<string, { messages: InboundMessage[]; statuses: DeliveryStatus[] }>();
    const slot = (chatId: string) => {
      let s = byChat.get(chatId);
      if (!s) byChat.set(chatId, (s = { messages: [], statuses: [] }));
      return s;
    };
    for (const m of messages) slot(m.chat.id).messages.push(m);
    for (const s of deliveryStatuses) slot(statusChat(s)).statuses.push(s);
    await Promise.all(
      [...byChat].map(([chatId, work]) => this.enqueue(channelId, chatId, work.messages, work.statuses)),
    );
  }

  private enqueue(channelId: string, chatId: string, messages: InboundMessage[], sts: DeliveryStatus[]): Promise<void> {
    const key = chatWorkflowId(channelId, chatId);
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { channelId, chatId, inFlight: false, next: null }));
    return new Promise<void>((resolve, reject) => {
      const l = lane!;
      l.next ??= { messages: [], statuses: [], waiters: [] };
      l.next.messages.push(...messages);
      l.next.statuses.push(...sts);
      l.next.waiters.push({ resolve, reject });
      if (!l.inFlight) void this.flush(key, l);
    });
  }

  private async flush(key: string, lane: ChatLane): Promise<void> {
    lane.inFlight = true;
    while (lane.next) {
      const batch = lane.next;
      lane.next = null;
      try {
        for (let i = 0; i < Math.max(batch.messages.length, 1); i += MAX_BATCH) {
          const part = batch.messages.slice(i, i + MAX_BATCH);
          if (part.length) await this.signal(lane, inbound, { messages: part });
        }
        for (let i = 0; i < batch.statuses.length; i += MAX_BATCH) {
          await this.signal(lane, statuses, { statuses: batch.statuses.slice(i, i + MAX_BATCH) });
        }
        for (const w of batch.waiters) w.resolve();
      } catch (err) {
        for (const w of batch.waiters) w.reject(err);
      }
    }
    lane.inFlight = false;
    this.lanes.delete(key);
  }

  /**
   * One signal. A chat whose current run this process knows is signalled by run id: Temporal then writes
   * the signal without first looking the run up (one SQLite transaction instead of two on the embedded
   * server). A run that has ended — idle, continued-as-new, terminated — answers "not found".
   *
   * Messages to a known run go as the `deliver` update rather than the signal (see {@link byUpdate}): the
   * same durability for less of Temporal's work.
   *
   * Messages for a chat without a known run start it, carrying them as its first queue: when `starter` is
   * on the worker's connection, Temporal hands the new run's first workflow task straight back to this
   * worker (eager start), so a burst of new chats costs no task-queue matching and no backlog writes. A
   * chat that is running after all (started elsewhere, or before a restart) answers "already started",
   * and — like delivery statuses — the events go with signal-with-start, which finds or starts the current
   * run. Either way the events are in Temporal when this resolves.
   */
  private async signal<A>(lane: ChatLane, signal: typeof inbound | typeof statuses, arg: A): Promise<void> {
    const workflowId = chatWorkflowId(lane.channelId, lane.chatId);
    const runId = this.runs.get(workflowId);
    if (runId) {
      try {
        const handle = this.client.workflow.getHandle(workflowId, runId);
        if (signal === inbound && (await this.byUpdate(handle, arg as { messages: InboundMessage[] }))) return;
        await handle.signal(signal as never, arg as never);
        this.counts.signals++;
        return;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        this.runs.delete(workflowId);
      }
    }
    if (signal === inbound) {
      try {
        const started = await this.starter.workflow.start<typeof chatWorkflow>('chatWorkflow', {
          workflowId,
          taskQueue: this.taskQueue,
          args: [
            {
              channelId: lane.channelId,
              chatId: lane.chatId,
              queue: (arg as { messages: InboundMessage[] }).messages,
              ...this.chats,
            },
          ],
          typedSearchAttributes: [{ key: WharfChannelId, value: lane.channelId }],
          ...(await chatMetadata(
            this.client,
            lane.channelId,
            lane.chatId,
            (arg as { messages: InboundMessage[] }).messages[0],
          )),
          requestEagerStart: this.eager,
          workflowTaskTimeout: CHAT_WORKFLOW_TASK_TIMEOUT,
        });
        this.remember(workflowId, started.firstExecutionRunId);
        this.counts.starts++;
        if (started.eagerlyStarted) this.counts.eagerStarts++;
        return;
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
    }
    const handle = await this.client.workflow.signalWithStart<typeof chatWorkflow, [A]>('chatWorkflow', {
      workflowId,
      taskQueue: this.taskQueue,
      args: [{ channelId: lane.channelId, chatId: lane.chatId, ...this.chats }],
      typedSearchAttributes: [{ key: WharfChannelId, value: lane.channelId }],
      ...(await chatMetadata(
        this.client,
        lane.channelId,
        lane.chatId,
        signal === inbound ? (arg as { messages: InboundMessage[] }).messages[0] : undefined,
      )),
      signal: signal as never,
      signalArgs: [arg] as never,
      workflowTaskTimeout: CHAT_WORKFLOW_TASK_TIMEOUT,
    });
    this.remember(workflowId, handle.signaledRunId);
    this.counts.signalsWithStart++;
  }

  /**
   * Hands messages to a running chat as the `deliver` update; true once it was accepted — written in the chat's
   * history, as durable as a signal. Measured in the product at 100 msgs/s (docs/performance.md, session 14):
   * the embedded server's CPU per message 1.1–1.2 ms lower than with a signal by run id, the process's 1.2–1.4 ms
   * higher, and the echo's reply 13 ms after the webhook instead of 62 (p50). Acceptance needs the chat's workflow task to run, so an update not accepted within
   * {@link UPDATE_ACCEPT_MS} (the chat's task is busy, no worker polls, the server refuses updates) gives way
   * to the signal, and that chat stays on signals for {@link SIGNAL_ONLY_MS}; a worker without the handler (an
   * older node) rejects it, and the signal follows at once. If the late update is accepted after all, the chat
   * drops the second copy: it queues a message id once, and admission records it once. False: send a signal.
   * A run that has ended throws WorkflowNotFoundError, as a signal does.
   */
  private async byUpdate(handle: WorkflowHandle, arg: { messages: InboundMessage[] }): Promise<boolean> {
    const until = this.signalOnly.get(handle.workflowId);
    if (!this.updates || (until !== undefined && until > Date.now())) return false;
    if (until !== undefined) this.signalOnly.delete(handle.workflowId);
    // One id per set of messages: Meta's redelivery of a batch whose update is still waiting joins it.
    const updateId = createHash('sha256')
      .update(arg.messages.map((m) => m.id).join('\u0000'))
      .digest('hex')
      .slice(0, 32);
    try {
      await this.client.withDeadline(Date.now() + UPDATE_ACCEPT_MS, () =>
        handle.executeUpdate(deliver, { args: [arg], updateId: `deliver-${updateId}` }),
      );
      this.counts.updates++;
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw err;
      this.counts.updatesNotTaken++;
      if (updatesUnavailable(err)) this.updates = false;
      else {
        if (this.signalOnly.size >= MAX_KNOWN_RUNS) this.signalOnly.clear();
        this.signalOnly.set(handle.workflowId, Date.now() + SIGNAL_ONLY_MS);
      }
      return false;
    }
  }

  private remember(workflowId: string, runId: string): void {
    if (this.runs.size >= MAX_KNOWN_RUNS) this.runs.delete(this.runs.keys().next().value as string);
    this.runs.set(workflowId, runId);
  }
}

/** True for a server that takes no updates at all (switched off, or too old for them). */
function updatesUnavailable(err: unknown): boolean {
  const cause = (err as { cause?: { code?: number } } | undefined)?.cause;
  // gRPC UNIMPLEMENTED (12) and PERMISSION_DENIED (7): what servers with updates off or unknown answer.
  return cause?.code === 12 || cause?.code === 7;
}

/**
 * The deliveries of a process, one per client and task queue, so that every caller delivering to a chat shares
 * its group commit and its remembered run ids. Made once at start-up and handed to what delivers (the API's
 * channel gateway) and to the worker, which tells it to start new chats through its own connection.
 */
export class InboundDeliveries {
  private readonly byClient = new WeakMap<Client, Map<string, InboundDelivery>>();

  private queuesOf(client: Client): Map<string, InboundDelivery> {
    let byQueue = this.byClient.get(client);
    if (!byQueue) this.byClient.set(client, (byQueue = new Map()));
    return byQueue;
  }

  /** The {@link InboundDelivery} of this client and task queue (made on first use). */
  of(client: Client, taskQueue: string): InboundDelivery {
    const byQueue = this.queuesOf(client);
    let d = byQueue.get(taskQueue);
    if (!d) byQueue.set(taskQueue, (d = new InboundDelivery(client, taskQueue)));
    return d;
  }

  /**
   * Starts new chats of `client` and `taskQueue` through `starter`, a client on the connection of the worker
   * that polls `taskQueue` in this process: their first workflow task then comes back with the start (eager
   * start). Call before the first delivery.
   */
  startNewChatsThrough(client: Client, taskQueue: string, starter: Client, chats: ChatStartOptions = {}): void {
    this.queuesOf(client).set(taskQueue, new InboundDelivery(client, taskQueue, starter, chats));
  }
}

/**
 * The process's deliveries, for the callers that are not handed one yet (the personal session's inbound pump,
 * until its split takes it as a dependency) and the default of the worker's and the API's deps.
 */
export const processDeliveries = new InboundDeliveries();

/** The {@link InboundDelivery} of this client and task queue in {@link processDeliveries}. */
export function inboundDeliveryFor(client: Client, taskQueue: string): InboundDelivery {
  return processDeliveries.of(client, taskQueue);
}

/** Delivers through {@link processDeliveries}' delivery of this client and task queue. */
export function deliverInbound(
  client: Client,
  taskQueue: string,
  channelId: string,
  messages: InboundMessage[],
  deliveryStatuses: DeliveryStatus[] = [],
): Promise<void> {
  return processDeliveries.of(client, taskQueue).deliver(channelId, messages, deliveryStatuses);
}
