/**
 * Several Wharf nodes as child processes (test/support/cluster-node.ts) on one PostgreSQL database, one task
 * queue and the run's Temporal dev server: what an operator runs when one machine is not enough.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { projectRoot } from '../../lib/paths.js';
import { apiClient, type ApiCall } from './api-client.js';

/** What every node of one cluster shares. */
export interface ClusterSettings {
  databaseUrl: string;
  temporalAddress: string;
  workflowBundlePath: string;
  graphUrl: string;
  taskQueue: string;
  adminToken: string;
  secretKey: string;
  /** The WhatsApp Web simulator personal channels connect to (`WHARF_WA_URL`, `WHARF_WA_CERT_ROOT`). */
  waUrl?: string;
  waCertRoot?: string;
}

/**
 * A node's HTTP API, shaped like TestWharf's `url`, `token` and `api` (not imported from it: `npm run bench`
 * compiles this file, and the test harness needs vitest's provided context).
 */
export interface NodeApi {
  url: string;
  token: string;
  api: ApiCall;
}

/** A node: its API and its process. */
export interface ClusterNode {
  name: string;
  /** The node's API (no in-process store or client: the node is another process). */
  w: NodeApi;
  child: ChildProcess;
  exited: Promise<void>;
  /** SIGKILL: the process dies on the spot, as on a power cut or an OOM kill. */
  kill(): void;
  /** SIGTERM: the node shuts down in order (API, worker drains, store). */
  stop(): Promise<void>;
  /** Milliseconds from spawn to serving. */
  startMs: number;
}

/** Settings for a new cluster on `databaseUrl` with a fresh queue and secrets. */
export function clusterSettings(
  base: Omit<ClusterSettings, 'taskQueue' | 'adminToken' | 'secretKey'>,
): ClusterSettings {
  return {
    ...base,
    taskQueue: 'wharf-cluster-' + randomBytes(6).toString('hex'),
    adminToken: 'cluster-' + randomBytes(12).toString('hex'),
    secretKey: randomBytes(32).toString('base64'),
  };
}

/**
 * How a node is started: compiled (`npm run bench` builds dist/, where this file runs as .js) starts in a
 * few seconds; from the sources (tests) every start transpiles them first (~30 s on this machine).
 */
const compiledNode = join(dirname(fileURLToPath(import.meta.url)), 'cluster-node.js');
const nodeEntry = existsSync(compiledNode)
  ? [compiledNode]
  : ['--import', './test/support/ts-loader.mjs', 'test/support/cluster-node.ts'];

/** Starts one node; resolves once it serves. */
export async function startNode(name: string, s: ClusterSettings, timeoutMs = 240_000): Promise<ClusterNode> {
  const dataDir = mkdtempSync(join(tmpdir(), `wharf-${name}-`));
  const t0 = performance.now();
  const child = spawn(process.execPath, nodeEntry, {
    cwd: projectRoot,
    env: {
      ...process.env,
      CLUSTER_NODE_DATABASE_URL: s.databaseUrl,
      CLUSTER_NODE_TASK_QUEUE: s.taskQueue,
      CLUSTER_NODE_GRAPH_URL: s.graphUrl,
      CLUSTER_NODE_DATA_DIR: dataDir,
      CLUSTER_NODE_TEMPORAL_ADDRESS: s.temporalAddress,
      CLUSTER_NODE_WORKFLOW_BUNDLE: s.workflowBundlePath,
      CLUSTER_NODE_ADMIN_TOKEN: s.adminToken,
      CLUSTER_NODE_SECRET_KEY: s.secretKey,
      ...(s.waUrl ? { CLUSTER_NODE_WA_URL: s.waUrl } : {}),
      ...(s.waCertRoot ? { CLUSTER_NODE_WA_CERT_ROOT: s.waCertRoot } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // CLUSTER_LOG_DIR: each node's log (LOG_LEVEL from WHARF_TEST_LOG) goes to <dir>/<name>.log, for a look afterwards.
  const logDir = process.env.CLUSTER_LOG_DIR;
  if (logDir) child.stdout?.on('data', (d: Buffer) => appendFileSync(join(logDir, `${name}.log`), d));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => rmSync(dataDir, { recursive: true, force: true }));
  const ready = await new Promise<{ url: string; token: string }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`node ${name} did not start within ${timeoutMs} ms:\n${stderr}`)),
      timeoutMs,
    );
    // The node's one line `{url, token}` (log lines, when WHARF_TEST_LOG turns them on, come before it).
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let ready: { url?: string; token?: string } = {};
      try {
        ready = JSON.parse(line) as typeof ready;
      } catch {
        return;
      }
      if (!ready.url || !ready.token) return;
      clearTimeout(timer);
      lines.close();
      resolve(ready as { url: string; token: string });
    });
    void exited.then(() => reject(new Error(`node ${name} exited during start-up:\n${stderr}`)));
  });
  const startMs = Math.round(performance.now() - t0);
  const w: NodeApi = { url: ready.url, token: ready.token, api: apiClient(() => w) };
  return {
    name,
    w,
    child,
    exited,
    startMs,
    kill: () => void child.kill('SIGKILL'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}
