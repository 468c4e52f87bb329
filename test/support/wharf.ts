/**
 * An in-process Wharf for tests: the real store (SQLite in a temp dir, PGlite there with `store: 'pglite'`, or
 * a database of its own on the run's PostgreSQL cluster), the real worker on its own task queue against the run's shared Temporal dev
 * server, and the real API on a random port.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { MakeSocket, SessionActivityDeps } from '../../activities/personal-session/session-registry.js';
import { inject } from 'vitest';
import { answerClientErrors, createApp } from '../../api/app.js';
import { loadConfig, type Config } from '../../lib/config.js';
import { createGraphClient } from '../../lib/graph/graph-client.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { createPolicyService } from '../../lib/policy/service.js';
import { temporalConnectionOptions } from '../../lib/temporal-connection.js';
import { openPglite, openPostgres, type Db } from '../../lib/store/db.js';
import { openSqlite } from '../../lib/store/sqlite.js';
import { migrate } from '../../lib/store/migrations.js';
import { createStore, type Store } from '../../lib/store/store.js';
import { createWharfWorker } from '../../workers/worker.js';
import { apiClient, type ApiCall } from './api-client.js';
import { createTestDatabase, dropTestDatabase } from './postgres.js';

// Keep the SDK's worker lifecycle chatter out of test output; warnings and errors still show.
try {
  const plain = new DefaultLogger('WARN');
  Runtime.install({
    logger: new DefaultLogger('WARN', (e) => {
      if (!/^No workflows registered/.test(e.message)) plain.log(e.level, e.message, e.meta);
    }),
  });
} catch {
  // installed already in this test process
}

/**
 * Awaits one named step of a start or close, failing with the step's name (and `detail()`, what was in
 * flight) when it takes longer than `ms`: a hang in a test's Wharf names itself instead of stalling the run.
 */
