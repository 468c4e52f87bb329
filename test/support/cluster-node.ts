/**
 * One Wharf node as a child process, for the multi-node tests: the same composition as the in-process test
 * instance (test/support/wharf.ts) on a shared PostgreSQL database and task queue, so the test can
 * `kill -9` it. Run with the TypeScript hook:
 *
 *   node --import ./test/support/ts-loader.mjs test/support/cluster-node.ts
 *
 * Settings come from the environment (CLUSTER_NODE_*); the node prints one JSON line `{url, token}` on
 * stdout once it serves, and shuts down in order on SIGTERM.
 */
import { startWharf } from './wharf.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`cluster-node: ${name} is not set`);
  return v;
};

const w = await startWharf({
  databaseUrl: env('CLUSTER_NODE_DATABASE_URL'),
  taskQueue: env('CLUSTER_NODE_TASK_QUEUE'),
  graphUrl: env('CLUSTER_NODE_GRAPH_URL'),
  dataDir: env('CLUSTER_NODE_DATA_DIR'),
  outside: {
    temporalAddress: env('CLUSTER_NODE_TEMPORAL_ADDRESS'),
    workflowBundlePath: env('CLUSTER_NODE_WORKFLOW_BUNDLE'),
  },
  waUrl: process.env.CLUSTER_NODE_WA_URL,
  waCertRoot: process.env.CLUSTER_NODE_WA_CERT_ROOT,
  stickyQueueTimeoutMs: process.env.CLUSTER_NODE_STICKY_MS ? Number(process.env.CLUSTER_NODE_STICKY_MS) : undefined,
  env: { WHARF_ADMIN_TOKEN: env('CLUSTER_NODE_ADMIN_TOKEN'), WHARF_SECRET_KEY: env('CLUSTER_NODE_SECRET_KEY') },
});
process.stdout.write(JSON.stringify({ url: w.url, token: w.token, pid: process.pid }) + '\n');
process.once('SIGTERM', () => {
  void w.close().finally(() => process.exit(0));
});
