/**
 * A small HTTP load generator for the benchmark (node:http only, no dependencies).
 *
 * - Open loop (`runOpenLoop`): request `i` is scheduled at `start + i / rate` and fired at that moment
 *   whatever happened to earlier requests, so a slow server builds up a queue and its latency shows it
 *   (no coordinated omission: latency is measured from the *scheduled* send time, and the generator's own
 *   lag behind the schedule is reported separately).
 * - Closed loop (`runClosedLoop`): `concurrency` workers each send the next request as soon as the previous
 *   one is answered, for a fixed time: the maximum throughput at that concurrency.
 *
 * Every loop is bounded by a request count and a wall-clock limit, and only loopback targets are allowed.
 */
import { Agent, request } from 'node:http';

/** One request to send: a body and extra headers (content-type and content-length are set here). */
export interface LoadRequest {
  body: Buffer;
  headers?: Record<string, string>;
  /** Path (and query) on the target's host instead of the target URL's own. */
  path?: string;
}

/** What happened to one request. */
export interface LoadOutcome {
  /** HTTP status, or 0 when the request failed without one. */
  status: number;
  /** `timeout`, `ECONNRESET`, ... when `status` is 0. */
  error?: string;
  /** Milliseconds from the scheduled (open loop) or actual (closed loop) send time to the end of the response. */
  latencyMs: number;
  /** Wall-clock time (Date.now()) the request was handed to the socket layer. */
  sentAt: number;
}

/** Summary of one step. */
export interface StepResult {
  mode: 'open' | 'closed';
  /** Offered rate in requests/s (open loop), or null (closed loop). */
  offeredRate: number | null;
  /** Concurrency (closed loop), or the socket limit (open loop). */
  concurrency: number;
  /** Requests fired. */
  sent: number;
  /** Requests answered 200. */
  ok: number;
  /** Answered with another status, by status. */
  statuses: Record<string, number>;
  /** Failed without a status (timeouts, resets, refused), by error. */
  failures: Record<string, number>;
  /** Everything that was not a 200. */
  errors: number;
  /** Seconds from the first scheduled send to the last response (or the end of the step). */
  durationSec: number;
  /** 200-acked requests per second over `durationSec`. */
  sustained: number;
  /** Acknowledgement latency of 200s, ms. */
  ackP50: number;
  ackP90: number;
  ackP99: number;
  ackMax: number;
  /** Open loop: how far behind its schedule the generator fired (p99, ms) — a busy client shows here. */
  genLagP99: number;
  /** True when the step was cut short because errors exploded or the server fell too far behind. */
  aborted: boolean;
  abortReason?: string;
}

/** Options shared by both loops. */
export interface LoadOptions {
  /** Target URL; must be http on 127.0.0.1 / localhost. */
  url: string;
  /** Builds request `i` (called just before it is sent). */
  makeRequest: (i: number) => LoadRequest;
  /** Called for every finished request. */
  onOutcome?: (i: number, outcome: LoadOutcome) => void;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** A keep-alive agent to reuse; by default one is made with `maxSockets` sockets. */
  agent?: Agent;
  maxSockets?: number;
  /** Stop the step when this many requests are outstanding (the server has fallen hopelessly behind). */
  maxInFlight?: number;
  /** Stop the step when, after 100 requests, more than this fraction failed (default 0.5). */
  maxErrorRatio?: number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The q-quantile (0..1) of `values` (nearest rank), NaN when empty. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** Rounds to `d` decimals (NaN stays NaN). */
export function round(n: number, d = 1): number {
  const f = 10 ** d;
  return Math.round(n * f) / f;
}

function assertLoopback(url: URL): void {
  if (url.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`the load generator only targets local http servers, not ${url.href}`);
  }
}

/** A keep-alive agent for load. */
export function loadAgent(maxSockets = 256): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
}

/** Sends one POST and resolves with its outcome (never rejects). `t0` is the time latency is counted from. */
export function post(
  url: URL,
  req: LoadRequest,
  agent: Agent,
  timeoutMs: number,
  t0 = performance.now(),
): Promise<LoadOutcome> {
  const sentAt = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (status: number, error?: string): void => {
      if (done) return;
      done = true;
      resolve({ status, ...(error ? { error } : {}), latencyMs: performance.now() - t0, sentAt });
    };
    const r = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: req.path ?? url.pathname + url.search,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(req.body.length), ...req.headers },
      },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => finish(res.statusCode ?? 0));
        res.on('error', (err: NodeJS.ErrnoException) => finish(0, err.code ?? err.message));
      },
    );
    r.setTimeout(timeoutMs, () => {
      finish(0, 'timeout');
      r.destroy();
    });
    r.on('error', (err: NodeJS.ErrnoException) => finish(0, err.code ?? err.message));
    r.end(req.body);
  });
}