async function step<T>(name: string, p: Promise<T>, detail: () => string = () => '', ms = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`test Wharf: ${name} did not finish in ${ms / 1000} s ${detail()}`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Which store a test instance runs on: the project's (vitest.config.ts), unless a test says. */
export type StoreKind = 'pglite' | 'postgres' | 'sqlite';

/**
 * Opens the instance's store. On PostgreSQL the database's URL is kept in the data dir, so a restart on
 * the same data dir finds the same database, as a restarted node finds its DATABASE_URL.
 */
async function openTestStore(
  dataDir: string,
  kind: StoreKind,
  databaseUrl?: string,
): Promise<{ db: Db; drop(): Promise<void> }> {
  if (kind === 'pglite' && !databaseUrl)
    return { db: await openPglite(join(dataDir, 'store')), drop: async () => undefined };
  if (kind === 'sqlite' && !databaseUrl)
    return { db: await openSqlite(join(dataDir, 'store-sqlite')), drop: async () => undefined };
  const marker = join(dataDir, 'database-url');
  // A database handed in belongs to the caller (several nodes share it); one made here is this instance's.
  if (databaseUrl) {
    writeFileSync(marker, databaseUrl);
    return { db: await openPostgres(databaseUrl), drop: async () => undefined };
  }
  const adminUrl = inject('postgresAdminUrl');
  const url = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : await createTestDatabase(adminUrl);
  writeFileSync(marker, url);
  return { db: await openPostgres(url), drop: () => dropTestDatabase(adminUrl, url) };
}

/** What a Wharf node started outside vitest (a child process, test/support/cluster-node.ts) is told instead of `inject`. */
export interface OutsideVitest {
  temporalAddress: string;
  workflowBundlePath: string;
}

/** A running test instance. */
export interface TestWharf {
  url: string;
  token: string;
  config: Config;
  store: Store;
  /** The store's database session (a test that changes the database itself, e.g. adds a constraint). */
  db: Db;
  /** The PostgreSQL database this instance runs on (absent on PGlite); other nodes may share it. */
  databaseUrl?: string;
  client: Client;
  taskQueue: string;
  /** This instance's own session queue (personal-account sends). */
  sessionQueue: string;
  /** Calls the API with the admin token; parses JSON answers. */
  api: ApiCall;
  /** Stops the API and worker; keeps the data dir unless `purge`. */
  close(opts?: { purge?: boolean }): Promise<void>;
}

/** Starts Wharf in-process. Reuse `dataDir` to restart on the same store. */
export async function startWharf(
  opts: {
    graphUrl?: string;
    dataDir?: string;
    taskQueue?: string;
    publicUrl?: string;
    makeSocket?: MakeSocket;
    log?: Logger;
    waUrl?: string;
    waCertRoot?: string;
    sessionHooks?: Pick<SessionActivityDeps, 'beforeDeliver' | 'mediaHostAllowed'>;
    /** How long one send attempt waits for a file's upload (activities/outbound-media.ts). */
    uploadWaitMs?: number;
    store?: StoreKind;
    databaseUrl?: string;
    env?: Record<string, string>;
    outside?: OutsideVitest;
    stickyQueueTimeoutMs?: number;
  } = {},
): Promise<TestWharf> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'wharf-test-'));
  const token = opts.env?.WHARF_ADMIN_TOKEN ?? 'test-' + randomBytes(12).toString('hex');
  const taskQueue = opts.taskQueue ?? 'wharf-test-' + randomBytes(6).toString('hex');
  const config = loadConfig({
    WHARF_DATA_DIR: dataDir,
    WHARF_ADMIN_TOKEN: token,
    WHARF_PORT: '8080',
    WHARF_PUBLIC_URL: opts.publicUrl ?? 'http://127.0.0.1:1',
    TEMPORAL_ADDRESS: opts.outside?.temporalAddress ?? inject('temporalAddress'),
    WHARF_TASK_QUEUE: taskQueue,
    META_GRAPH_URL: opts.graphUrl ?? 'http://127.0.0.1:9',
    LOG_LEVEL: process.env.WHARF_TEST_LOG ?? 'silent',
    // The suite's dev server is on this machine, as the embedded one is: no gzip (lib/temporal-connection.ts).
    WHARF_TEMPORAL_COMPRESSION: 'none',
    ...(opts.waUrl ? { WHARF_WA_URL: opts.waUrl } : {}),
    ...(opts.waCertRoot ? { WHARF_WA_CERT_ROOT: opts.waCertRoot } : {}),
    ...opts.env,
  });
  const log = opts.log ?? createLogger(config.logLevel);
  const opened = await step(
    'opening the store',
    openTestStore(
      dataDir,
      opts.databaseUrl ? 'postgres' : (opts.store ?? inject('storeKind') ?? 'sqlite'),
      opts.databaseUrl,
    ),
  );
  const { db } = opened;
  await step('migrating the store', migrate(db));
  const store = createStore(db, config.secretKey);
  const policy = createPolicyService(store);
  const graph = createGraphClient({ baseUrl: config.graph.baseUrl, version: config.graph.version, timeoutMs: 3000 });
  const connection = await step(
    'connecting to Temporal',
    Connection.connect(temporalConnectionOptions(config.temporal.address!, config.temporal.security)),
  );
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const workers = await step(
    'creating the workers',
    createWharfWorker({
      address: config.temporal.address!,
      security: config.temporal.security,
      compression: config.temporal.compression,
      namespace: config.temporal.namespace,
      taskQueue,
      store,
      secretKey: config.secretKey,
      makeSocket: opts.makeSocket,
      whatsapp: config.whatsapp,
      sessionHooks: opts.sessionHooks,
      uploadWaitMs: opts.uploadWaitMs,
      graph,
      policy,
      client,
      log,
      stickyQueueTimeoutMs: opts.stickyQueueTimeoutMs,
      chatIdleMs: config.temporal.chatIdleMs,
      workflowStackTraces: config.temporal.workflowStackTraces,
      workflowBundle: { codePath: opts.outside?.workflowBundlePath ?? inject('workflowBundlePath') } as unknown as {
        code: string;
      },
    }),
  );
  const running = workers.run();
  // Listen first so the public URL (webhook URLs are built from it) can be the real one.
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  if (!opts.publicUrl) (config as { publicUrl: string }).publicUrl = url;
  const app = createApp({
    config,
    store,
    client,
    policy,
    log,
    version: 'test',
    temporal: { address: config.temporal.address!, uiUrl: null, embedded: false },
  });
  server.on('request', app);
  answerClientErrors(server);

  return {
    url,
    token,
    config,
    store,
    db,
    databaseUrl: db.kind === 'postgres' ? readFileSync(join(dataDir, 'database-url'), 'utf8') : undefined,
    client,
    taskQueue,
    sessionQueue: workers.sessionQueue,
    api: apiClient(() => ({ url, token })),
    async close({ purge = false } = {}) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      workers.shutdown();
      const inFlight = (): string =>
        JSON.stringify({
          states: [workers.worker.getState(), workers.sessionWorker.getState()],
          counted: [
            workers.worker.getStatus().numInFlightActivities,
            workers.sessionWorker.getStatus().numInFlightActivities,
          ],
          activities: workers.inFlight(),
        });
      await step("the workers' shutdown", running, inFlight);
      await step('closing the worker connection', workers.connection.close());
      await step('closing the client connection', connection.close());
      await step('leaving the node table', store.node.leave());
      await step('closing the store', db.close());
      if (purge) {
        await opened.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
