/**
 * The built product as operators run it: `node dist/workers/main.js` in a child process, configured only by
 * the SPEC §3 environment variables, on a data dir of its own. For tests about the process itself (file
 * permissions, signals); everything else uses the faster in-process harness (./wharf.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { freePort } from '../../workers/temporal-server.js';
import { apiClient } from './api-client.js';
import type { TestWharf } from './wharf.js';

/** A running child process of the built product. */
export interface SpawnedWharf {
  url: string;
  token: string;
  dataDir: string;
  child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** The same `api` helper as the in-process harness, so test/support/cloud.ts works against it. */
  api: TestWharf['api'];
  /** This instance seen as a {@link TestWharf} by the cloud helpers (only `url`, `token` and `api` are real). */
  asTestWharf(): TestWharf;
  /** Sends `signal` and waits for the exit (SIGKILL after `timeoutMs`); resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Removes the data dir (after stop). */
  purge(): void;
}

// One build at a time across test files running in parallel: two `tsc` runs writing dist/ at once corrupt it.
function buildIfStale(): void {
  const lock = join(
    tmpdir(),
    `wharf-build-${createHash('sha256').update(projectRoot).digest('hex').slice(0, 12)}.lock`,
  );
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      const age = (() => {
        try {
          return Date.now() - statSync(lock).mtimeMs;
        } catch {
          return 0;
        }
      })();
      if (age > 180_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error('timed out waiting for another test file to finish building');
      execFileSync('sleep', ['0.5']);
    }
  }
  try {
    execFileSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: projectRoot, stdio: 'pipe' });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Builds (when sources changed) and starts the product; resolves once it logs that it is up. */
export async function spawnWharf(
  env: Record<string, string> = {},
  opts: { startTimeoutMs?: number } = {},
): Promise<SpawnedWharf> {
  buildIfStale();
  // A given WHARF_DATA_DIR (a restart on the same store) is used as it is; otherwise a fresh one.
  const dataDir = env.WHARF_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'wharf-spawned-'));
  const token = env.WHARF_ADMIN_TOKEN ?? 'test-' + randomBytes(12).toString('hex'); // a restart keeps its token
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['dist/workers/main.js'], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      WHARF_PORT: String(port),
      WHARF_HOST: '127.0.0.1',
      WHARF_PUBLIC_URL: url,
      WHARF_DATA_DIR: dataDir,
      WHARF_ADMIN_TOKEN: token,
      WHARF_TASK_QUEUE: 'wharf-spawned-' + randomBytes(6).toString('hex'),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const startTimeoutMs = opts.startTimeoutMs ?? 90_000;
  const deadline = Date.now() + startTimeoutMs;
  while (!/Wharf is up/.test(out)) {
    if (child.exitCode !== null)
      throw new Error(`wharf exited with ${child.exitCode} during start-up:\n${out}\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`wharf did not start within ${startTimeoutMs} ms:\n${out.slice(-4000)}\n${err.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const api = apiClient(() => ({ url, token }));

  const self: SpawnedWharf = {
    url,
    token,
    dataDir,
    child,
    stdout: () => out,
    stderr: () => err,
    api,
    asTestWharf: () => ({ url, token, api }) as unknown as TestWharf,
    async stop(signal = 'SIGTERM', timeoutMs = 60_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
    purge() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}
