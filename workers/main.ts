/**
 * `npm start`: one process running Wharf. With TEMPORAL_ADDRESS unset it first starts the embedded
 * Temporal dev server (SQLite in the data dir, Web UI on); then it opens the store (SQLite, PGlite with
 * WHARF_STORE=pglite, or PostgreSQL with DATABASE_URL), runs the worker and serves the API. SIGTERM/SIGINT
 * shut it all down in order.
 */
import './v8-flags.js'; // first: V8 settings that must precede any optimised code
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { LogLevel } from '@temporalio/worker';
import { within } from '../lib/deadline.js';
import { ConfigError, loadConfig, type Config } from '../lib/config.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { projectRoot } from '../lib/paths.js';
import { openPglite, openPostgres, type Db } from '../lib/store/db.js';
import { restrictToOwner } from '../lib/owner-only.js';
import { migrate } from '../lib/store/migrations.js';
import { resolveTemporalCli } from '../lib/temporal-cli.js';
import { launchEmbeddedTemporal, type EmbeddedTemporal, type LaunchedTemporal } from './temporal-server.js';

const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * The rest of Wharf (Temporal's SDK, the API, the workers, Cedar), about 1.5 s of module loading: imported
 * once the dev server's process is started and the store is opening, so the three overlap (issue #22).
 */
async function loadRuntime() {
  const [
    client,
    worker,
    app,
    graph,
    policy,
    store,
    connection,
    tls,
    searchAttributes,
    retention,
    wharfWorker,
    trim,
    watchdog,
  ] = await Promise.all([
    import('@temporalio/client'),
    import('@temporalio/worker'),
    import('../api/app.js'),
    import('../lib/graph/graph-client.js'),
    import('../lib/policy/service.js'),
    import('../lib/store/store.js'),
    import('./client-connection.js'),
    import('../lib/temporal-connection.js'),
    import('./search-attributes.js'),
    import('./media-retention.js'),
    import('./worker.js'),
    import('./memory-trim.js'),
    import('./store-watchdog.js'),
  ]);
  return {
    Client: client.Client,
    Runtime: worker.Runtime,
    DefaultLogger: worker.DefaultLogger,
    ...app,
    ...graph,
    ...policy,
    ...store,
    ...connection,
    ...tls,
    ...searchAttributes,
    ...retention,
    ...wharfWorker,
    ...trim,
    ...watchdog,
  };
}
type Loaded = Awaited<ReturnType<typeof loadRuntime>>;

/** Routes the SDK's own logs (worker lifecycle, workflow errors) into pino. */
function installRuntimeLogger(rt: Loaded, log: Logger, metricsAddress?: string): void {
  const { Runtime, DefaultLogger } = rt;
  const sdk = log.child({ component: 'temporal-sdk' });
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  // shutdownSignals: [] — Wharf's own handler shuts down in order (API, worker, server, store).
  // The session queue's worker hosts activities only; its "no workflows registered" notice is expected.
  const expected = /^No workflows registered/;
  Runtime.install({
    logger: new DefaultLogger('INFO', (e) => {
      if (!expected.test(e.message)) sdk[levels[e.level]]({ ...e.meta }, e.message);
    }),
    shutdownSignals: [],
    // Task latencies, slots in use and the sticky cache, as Prometheus text (WHARF_METRICS_ADDRESS).
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}),
  });
}