class Tally {
  ok = 0;
  sent = 0;
  done = 0;
  statuses: Record<string, number> = {};
  failures: Record<string, number> = {};
  ackLatencies: number[] = [];
  lags: number[] = [];
  lastDone = 0;
  add(o: LoadOutcome): void {
    this.done++;
    this.lastDone = performance.now();
    if (o.status === 200) {
      this.ok++;
      this.ackLatencies.push(o.latencyMs);
    } else if (o.status) {
      this.statuses[o.status] = (this.statuses[o.status] ?? 0) + 1;
    } else {
      const k = o.error ?? 'error';
      this.failures[k] = (this.failures[k] ?? 0) + 1;
    }
  }
  get errors(): number {
    return this.done - this.ok;
  }
  result(
    mode: 'open' | 'closed',
    offeredRate: number | null,
    concurrency: number,
    durationSec: number,
    abortReason?: string,
  ): StepResult {
    return {
      mode,
      offeredRate,
      concurrency,
      sent: this.sent,
      ok: this.ok,
      statuses: this.statuses,
      failures: this.failures,
      errors: this.sent - this.ok,
      durationSec: round(durationSec, 2),
      sustained: round(durationSec > 0 ? this.ok / durationSec : 0, 1),
      ackP50: round(percentile(this.ackLatencies, 0.5), 1),
      ackP90: round(percentile(this.ackLatencies, 0.9), 1),
      ackP99: round(percentile(this.ackLatencies, 0.99), 1),
      ackMax: round(this.ackLatencies.length ? this.ackLatencies.reduce((a, b) => Math.max(a, b), 0) : NaN, 1),
      genLagP99: round(percentile(this.lags, 0.99), 1),
      aborted: !!abortReason,
      ...(abortReason ? { abortReason } : {}),
    };
  }
}

/**
 * Open loop at `rate` requests/s for `seconds`. Waits (up to the request timeout) for outstanding answers
 * after the last send. Also stops early on `stopAt(i)` returning true before request `i` (used by the crash
 * test to kill the server mid-burst).
 */
export async function runOpenLoop(
  opts: LoadOptions & { rate: number; seconds: number; beforeSend?: (i: number) => boolean | void },
): Promise<StepResult> {
  const url = new URL(opts.url);
  assertLoopback(url);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxSockets = opts.maxSockets ?? 256;
  const agent = opts.agent ?? loadAgent(maxSockets);
  const maxInFlight = opts.maxInFlight ?? Math.max(2_000, opts.rate * 5);
  const maxErrorRatio = opts.maxErrorRatio ?? 0.5;
  const total = Math.max(1, Math.round(opts.rate * opts.seconds));
  const interval = 1000 / opts.rate;
  const tally = new Tally();
  const pending = new Set<Promise<void>>();
  let abortReason: string | undefined;

  const start = performance.now();
  const hardStop = start + opts.seconds * 1000 * 3 + 10_000;
  let i = 0;
  while (i < total && !abortReason) {
    const now = performance.now();
    if (now > hardStop) {
      abortReason = 'the generator fell too far behind its schedule';
      break;
    }
    const due = Math.min(total, Math.floor((now - start) / interval) + 1);
    while (i < due) {
      if (opts.beforeSend?.(i) === true) {
        abortReason = 'stopped by the caller';
        break;
      }
      const scheduled = start + i * interval;
      tally.lags.push(performance.now() - scheduled);
      const idx = i;
      const req = opts.makeRequest(idx);
      tally.sent++;
      const p: Promise<void> = post(url, req, agent, timeoutMs, scheduled).then((o) => {
        tally.add(o);
        opts.onOutcome?.(idx, o);
        pending.delete(p);
      });
      pending.add(p);
      i++;
    }
    if (pending.size > maxInFlight) abortReason = `more than ${maxInFlight} requests outstanding`;
    else if (tally.done >= 100 && tally.errors / tally.done > maxErrorRatio)
      abortReason = `${tally.errors} of ${tally.done} requests failed`;
    if (i < total && !abortReason) {
      const next = start + i * interval;
      await sleep(Math.max(0, Math.min(20, next - performance.now())));
    }
  }
  await Promise.all([...pending]);
  if (!opts.agent) agent.destroy();
  // Duration: from the first scheduled send to the later of the schedule's end and the last answer.
  const scheduleEnd = start + i * interval;
  const end = Math.max(scheduleEnd, tally.lastDone || scheduleEnd);
  return tally.result('open', opts.rate, maxSockets, (end - start) / 1000, abortReason);
}

/** Closed loop: `concurrency` requests in flight at all times for `seconds` (at most `maxRequests` in all). */
export async function runClosedLoop(
  opts: LoadOptions & { concurrency: number; seconds: number; maxRequests?: number },
): Promise<StepResult> {
  const url = new URL(opts.url);
  assertLoopback(url);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const agent = opts.agent ?? loadAgent(opts.concurrency);
  const maxRequests = opts.maxRequests ?? 1_000_000;
  const maxErrorRatio = opts.maxErrorRatio ?? 0.5;
  const tally = new Tally();
  let abortReason: string | undefined;
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  let next = 0;

  const worker = async (): Promise<void> => {
    while (performance.now() < deadline && next < maxRequests && !abortReason) {
      const idx = next++;
      const req = opts.makeRequest(idx);
      tally.sent++;
      const o = await post(url, req, agent, timeoutMs);
      tally.add(o);
      opts.onOutcome?.(idx, o);
      if (tally.done >= 100 && tally.errors / tally.done > maxErrorRatio)
        abortReason = `${tally.errors} of ${tally.done} requests failed`;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  if (!opts.agent) agent.destroy();
  const end = tally.lastDone || performance.now();
  return tally.result('closed', null, opts.concurrency, (end - start) / 1000, abortReason);
}
