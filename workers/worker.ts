/** The Wharf worker: hosts the channel and chat workflows and all activities on one task queue. */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createChannelActivities } from '../activities/channel-activities.js';
import { createChatActivities } from '../activities/chat-activities.js';
import { createMediaActivities } from '../activities/media-activities.js';
import { recordSessionHolder, startSessionReaper } from '../activities/session-failover.js';
import { createSignalActivities } from '../activities/signal-activities.js';
import { lazyPersonalActivities } from '../activities/personal-session/lazy.js';
import type { MakeSocket, SessionActivityDeps } from '../activities/personal-session/session-registry.js';
import type { GraphClient } from '../lib/graph/graph-client.js';
import { processDeliveries, type InboundDeliveries } from '../lib/inbound-delivery.js';
import type { Logger } from '../lib/logger.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import { trackActivities, type InFlightActivity } from './in-flight.js';
import { bundleWorkflows, prebuiltBundlePath } from './workflow-bundle.js';
import { withWorkflowThreads } from './workflow-threads.js';
import {
  workerConnectionOptions,
  type TemporalCompression,
  type TemporalSecurity,
} from '../lib/temporal-connection.js';

/** What a worker needs. */
export interface WorkerDeps {
  address: string;
  namespace: string;
  taskQueue: string;
  store: Store;
  /** Encrypts Baileys auth state. */
  secretKey: Buffer;
  /** Baileys socket factory (tests inject a fake); Baileys' own by default. */
  makeSocket?: MakeSocket;
  /** Where the personal adapter connects and the certificate root it trusts (`WHARF_WA_URL`, `WHARF_WA_CERT_ROOT`). */
  whatsapp?: { webSocketUrl?: string; certRoot?: Buffer };
  /** Test seams of the session activities. */
  sessionHooks?: Pick<SessionActivityDeps, 'beforeDeliver' | 'mediaHostAllowed'>;
  /** Test seam of the sends: how long one attempt waits for a file's upload (activities/outbound-media.ts). */
  uploadWaitMs?: number;
  graph: GraphClient;
  policy: PolicyService;
  client: Client;
  log: Logger;
  /** Workflows kept in memory between tasks (sticky cache). @default 250 */
  workflowCacheSize?: number;
  /** Keep the Temporal SDK's promise stack-trace hook in the workflow threads (default: off; workflow-threads.ts). */
  workflowStackTraces?: boolean;
  /** How long the chats this process starts wait idle before they complete. @default the workflow's own (one hour) */
  chatIdleMs?: number;
  /** A bundle made earlier (tests share one); else the prebuilt file, else bundled now. */
  workflowBundle?: { code: string };
  /** TLS and API key for a secured cluster (lib/temporal-connection.ts); plaintext when absent. */
  security?: TemporalSecurity;
  /** gRPC compression of the worker's connection (lib/temporal-connection.ts). @default the SDK's (gzip) */
  compression?: TemporalCompression;
  /** How long a cached workflow's next task waits for this worker before any worker may take it. @default {@link STICKY_QUEUE_TIMEOUT_MS} */
  stickyQueueTimeoutMs?: number;
  /** The process's inbound deliveries: new chats are started through this worker's connection. @default processDeliveries */
  deliveries?: InboundDeliveries;
}

/**
 * How long a workflow task sent to this worker's sticky queue (the chats it holds in its cache) may wait
 * before Temporal gives it to any worker on the shared queue. Temporal's default is 10 s: after a `kill -9`
 * every chat the dead node held waited that long for its next reply. Workflow tasks waited 50–70 ms for a
 * live worker at 30 msgs/s and up to ~1 s under overload, so 2 s moves a chat only off a dead or stuck
 * worker (a chat moved off a live one is replayed from its history by the next: slower, still correct).
 */
export const STICKY_QUEUE_TIMEOUT_MS = 2_000;

/**
 * The shared-queue worker's options (bench/floor runs its minimal pipeline with the same ones, so the two
 * compare like for like).
 */
export const WORKER_TUNING = {
  // Sized for a 2-core machine: many cheap store/Graph activities in flight, a sticky cache big enough for
  // the chats that are active at once. A cached workflow costs ~0.28 MB of this process (measured: 1,000
  // cached chats 669 MB RSS, 250 cached 461 MB); one that fell out is replayed from history when it wakes.
  maxCachedWorkflows: 250,
  stickyQueueScheduleToStartTimeout: STICKY_QUEUE_TIMEOUT_MS,
  maxConcurrentActivityTaskExecutions: 200,
  // A chat's workflow task holds its slot while its local activities run and while it waits for this
  // process's event loop, so most of a slot's time is waiting, not work. With 16 slots, 30 msgs/s over 64
  // chats kept them full and tasks queued in Temporal for 0.4–1 s (schedule-to-start). With 64, they waited
  // ~40 ms, but under overload each chat's batches got smaller — more workflow tasks per message, less
  // throughput. 32 measured in between: ~50–70 ms at 30 msgs/s, and backlogs still drain. (Temporal's
  // resource-based tuner held slots at its minimum here: the machine is above 80 % CPU even at 30 msgs/s.)
  maxConcurrentWorkflowTaskExecutions: 32,
  maxConcurrentLocalActivityExecutions: 32,
  shutdownGraceTime: '10 seconds',
  // Cancellation reaches an activity with a heartbeat: keep heartbeats frequent so relink/disconnect of a
  // personal session take effect within seconds.
  maxHeartbeatThrottleInterval: '2 seconds',
} as const;

