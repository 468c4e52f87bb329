/**
 * The floor (issue #22): the smallest implementation of Wharf's message path on the same Temporal dev server
 * (same binary and flags), SDK, worker options, worker connection and V8 flags as Wharf, with the HTTP server, the client and
 * the worker in one process as Wharf has them. A `node:http` server checks X-Hub-Signature-256 and sends one
 * signal-with-start per message to a per-chat workflow (bench/floor/workflows.ts), which echoes through the
 * same Graph API client Wharf uses. No store, no policy. The bench starts it as a child process:
 *
 *   node dist/bench/floor/server.js   with FLOOR_PORT, FLOOR_DATA_DIR, FLOOR_APP_SECRET, FLOOR_GRAPH_TOKEN,
 *                                     META_GRAPH_URL set; serves POST /webhook and GET /healthz.
 */
import '../../workers/v8-flags.js'; // first, as in workers/main.ts
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createGraphClient } from '../../lib/graph/graph-client.js';
import { createLogger } from '../../lib/logger.js';
import { resolveTemporalCli } from '../../lib/temporal-cli.js';
import { temporalConnectionOptions, workerConnectionOptions } from '../../lib/temporal-connection.js';
import { connectClient } from '../../workers/client-connection.js';
import { startEmbeddedTemporal } from '../../workers/temporal-server.js';
import { WORKER_TUNING } from '../../workers/worker.js';
import { bundleWorkflows } from '../../workers/workflow-bundle.js';
import { withWorkflowThreads } from '../../workers/workflow-threads.js';
import type { FloorActivities, FloorMessage } from './workflows.js';

const TASK_QUEUE = 'floor';
const SIGNATURE_RE = /^sha256=([0-9a-f]{64})$/i;

/** The text messages of a Meta webhook body, with the phone number they were sent to. */
interface Inbound {
  phoneNumberId: string;
  messages: FloorMessage[];
}

function parseWebhook(raw: Buffer): Inbound[] {
  const body = JSON.parse(raw.toString('utf8')) as {
    entry?: Array<{
      changes?: Array<{
        value?: {
          metadata?: { phone_number_id?: string };
          messages?: Array<{ id: string; from: string; type: string; text?: { body?: string } }>;
        };
      }>;
    }>;
  };
  const out: Inbound[] = [];
  for (const entry of body.entry ?? [])
    for (const change of entry.changes ?? []) {
      const v = change.value;
      const messages = (v?.messages ?? [])
        .filter((m) => m.type === 'text')
        .map((m) => ({ id: m.id, from: m.from, text: m.text?.body ?? '' }));
      if (v?.metadata?.phone_number_id && messages.length)
        out.push({ phoneNumberId: v.metadata.phone_number_id, messages });
    }
  return out;
}

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const port = Number(env('FLOOR_PORT'));
  const dataDir = env('FLOOR_DATA_DIR');
  const appSecret = env('FLOOR_APP_SECRET');
  const accessToken = env('FLOOR_GRAPH_TOKEN');
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  mkdirSync(dataDir, { recursive: true });

  const temporal = await startEmbeddedTemporal({ cli: resolveTemporalCli(), dataDir, namespace: 'default', log });
  const graph = createGraphClient({
    baseUrl: env('META_GRAPH_URL'),
    version: process.env.META_GRAPH_VERSION ?? 'v23.0',
  });
  // Which phone number each chat's echoes go out from (one per chat workflow; the bench uses one number).
  const phoneOf = new Map<string, string>();
  const activities: FloorActivities = {
    async echo(messages) {
      for (const m of messages)
        await graph.sendText({ phoneNumberId: phoneOf.get(m.from) ?? '', accessToken, to: m.from, body: m.text });
    },
  };
  // The worker's connection as Wharf's to its embedded dev server: no gzip (lib/temporal-connection.ts).
  // FLOOR_TEMPORAL_COMPRESSION=gzip gives the SDK's default instead (docs/performance.md, session 16).
  const compression = process.env.FLOOR_TEMPORAL_COMPRESSION === 'gzip' ? 'gzip' : 'none';
  const connection = await NativeConnection.connect(workerConnectionOptions(temporal.address, {}, compression));
  const here = dirname(fileURLToPath(import.meta.url));
  const workflowBundle = await bundleWorkflows(join(here, 'workflows.js'));
  // The naive pipeline keeps the SDK's promise stack-trace hook, which Wharf turns off by default (issue #22
  // counts it among Wharf's own costs; workers/workflow-threads.ts). FLOOR_WORKFLOW_STACK_TRACES=off starts
  // the floor's workflow threads without it too, to compare the two on that footing as well.
  const stackTraces = process.env.FLOOR_WORKFLOW_STACK_TRACES !== 'off';
  const worker = await withWorkflowThreads(stackTraces, () =>
    Worker.create({
      connection,
      namespace: 'default',
      taskQueue: TASK_QUEUE,
      workflowBundle,
      activities,
      ...WORKER_TUNING,
    }),
  );
  const running = worker.run();
  const client = new Client({
    connection: (await connectClient(temporalConnectionOptions(temporal.address))).connection,
    namespace: 'default',
  });

  const webhook = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const m = SIGNATURE_RE.exec(String(req.headers['x-hub-signature-256'] ?? '').trim());
    const given = m ? Buffer.from(m[1], 'hex') : Buffer.alloc(0);
    const expected = createHmac('sha256', appSecret).update(raw).digest();
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(401).end();
      return;
    }
    let inbound: Inbound[];
    try {
      inbound = parseWebhook(raw);
    } catch {
      res.writeHead(400).end();
      return;
    }
    // One signal-with-start per message, the naive way: no grouping, no eager start.
    for (const { phoneNumberId, messages } of inbound)
      for (const msg of messages) {
        phoneOf.set(msg.from, phoneNumberId);
        await client.workflow.signalWithStart('floorChat', {
          workflowId: `floor-${phoneNumberId}-${msg.from}`,
          taskQueue: TASK_QUEUE,
          args: [[]],
          signal: 'floorMessage',
          signalArgs: [msg],
        });
      }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  };
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    if (req.method !== 'POST' || req.url !== '/webhook') {
      res.writeHead(404).end();
      return;
    }
    webhook(req, res).catch((err: unknown) => {
      log.error({ err }, 'floor webhook failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));

  const stop = async (): Promise<void> => {
    server.close();
    server.closeAllConnections();
    worker.shutdown();
    await running.catch(() => undefined);
    await temporal.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
