/**
 * The baseline the issue asks for: a bare Express 5 server that verifies Meta's HMAC on the raw body with
 * `crypto.timingSafeEqual` and answers 200 — the most any webhook receiver in this stack could do. It runs
 * in its own Node process (like Wharf), started by `startBaselineServer`, and is driven with the same load
 * generator and the same signed payloads as Wharf.
 *
 * Run directly as `node dist/bench/baseline.js --serve` (secret in BASELINE_APP_SECRET) it serves on a
 * random loopback port and prints `listening <port>`.
 */
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import express from 'express';
import { runClosedLoop, runOpenLoop, type LoadRequest, type StepResult } from './load.js';

/** A running baseline server (child process). */
export interface BaselineServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the baseline in a child process and resolves once it listens. */
export async function startBaselineServer(appSecret: string): Promise<BaselineServer> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [script, '--serve'], {
    env: { ...process.env, BASELINE_APP_SECRET: appSecret },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the baseline server did not start within 15 s')), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the baseline server exited with ${code}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    pid: child.pid ?? 0,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** The baseline's figures. */
export interface BaselineResult {
  /** Closed loop at the same concurrency used for Wharf's closed-loop step. */
  closed: StepResult;
  /** Open-loop steps (the same offered rates as Wharf's, where given). */
  open: StepResult[];
  /** The highest 200-acked msgs/s seen. */
  maxSustained: number;
}

/** Drives the baseline with `makeRequest` payloads (signed with the same secret). */
export async function benchBaseline(opts: {
  appSecret: string;
  makeRequest: (i: number) => LoadRequest;
  concurrency: number;
  seconds: number;
  rates?: number[];
  progress?: (line: string) => void;
}): Promise<BaselineResult> {
  const server = await startBaselineServer(opts.appSecret);
  try {
    // Warm-up (JIT, sockets) so the first measured second is not a cold start.
    await runClosedLoop({ url: server.url, makeRequest: opts.makeRequest, concurrency: opts.concurrency, seconds: 1 });
    const open: StepResult[] = [];
    for (const rate of opts.rates ?? []) {
      opts.progress?.(`baseline: open loop at ${rate}/s for ${opts.seconds} s`);
      const r = await runOpenLoop({ url: server.url, makeRequest: opts.makeRequest, rate, seconds: opts.seconds });
      open.push(r);
      if (r.aborted) break;
    }
    opts.progress?.(`baseline: closed loop, ${opts.concurrency} in flight, ${opts.seconds} s`);
    const closed = await runClosedLoop({
      url: server.url,
      makeRequest: opts.makeRequest,
      concurrency: opts.concurrency,
      seconds: opts.seconds,
    });
    const maxSustained = Math.max(closed.sustained, ...open.map((s) => s.sustained));
    return { closed, open, maxSustained };
  } finally {
    await server.stop();
  }
}

const SIGNATURE_RE = /^sha256=([0-9a-f]{64})$/i;

function serve(appSecret: string): void {
  const app = express();
  app.disable('x-powered-by');
  app.post('/webhook', express.raw({ type: () => true, limit: '2mb' }), (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const m = SIGNATURE_RE.exec(req.header('x-hub-signature-256')?.trim() ?? '');
    const given = m ? Buffer.from(m[1], 'hex') : Buffer.alloc(0);
    const expected = createHmac('sha256', appSecret).update(raw).digest();
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.status(401).json({ error: { code: 'bad_signature', message: 'bad signature' } });
      return;
    }
    res.status(200).json({ ok: true });
  });
  const server = app.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
  });
  process.once('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv.includes('--serve')) {
  const secret = process.env.BASELINE_APP_SECRET;
  if (!secret) {
    console.error('BASELINE_APP_SECRET is required');
    process.exit(2);
  }
  serve(secret);
}