/** A running pair of workers: the shared queue and this process's own session queue. */
export interface WharfWorkers {
  /** The worker on the shared task queue (workflows and activities). */
  worker: Worker;
  /** The worker on this process's own queue, where sends for the sessions it holds are routed. */
  sessionWorker: Worker;
  sessionQueue: string;
  connection: NativeConnection;
  /** Runs both until shutdown. */
  run(): Promise<void>;
  /** Starts a graceful shutdown of both. */
  shutdown(): void;
  /** The activities both are running now (what a shutdown still waits for). */
  inFlight(): InFlightActivity[];
}

/** Creates (but does not run) the workers. */
export async function createWharfWorker(deps: WorkerDeps): Promise<WharfWorkers> {
  const connection = await NativeConnection.connect(
    workerConnectionOptions(deps.address, deps.security, deps.compression),
  );
  // New chats are started through a client on this connection: Temporal then hands their first workflow
  // task straight back to this worker (eager start; see lib/inbound-delivery.ts).
  (deps.deliveries ?? processDeliveries).startNewChatsThrough(
    deps.client,
    deps.taskQueue,
    new Client({ connection, namespace: deps.namespace }),
    { idleTimeoutMs: deps.chatIdleMs },
  );
  const workflowBundle =
    deps.workflowBundle ??
    (existsSync(prebuiltBundlePath) ? { codePath: prebuiltBundlePath } : await bundleWorkflows());
  // A queue of this process alone: a personal account's socket lives here, so its sends must come here.
  const sessionQueue = `${deps.taskQueue}-session-${randomUUID().slice(0, 8)}`;
  const personal = lazyPersonalActivities({
    store: deps.store,
    db: deps.store.db,
    secretKey: deps.secretKey,
    client: deps.client,
    taskQueue: deps.taskQueue,
    sessionQueue,
    log: deps.log,
    makeSocket: deps.makeSocket,
    waUrl: deps.whatsapp?.webSocketUrl,
    waCertRoot: deps.whatsapp?.certRoot,
    ...deps.sessionHooks,
  });
  const shared = {
    ...createChannelActivities({
      store: deps.store,
      graph: deps.graph,
      log: deps.log.child({ component: 'channel-activities' }),
    }),
    ...createSignalActivities({ store: deps.store, client: deps.client }),
    ...createMediaActivities({
      store: deps.store,
      graph: deps.graph,
      log: deps.log.child({ component: 'media-activities' }),
    }),
    ...createChatActivities({
      store: deps.store,
      graph: deps.graph,
      policy: deps.policy,
      client: deps.client,
      log: deps.log.child({ component: 'chat-activities' }),
      personal: { sendText: personal.sendText, sendMedia: personal.sendMedia },
      uploadWaitMs: deps.uploadWaitMs,
    }),
  };
  // runSession on the shared queue (any worker may hold a session); sends for a session on this process's
  // own queue, where its socket lives: `deliverReplies` there calls `personal.sendText` in process (no
  // workflow schedules `sendText` itself, so it is not registered as an activity). Baileys loads with the
  // first session (activities/personal-session/lazy.ts).
  // (On a shared store each attempt records its node, so a live node can move it off a dead one at once.)
  const activities = { ...shared, runSession: recordSessionHolder(personal.runSession, deps.store, deps.log) };
  const sessionActivities = shared;
  const tracked = trackActivities();
  const interceptors = { activity: [tracked.interceptor] };
  // The workflow threads start without the SDK's promise stack-trace hook unless asked (workflow-threads.ts).
  const [worker, sessionWorker] = await withWorkflowThreads(deps.workflowStackTraces ?? false, () =>
    Promise.all([
      Worker.create({
        connection,
        namespace: deps.namespace,
        taskQueue: deps.taskQueue,
        workflowBundle,
        activities,
        interceptors,
        ...WORKER_TUNING,
        maxCachedWorkflows: deps.workflowCacheSize ?? WORKER_TUNING.maxCachedWorkflows,
        stickyQueueScheduleToStartTimeout: deps.stickyQueueTimeoutMs ?? STICKY_QUEUE_TIMEOUT_MS,
      }),
      Worker.create({
        connection,
        namespace: deps.namespace,
        taskQueue: sessionQueue,
        activities: sessionActivities,
        interceptors,
        maxConcurrentActivityTaskExecutions: 50,
        shutdownGraceTime: '10 seconds',
      }),
    ]),
  );
  if (!deps.workflowStackTraces)
    deps.log.info(
      "workflow stack traces are off (the Web UI's Stack Trace tab); WHARF_WORKFLOW_STACK_TRACES=on turns them on",
    );
  return {
    worker,
    sessionWorker,
    sessionQueue,
    connection,
    run: async () => {
      const reaper = startSessionReaper({ store: deps.store, client: deps.client, log: deps.log });
      try {
        await Promise.all([worker.run(), sessionWorker.run()]);
      } finally {
        reaper.stop();
      }
    },
    shutdown: () => {
      for (const w of [worker, sessionWorker]) if (w.getState() === 'RUNNING') w.shutdown();
    },
    inFlight: () => tracked.list(),
  };
}