async function openStore(config: Config, log: Logger): Promise<Db> {
  if (config.databaseUrl) {
    log.info('store: PostgreSQL (DATABASE_URL)');
    return openPostgres(config.databaseUrl);
  }
  if (config.embeddedStore === 'sqlite') {
    const dir = join(config.dataDir, 'store-sqlite');
    log.info({ dir }, 'store: SQLite');
    // Loaded only when chosen: better-sqlite3 is a native module.
    const { openSqlite } = await import('../lib/store/sqlite.js');
    // A data dir from a Wharf that ran on PGlite: its store is copied over once (the PGlite dir is kept, renamed).
    const { migratePgliteToSqlite } = await import('../lib/store/pglite-to-sqlite.js');
    await migratePgliteToSqlite(config.dataDir, { log });
    return openSqlite(dir);
  }
  const dir = join(config.dataDir, 'store');
  // A data dir whose store moved to SQLite must not quietly open as an empty PGlite store.
  const { pgliteWouldStartEmpty } = await import('../lib/store/pglite-to-sqlite.js');
  const refused = pgliteWouldStartEmpty(config.dataDir);
  if (refused) throw new Error(refused);
  log.warn({ dir }, 'store: PGlite (WHARF_STORE=pglite, the previous engine: kept for one release)');
  return openPglite(dir);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  // When each part of the start was done, in ms since the process started (logged with "Wharf is up").
  const phasesMs: Record<string, number> = { modules: Math.round(t0) };
  const mark = (phase: string): void => void (phasesMs[phase] = Math.round(performance.now()));
  // Owner-only files (lib/owner-only.ts): everything this process and the dev server it starts create.
  process.umask(0o077);
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`wharf: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  log.info({ version, dataDir: config.dataDir }, 'Wharf starting');
  if (config.whatsapp.webSocketUrl || config.whatsapp.certRoot) {
    // Either one means personal accounts may not be talking to WhatsApp: say so every start, loudly.
    log.warn(
      {
        WHARF_WA_URL: config.whatsapp.webSocketUrl ?? null,
        WHARF_WA_CERT_ROOT: config.whatsapp.certRoot?.toString('base64') ?? null,
      },
      'WARNING: personal accounts connect to a WhatsApp Web server other than WhatsApp (WHARF_WA_URL) or trust another certificate root (WHARF_WA_CERT_ROOT); unset both for real WhatsApp',
    );
  }

  // `holding` says what a step that did not stop in time was still waiting for (logged with the warning).
  const stops: Array<{ name: string; stop: () => Promise<unknown>; holding?: () => unknown }> = [];
  let shuttingDown = false;
  const shutdown = async (signal: string, code = 0): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    // Whatever happens below, the process ends: a hard deadline that keeps the event loop alive until it fires.
    setTimeout(() => process.exit(code || 1), 50_000);
    try {
      await stopAll(signal);
    } finally {
      process.exit(code);
    }
  };
  const stopAll = async (signal: string): Promise<void> => {
    log.info({ signal }, 'shutting down');
    // Reverse order of start: API stops taking requests, worker drains, server stops, store closes.
    // Each step is bounded: when the terminal's Ctrl-C (or a process-group kill) already took the dev server
    // down, a worker cannot drain against it, and shutdown must still finish.
    const STEP_MS = 12_000;
    for (const { name, stop, holding } of stops.reverse()) {
      try {
        const outcome = await within<'ok' | 'timeout'>(
          stop().then(() => 'ok'),
          STEP_MS,
          () => 'timeout',
        );
        if (outcome === 'timeout') {
          log.warn({ holding: holding?.() }, `${name} did not stop within ${STEP_MS / 1000} s; continuing`);
        } else log.info(`${name} stopped`);
      } catch (err) {
        log.error({ err }, `${name} did not stop cleanly`);
      }
    }
    log.info('bye');
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, () => void shutdown(sig));
  // A reader that went away (EPIPE) must not turn into an uncaught error.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  try {
    // Files left by earlier versions (or another umask) are tightened too; cheap (about 1,000 entries).
    const swept = restrictToOwner(config.dataDir);
    if (swept.tightened) log.info(swept, 'data dir: group/other permissions removed (owner-only)');
    // Three things of seconds each overlap (issue #22): the dev server's process starts first, then the store
    // opens and migrates, and the rest of Wharf loads meanwhile. A failure of any is reported once all settled.
    let launched: LaunchedTemporal | undefined;
    if (!config.temporal.address) {
      const cli = resolveTemporalCli();
      log.info(
        { source: cli.source, path: cli.path },
        `Temporal CLI: ${cli.source}${cli.path ? ` (${cli.path})` : ''}`,
      );
      launched = await launchEmbeddedTemporal({
        cli,
        dataDir: config.dataDir,
        namespace: config.temporal.namespace,
        port: config.temporal.port,
        uiPort: config.temporal.uiPort,
        metricsPort: config.temporal.metricsPort,
        log,
      });
      launched.ready.catch(() => undefined); // awaited below
      stops.push({ name: 'Temporal dev server', stop: launched.stop });
    }
    const storeReady = openStore(config, log).then(async (db) => {
      try {
        const applied = await migrate(db);
        if (applied.length) log.info({ applied }, 'store migrations applied');
        mark('store');
        return db;
      } catch (err) {
        await db.close().catch(() => undefined);
        throw err;
      }
    });
    storeReady.catch(() => undefined); // awaited below
    const closeStoreOnFailure = async (): Promise<void> => {
      await storeReady.then(
        (db) => db.close(),
        () => undefined,
      );
    };
    const rt = await loadRuntime().catch(async (err: unknown) => {
      await closeStoreOnFailure();
      throw err;
    });
    mark('runtime');
    try {
      installRuntimeLogger(rt, log, config.metricsAddress);
    } catch (err) {
      await closeStoreOnFailure();
      // The one way this fails in practice is a taken metrics port: name the setting to change.
      if (!config.metricsAddress) throw err;
      console.error(
        `wharf: WHARF_METRICS_ADDRESS=${config.metricsAddress}: ${err instanceof Error ? err.message : String(err)}`,
      );
      return shutdown('startup-failure', 2);
    }

    let embedded: EmbeddedTemporal | undefined;
    let address = config.temporal.address;
    if (launched) {
      embedded = await launched.ready.catch(async (err: unknown) => {
        await closeStoreOnFailure();
        throw err;
      });
      address = embedded.address;
      mark('temporal');
      log.info(
        { address, uiUrl: embedded.uiUrl },
        `Temporal dev server ready at ${address}; Web UI at ${embedded.uiUrl}`,
      );
    } else {
      const { tls, apiKey } = config.temporal.security;
      const security = apiKey ? 'TLS + API key' : tls?.clientCertPair ? 'mTLS' : tls ? 'TLS' : 'plaintext';
      log.info(
        { address, namespace: config.temporal.namespace, security },
        `connecting to the Temporal cluster at TEMPORAL_ADDRESS (${security})`,
      );
    }
    if (!address) throw new Error('no Temporal address'); // unreachable: set above when not configured

    // The client connects while the store finishes opening.
    const [db, { connection, close: closeConnection }] = await Promise.all([
      storeReady,
      rt.connectClient(rt.temporalConnectionOptions(address, config.temporal.security)),
    ]);
    stops.push({ name: 'Temporal client', stop: closeConnection });
    stops.push({ name: 'store', stop: () => db.close() });
    const store = rt.createStore(db, config.secretKey);
    // After the worker has drained: this node's remaining claims on unsent parts are free for the others.
    stops.push({ name: 'node registration', stop: () => store.node.leave() });
    if (db.kind === 'pglite' || db.kind === 'sqlite') {
      // An embedded store's data dir (PGlite, SQLite) has one user, this process: a claim on an unsent reply part belongs to a process
      // that died mid-send, and that reply need not wait for the claim's lease (a minute) to run out.
      const released = await store.messages.releaseAllOutboundClaims();
      if (released) log.info({ released }, 'claims on unsent reply parts left by the previous run given back');
    }
    const policy = rt.createPolicyService(store);
    const graph = rt.createGraphClient({ baseUrl: config.graph.baseUrl, version: config.graph.version });

    const client = new rt.Client({ connection, namespace: config.temporal.namespace });
    if (!embedded) await rt.registerSearchAttributes(connection, config.temporal.namespace, log);

    rt.startMediaRetention(store, config.mediaRetentionDays, log.child({ component: 'media' }));
    const stopWatchdog = rt.startStoreWatchdog(db, log.child({ component: 'store' }));
    stops.push({ name: 'store watchdog', stop: async () => stopWatchdog() });
    const trim = rt.startMemoryTrim(config.memoryTrimMs, log.child({ component: 'memory' }));
    stops.push({ name: 'memory trim', stop: async () => trim.stop() });
    mark('client');
    const workers = await rt.createWharfWorker({
      address,
      security: config.temporal.security,
      compression: config.temporal.compression,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowCacheSize: config.temporal.workflowCacheSize,
      workflowStackTraces: config.temporal.workflowStackTraces,
      chatIdleMs: config.temporal.chatIdleMs,
      store,
      secretKey: config.secretKey,
      whatsapp: config.whatsapp,
      graph,
      policy,
      client,
      log,
    });
    mark('workers');
    const running = workers.run();
    stops.push({
      name: 'worker',
      stop: async () => {
        workers.shutdown();
        await running;
        await workers.connection.close();
      },
      holding: () => workers.inFlight(),
    });
    running.catch((err) => {
      log.fatal({ err }, 'the worker stopped unexpectedly');
      void shutdown('worker-failure', 1);
    });

    const app = rt.createApp({
      config,
      store,
      client,
      policy,
      log,
      version,
      temporal: { address, uiUrl: embedded?.uiUrl ?? null, embedded: !!embedded },
    });
    const server: Server = await new Promise((resolve, reject) => {
      const s = app.listen(config.port, config.host, () => resolve(s)).once('error', reject);
    });
    rt.answerClientErrors(server);
    stops.push({
      name: 'API',
      // Before the worker and the Temporal connection stop: no new connections, requests on kept-alive ones
      // answered 503, those in flight finish (≤ 10 s, within the step's bound), then the sockets close.
      stop: async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const { cutOff } = await app.shutdown(10_000);
        if (cutOff) log.warn({ cutOff }, 'requests still running at the shutdown deadline were answered 503');
        server.closeAllConnections();
        await closed;
      },
    });

    const ms = Math.round(performance.now() - t0);
    log.info(
      { url: `http://${config.host}:${config.port}`, publicUrl: config.publicUrl, startupMs: ms, phasesMs },
      `Wharf is up in ${ms} ms: API on http://${config.host}:${config.port}`,
    );
    if (config.adminTokenGenerated) {
      // Printed once, on the first start; it stays in the data dir (admin-token) for later reference.
      process.stdout.write(
        `\n  Admin token (shown once; also in ${join(config.dataDir, 'admin-token')}):\n\n    ${config.adminToken}\n\n`,
      );
    }
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    await shutdown('startup-failure', 1);
  }
}

await main();
