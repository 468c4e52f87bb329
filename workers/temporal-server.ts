/**
 * The embedded Temporal dev server: the official `temporal` CLI run as a child process, with its state in
 * a SQLite file in the data dir and its Web UI on its own port. Used when TEMPORAL_ADDRESS is unset.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import { WHARF_SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';
import type { ResolvedTemporalCli } from '../lib/temporal-cli.js';

/** A running embedded server. */
export interface EmbeddedTemporal {
  address: string;
  uiUrl: string;
  /** Stops the server and waits for it to exit. */
  stop(): Promise<void>;
}

/** Options for the embedded server. */
export interface EmbeddedTemporalOptions {
  cli: ResolvedTemporalCli;
  dataDir: string;
  namespace: string;
  port?: number;
  uiPort?: number;
  /** Serve the dev server's own Prometheus metrics (persistence latencies) on this port. */
  metricsPort?: number;
  log: Logger;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** The preferred port when free, else any free port (so a second instance or a test run can coexist). */
async function pickPort(preferred: number, explicit?: number): Promise<number> {
  if (explicit) return explicit;
  return (await portFree(preferred)) ? preferred : freePort();
}

/** `setpriv` when it can set a parent-death signal (util-linux 2.33 or later, Linux), else null. */
let setpriv: string | null | undefined;
function findSetpriv(): string | null {
  if (setpriv !== undefined) return setpriv;
  setpriv = null;
  if (process.platform !== 'linux') return setpriv;
  for (const path of ['/usr/bin/setpriv', '/bin/setpriv']) {
    if (!existsSync(path)) continue;
    const help = spawnSync(path, ['--help'], { encoding: 'utf8', timeout: 5000 });
    if (help.status === 0 && help.stdout.includes('--pdeathsig')) return (setpriv = path);
  }
  return setpriv;
}

/**
 * `command args` run so that the kernel sends it SIGTERM when this process dies: `setpriv --pdeathsig`
 * sets the signal and then executes the command in its place (same pid). As it is where setpriv is missing.
 */
export function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  const wrapper = findSetpriv();
  return wrapper ? [wrapper, ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, args];
}

// A previous run killed with SIGKILL where setpriv is missing may have left its dev server on our SQLite file.
function stopStaleServer(pidFile: string, log: Logger): void {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  try {
    if (pid > 0) {
      process.kill(pid, 0);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('start-dev')) {
        log.warn({ pid }, 'stopping a Temporal dev server left over from an earlier run on this data dir');
        process.kill(pid, 'SIGKILL');
      }
    }
  } catch {
    // not running (or not ours): nothing to stop
  }
  rmSync(pidFile, { force: true });
}

async function waitUntilServing(address: string, child: ChildProcess | undefined, timeoutMs: number): Promise<void> {
  // Imported here, after the server was spawned: loading the client overlaps the server's own start.
  const { Connection } = await import('@temporalio/client');
  const t0 = Date.now();
  let lastErr: unknown;
  while (Date.now() - t0 < timeoutMs) {
    if (child && child.exitCode !== null)
      throw new Error(`the Temporal dev server exited with code ${child.exitCode} during start-up`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.getSystemInfo({});
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastErr = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`the Temporal dev server did not answer on ${address} within ${timeoutMs} ms: ${String(lastErr)}`);
}

/**
 * How the embedded dev server runs; neither trades durability.
 * - WAL journal: one fsync per commit instead of several (rollback journal), with `synchronous` left at
 *   SQLite's FULL — as durable as before, about 2.5× the signal throughput on this class of disk.
 * - The search-attribute cache on: the dev server turns it off by default (so attributes registered at run
 *   time show at once), which costs two extra SQLite reads on every call that carries search attributes —
 *   each chat's signal-with-start. Wharf registers its attributes when the server starts and never later.
 */
export const DEV_SERVER_TUNING = [
  '--sqlite-pragma',
  'journal_mode=wal',
  '--dynamic-config-value',
  'system.forceSearchAttributesCacheRefreshOnRead=false',
];

/** Starts the embedded dev server and waits until it serves. */
export async function startEmbeddedTemporal(opts: EmbeddedTemporalOptions): Promise<EmbeddedTemporal> {
  return (await launchEmbeddedTemporal(opts)).ready;
}

/** An embedded server whose process has been started and may not serve yet. */
export interface LaunchedTemporal {
  /** Resolves once the server answers (rejects, with the process killed, if it does not). */
  ready: Promise<EmbeddedTemporal>;
  /** Stops the process whether or not it got ready. */
  stop(): Promise<void>;
}

/**
 * Starts the embedded dev server's process and returns at once, before it serves: `workers/main.ts` loads
 * the rest of Wharf and opens the store while the server starts (issue #22: each took seconds of a start).
 */
export async function launchEmbeddedTemporal(opts: EmbeddedTemporalOptions): Promise<LaunchedTemporal> {
  const { cli, dataDir, namespace, log } = opts;
  const dbFile = join(dataDir, 'temporal.db');
  const port = await pickPort(7233, opts.port);
  const uiPort = await pickPort(port === 7233 ? 8233 : port + 1000, opts.uiPort);
  const address = `127.0.0.1:${port}`;
  const uiUrl = `http://127.0.0.1:${uiPort}`;
  const saArgs = WHARF_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);

  if (!cli.path) {
    // No binary here: the SDK downloads the dev server (needs internet) and runs it with the same options.
    log.info('starting the Temporal dev server downloaded by the SDK');
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    const env = TestWorkflowEnvironment.createLocal({
      server: {
        dbFilename: dbFile,
        ip: '127.0.0.1',
        port,
        ui: true,
        uiPort,
        namespace,
        searchAttributes: WHARF_SEARCH_ATTRIBUTES,
        extraArgs: ['--log-level', 'warn', ...DEV_SERVER_TUNING],
      },
    });
    const ready = env.then((e) => ({ address: e.address, uiUrl, stop: () => e.teardown() }));
    return { ready, stop: () => ready.then((e) => e.stop()).catch(() => undefined) };
  }

  const pidFile = join(dataDir, 'temporal.pid');
  stopStaleServer(pidFile, log);
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    ...DEV_SERVER_TUNING,
    ...saArgs,
    ...(opts.metricsPort ? ['--metrics-port', String(opts.metricsPort)] : []),
  ];
  log.info({ port, uiPort, dbFile }, 'starting the embedded Temporal dev server');
  // Same process group as Wharf: a kill of the group (or of the terminal) takes the server along. And Wharf's
  // own death, even by SIGKILL, stops it (SIGTERM, through the kernel's parent-death signal) instead of
  // leaving it on the ports and the database until the next start finds it.
  const [command, commandArgs] = withParentDeathSignal(cli.path, args);
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  writeFileSync(pidFile, String(child.pid));
  const serverLog = log.child({ component: 'temporal-server' });
  const forward = (buf: Buffer): void => {
    for (const line of buf.toString('utf8').split('\n')) if (line.trim()) serverLog.debug(line.trim());
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(pidFile, { force: true });
  };
  const ready = waitUntilServing(address, child, 60_000).then(
    () => ({ address, uiUrl, stop }),
    (err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    },
  );
  return { ready, stop };
}
