/** The Wharf worker: hosts the channel and chat workflows and all activities on one task queue. */
import { existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createChannelActivities } from '../activities/channel-activities.js';
import { createChatActivities } from '../activities/chat-activities.js';
import { createSignalActivities } from '../activities/signal-activities.js';
import type { GraphClient } from '../lib/graph/graph-client.js';
import type { Logger } from '../lib/logger.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import { bundleWorkflows, prebuiltBundlePath } from './workflow-bundle.js';

/** What a worker needs. */
export interface WorkerDeps {
  address: string;
  namespace: string;
  taskQueue: string;
  store: Store;
  graph: GraphClient;
  policy: PolicyService;
  client: Client;
  log: Logger;
  /** A bundle made earlier (tests share one); else the prebuilt file, else bundled now. */
  workflowBundle?: { code: string };
}

/** Creates (but does not run) the worker. */
export async function createWharfWorker(deps: WorkerDeps): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: deps.address });
  const workflowBundle = deps.workflowBundle ?? (existsSync(prebuiltBundlePath) ? { codePath: prebuiltBundlePath } : await bundleWorkflows());
  const worker = await Worker.create({
    connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    workflowBundle,
    activities: {
      ...createChannelActivities({ store: deps.store, graph: deps.graph, log: deps.log.child({ component: 'channel-activities' }) }),
      ...createSignalActivities({ store: deps.store, client: deps.client }),
      ...createChatActivities({ store: deps.store, graph: deps.graph, policy: deps.policy, client: deps.client, log: deps.log.child({ component: 'chat-activities' }) }),
    },
    // Sized for a 2-core machine: many cheap store/Graph activities in flight, a sticky cache big enough for
    // the chats that are active at once.
    maxCachedWorkflows: 2000,
    maxConcurrentActivityTaskExecutions: 200,
    maxConcurrentWorkflowTaskExecutions: 100,
    shutdownGraceTime: '10 seconds',
  });
  return { worker, connection };
}
