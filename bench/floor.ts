/**
 * The `floor` section of `npm run bench` (issue #22): Wharf against the floor — the smallest implementation of
 * the same message path on the same Temporal dev server and SDK (bench/floor/server.ts) — side by side in
 * one run. Both get the same open-loop generator, the same signed payloads over 64 chats and the same fake
 * Graph API; at each offered rate the floor runs a step, then Wharf, so drifts of a shared machine hit both.
 *
 * Per rate and system: ack rate, ack p50/p99, end-to-end p50/p99, the share answered within 10 s of the end
 * of the load, CPU of the app's process and of its dev server (% of one core over the load, and CPU ms per
 * message over the load and its drain). **Capacity** is the highest rate at which acks keep ≥ 95 % of the
 * offered rate, end-to-end p99 < 1 s and ≥ 99 % are answered within 10 s of the end of the load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.js';
import type { FakeGraph } from '../test/fakes/graph-server.js';
import { percentile, round, runOpenLoop, sleep, type StepResult } from './load.js';
import {
  GRAPH_TOKEN,
  ReplyTracker,
  benchText,
  childPids,
  commOf,
  configureAndConnect,
  cpuTicks,
  createChannel,
  createSecrets,
  freePort,
  signedWebhook,
  startProduct,
  benchNodeArgs,
  startMallocEnv,
  type Product,
} from './product.js';

/** What the section is told. */
export interface FloorOptions {
  fake: FakeGraph;
  runDir: string;
  /** Offered rates, msgs/s, lowest first. */
  rates: number[];
  /** Seconds of load per step. */
  seconds: number;
  /**
   * Steps per rate and system. With more than one, the order alternates (floor first, then Wharf first), a
   * rate's figures are the medians of its rounds, and the CPU ratio is the ratio of the two systems' medians:
   * on a shared 2-core machine one step of either system varies by up to 15 % from the next. (Not the median
   * of each round's paired ratio: in every round one system's step follows its own and the other's follows a
   * pause, which costs a recompilation — V8's memory reducer discards optimised code while a process idles —
   * so each paired ratio measures that order as much as the systems; docs/performance.md, session 15.)
   */
  rounds: number;
  /**
   * Rounds at `cpuRate`, where the CPU goal is decided (at least `rounds`, even: each system then has as many
   * steps after its own as after the other's), more than the other rates get.
   */
  cpuRounds: number;
  /**
   * Seconds of load at `cpuRate` each system gets after its first message per chat and before the first
   * measured step, not measured (0: none). Both JITs then optimise their message path before it is measured:
   * with one message per chat as the only warm-up, each system's first measured step carried its compiler's
   * first optimisations of hundreds of functions (V8's --trace-opt), Wharf more of them than the floor.
   */
  warmupSeconds: number;
  /**
   * Seconds of load at the step's rate a system gets, not measured, before a measured step that follows the
   * other system's (0: none). While a process idles ~30 s during the other's step, V8's memory reducer
   * discards optimised code built on the shapes of its short-lived objects, and its next step compiles its
   * message path again (session 15); without a lead-in each measured step after a pause carried that
   * re-optimisation, Wharf's more than the floor's. The lead-ins are measured too and reported as what a
   * step costs after a pause (`FloorResult.afterPause`).
   */
  leadInSeconds: number;
  chats: number;
  /** performance.now() by which the section must end. */
  deadline: number;
  /** Rate whose CPU per message the goals compare (100 msgs/s in the issue). */
  cpuRate: number;
  /** How long a step waits for its backlog after the 10 s the bound allows, ms. */
  backlogMs: number;
  progress: (line: string) => void;
}

/** One system under test: its process, webhook URL and app secret. */
export interface System {
  name: 'floor' | 'wharf';
  pid: number;
  webhookUrl: string;
  appSecret: string;
  startMs: number;
  stop(): Promise<void>;
}

/** One step's figures for one system. */
export interface FloorStep {
  system: 'floor' | 'wharf';
  rate: number;
  /** Which round at this rate (0-based); a rate's summary has the number of rounds instead. */
  round: number;
  sent: number;
  acked: number;
  /** 200s per second from the first scheduled send to the last answer. */
  ackRate: number;
  ackP50: number;
  ackP99: number;
  e2eP50: number | null;
  e2eP99: number | null;
  /** Share of sent messages answered within 10 s of the end of the load, %. */
  answeredIn10sPct: number;
  /** Acked messages still unanswered when the step's drain wait ended. */
  unanswered: number;
  /** CPU over the load, % of one core: the app's own process and its dev server. */
  appCpuPct: number;
  temporalCpuPct: number;
  /** CPU ms per acked message over the load and its drain: app, dev server, both. */
  appCpuMsPerMsg: number | null;
  temporalCpuMsPerMsg: number | null;
  totalCpuMsPerMsg: number | null;
  withinBound: boolean;
  genLagP99: number;
}

/** The bound a rate must stay within to count towards capacity. */
export function withinBound(s: Pick<FloorStep, 'rate' | 'ackRate' | 'e2eP99' | 'answeredIn10sPct'>): boolean {
  return s.ackRate >= 0.95 * s.rate && s.e2eP99 !== null && s.e2eP99 < 1000 && s.answeredIn10sPct >= 99;
}

/** Capacity: the highest rate within the bound (0 when none is); give it the per-rate summaries. */
export function capacity(steps: FloorStep[], system: 'floor' | 'wharf'): number {
  return Math.max(0, ...steps.filter((s) => s.system === system && s.withinBound).map((s) => s.rate));
}

/** The median of what is there (null when nothing is); of two values, their mean. */
export function median(values: Array<number | null>): number | null {
  const v = values.filter((x): x is number => x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * One system's rounds at one rate as one step: each figure the median of the rounds' (an unanswered
 * message counts as an infinite e2e in its round, so a round that left messages behind keeps its p99 out of
 * the bound), and the bound applied to those medians.
 */
export function summarize(rounds: FloorStep[]): FloorStep {
  const [first] = rounds;
  const m = (pick: (s: FloorStep) => number | null, digits = 1): number | null => {
    const v = median(rounds.map(pick));
    return v === null || !Number.isFinite(v) ? null : round(v, digits);
  };
  const s: FloorStep = {
    system: first.system,
    rate: first.rate,
    round: rounds.length,
    sent: m((s) => s.sent, 0) ?? 0,
    acked: m((s) => s.acked, 0) ?? 0,
    ackRate: m((s) => s.ackRate) ?? 0,
    ackP50: m((s) => s.ackP50) ?? 0,
    ackP99: m((s) => s.ackP99) ?? 0,
    e2eP50: m((s) => s.e2eP50),
    e2eP99: m((s) => s.e2eP99 ?? Infinity),
    answeredIn10sPct: m((s) => s.answeredIn10sPct) ?? 0,
    unanswered: m((s) => s.unanswered, 0) ?? 0,
    appCpuPct: m((s) => s.appCpuPct, 0) ?? 0,
    temporalCpuPct: m((s) => s.temporalCpuPct, 0) ?? 0,
    appCpuMsPerMsg: m((s) => s.appCpuMsPerMsg, 2),
    temporalCpuMsPerMsg: m((s) => s.temporalCpuMsPerMsg, 2),
    totalCpuMsPerMsg: m((s) => s.totalCpuMsPerMsg, 2),
    withinBound: false,
    genLagP99: m((s) => s.genLagP99) ?? 0,
  };
  s.withinBound = withinBound(s);
  return s;
}

// ---- the floor's process -------------------------------------------------------------------------

/** Starts the floor's process (its own dev server on a fresh data dir in `runDir`) and waits until it serves. */
export async function startFloor(fake: FakeGraph, runDir: string): Promise<System> {
  const port = await freePort();
  const appSecret = 'appsecret-floor-0123456789abcdef';
  const dataDir = join(runDir, 'floor-data');
  const log = createWriteStream(join(runDir, 'floor.log'), { flags: 'a' });
  const t0 = performance.now();
  const server = join(projectRoot, 'dist', 'bench', 'floor', 'server.js');
  const child: ChildProcess = spawn(process.execPath, [...benchNodeArgs(), server], {
    cwd: projectRoot,
    env: {
      ...process.env,
      FLOOR_PORT: String(port),
      FLOOR_DATA_DIR: dataDir,
      FLOOR_APP_SECRET: appSecret,
      FLOOR_GRAPH_TOKEN: GRAPH_TOKEN,
      META_GRAPH_URL: fake.url,
      LOG_LEVEL: 'warn',
      ...startMallocEnv(),
    },
    // Its own process group, so its dev server goes with it on a kill.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-(child.pid ?? 0), sig);
    } catch {
      // gone
    }
  };
  const killOnExit = (): void => kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the floor exited during start-up; log ${join(runDir, 'floor.log')}`);
    if (performance.now() - t0 > 120_000) {
      kill('SIGKILL');
      throw new Error('the floor was not healthy within 120 s');
    }
    try {
      if ((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) })).status === 200) break;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  return {
    name: 'floor',
    pid: child.pid ?? 0,
    webhookUrl: `${base}/webhook`,
    appSecret,
    startMs: performance.now() - t0,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      kill('SIGKILL'); // its dev server, should it have outlived it
      process.off('exit', killOnExit);
    },
  };
}

// ---- Wharf, as shipped ---------------------------------------------------------------------------

async function startWharf(
  fake: FakeGraph,
  runDir: string,
  dataDir: string,
  port?: number,
  token?: string,
): Promise<{ system: System; product: Product }> {
  const product = await startProduct({
    graphUrl: fake.url,
    dataDir,
    logFile: join(runDir, 'wharf-floor.log'),
    ...(port ? { port } : {}),
    ...(token ? { adminToken: token } : {}),
  });
  return {
    product,
    system: {
      name: 'wharf',
      pid: product.pid,
      webhookUrl: '',
      appSecret: '',
      startMs: product.startMs,
      stop: async () => {
        await product.stop();
      },
    },
  };
}

// ---- one step ------------------------------------------------------------------------------------

/** CPU ticks (1/100 s) of `pid` and of its children that are not node (the dev server). */
function ticks(pid: number): { app: number; temporal: number } {
  const kids = childPids(pid).filter((c) => commOf(c) !== 'node');
  return { app: cpuTicks(pid), temporal: kids.reduce((a, c) => a + cpuTicks(c), 0) };
}

/** One open-loop step at `rate` on `sys`, then waits (≤ drainMs) for the replies. */
export async function step(
  sys: System,
  fake: FakeGraph,
  chats: string[],
  rate: number,
  seconds: number,
  prefix: string,
  drainMs: number,
): Promise<FloorStep> {
  const tracker = new ReplyTracker(fake);
  const tokens: string[] = [];
  const acked: string[] = [];
  const c0 = ticks(sys.pid);
  const w0 = performance.now();
  const loadStart = Date.now();
  const r: StepResult = await runOpenLoop({
    url: sys.webhookUrl,
    rate,
    seconds,
    makeRequest: (i) => {
      tokens[i] = `${prefix}n${i}`;
      return signedWebhook(sys.appSecret, { from: chats[i % chats.length], text: benchText(tokens[i]) });
    },
    onOutcome: (i, out) => {
      tracker.sent(tokens[i], out.sentAt);
      if (out.status === 200) acked.push(tokens[i]);
    },
  });
  const c1 = ticks(sys.pid);
  const loadSec = (performance.now() - w0) / 1000;
  const unanswered = await tracker.waitAll(acked, drainMs);
  const c2 = ticks(sys.pid);
  const e2e = tracker.e2e(acked);
  for (let i = 0; i < unanswered; i++) e2e.push(Infinity);
  // The load ends at its last scheduled send.
  const by = loadStart + seconds * 1000 + 10_000;
  const inTime = tokens.filter((t) => (tracker.replies.get(t)?.[0] ?? Infinity) <= by).length;
  const fin = (n: number): number | null => (Number.isFinite(n) ? round(n, 1) : null);
  const perMsg = (t: number): number | null => (acked.length ? round((t * 10) / acked.length, 2) : null);
  const s: FloorStep = {
    system: sys.name,
    rate,
    round: 0,
    sent: r.sent,
    acked: r.ok,
    ackRate: r.sustained,
    ackP50: r.ackP50,
    ackP99: r.ackP99,
    e2eP50: fin(percentile(e2e, 0.5)),
    e2eP99: fin(percentile(e2e, 0.99)),
    answeredIn10sPct: r.sent ? round((inTime / r.sent) * 100, 1) : 0,
    unanswered,
    appCpuPct: Math.round((c1.app - c0.app) / loadSec),
    temporalCpuPct: Math.round((c1.temporal - c0.temporal) / loadSec),
    appCpuMsPerMsg: perMsg(c2.app - c0.app),
    temporalCpuMsPerMsg: perMsg(c2.temporal - c0.temporal),
    totalCpuMsPerMsg: perMsg(c2.app - c0.app + c2.temporal - c0.temporal),
    withinBound: false,
    genLagP99: r.genLagP99,
  };
  s.withinBound = withinBound(s);
  return s;
}

// ---- the section ---------------------------------------------------------------------------------

/** What the section returns (also the bench's JSON). */
export interface FloorResult {
  /** One per rate and system: the median of its rounds (the step itself with one round). */
  steps: FloorStep[];
  /** Every step as it ran, when there was more than one round. */
  rounds: FloorStep[];
  /** The lead-ins (see `FloorOptions.leadInSeconds`), each with the round of the step it led into. */
  leadIns: FloorStep[];
  /**
   * CPU per message at the CPU rate in the lead-ins: what a system's first seconds after ~30 s idle cost
   * (medians; null without lead-ins). Informational: the goal compares the measured steps.
   */
  afterPause: { seconds: number; floorMsPerMsg: number | null; wharfMsPerMsg: number | null; ratio: number | null };
  capacity: { floor: number; wharf: number; ratio: number | null };
  /**
   * CPU per message at `rate` (medians over the rounds); `ratio` is Wharf's median over the floor's.
   * `roundRatios` are each round's two steps (back to back) compared; `byOrder` their medians when Wharf
   * ran first (its step after its own, the floor's after a pause) and when the floor did.
   */
  cpuAt: {
    rate: number;
    floorMsPerMsg: number | null;
    wharfMsPerMsg: number | null;
    ratio: number | null;
    roundRatios: number[];
    byOrder: { wharfFirst: number | null; floorFirst: number | null };
  };
  start: { floorMs: number; wharfFirstMs: number; wharfRestartMs: number | null };
  stopped: string[];
}

/** Runs the section; both systems are stopped when it returns. */
export async function runFloorSection(o: FloorOptions): Promise<FloorResult> {
  const { fake, progress } = o;
  const left = (): number => o.deadline - performance.now();
  const chats = Array.from({ length: o.chats }, (_, i) => `1557${String(3_000_000 + i).padStart(7, '0')}`);
  const stopped: string[] = [];
  /** One summary per rate and system (the median of its rounds), and every step as it ran. */
  const steps: FloorStep[] = [];
  const rounds: FloorStep[] = [];
  const leadIns: FloorStep[] = [];

  progress('floor: starting the floor (its own dev server, fresh data dir)');
  const floor = await startFloor(fake, o.runDir);
  progress(`floor: floor healthy in ${Math.round(floor.startMs)} ms`);
  let wharf: { system: System; product: Product } | undefined;
  let restartMs: number | null = null;
  try {
    progress('floor: starting Wharf (dist/workers/main.js, embedded dev server, fresh data dir)');
    const dataDir = join(o.runDir, 'wharf-floor-data');
    wharf = await startWharf(fake, o.runDir, dataDir);
    const firstMs = wharf.system.startMs;
    progress(`floor: Wharf healthy in ${Math.round(firstMs)} ms`);
    const p = wharf.product;
    const secrets = await createSecrets(p, 'floor');
    const { id } = await createChannel(p, 'bench-floor');
    const ch = await configureAndConnect(p, id, secrets);
    const policy = `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${id}");`;
    const saved = await p.api('PUT', '/api/policies', { policies: policy });
    if (saved.status !== 200) throw new Error(`saving the policy: HTTP ${saved.status}`);
    wharf.system.webhookUrl = ch.webhookUrl;
    wharf.system.appSecret = ch.appSecret;

    // Warm-up, not measured: one message per chat starts the 64 chat workflows on each, then (warmupSeconds)
    // a sustained load at the compared rate lets both JITs optimise the message path.
    for (const sys of [floor, wharf.system]) {
      progress(`floor: warm-up of ${sys.name} (one message per chat)`);
      const w = await step(sys, fake, chats, 32, o.chats / 32, `${sys.name[0]}w`, 20_000);
      if (w.acked < w.sent) progress(`floor: ${sys.name} warm-up: ${w.sent - w.acked} of ${w.sent} not acked`);
      if (o.warmupSeconds > 0) {
        progress(`floor: warm-up of ${sys.name} (${o.cpuRate} msgs/s for ${o.warmupSeconds} s)`);
        await step(sys, fake, chats, o.cpuRate, o.warmupSeconds, `${sys.name[0]}W`, 10_000 + o.backlogMs);
      }
    }

    // The system that ran the last step (the warm-up ends with Wharf's).
    let lastRan: 'floor' | 'wharf' = 'wharf';
    // A step: its load, up to 10 s for the bound, then up to backlogMs more for the backlog to clear (and
    // a lead-in's, which at most every other step needs).
    const stepCost = (o.seconds + o.leadInSeconds / 2) * 1000 + 10_000 + o.backlogMs;
    // Even, so that each system has as many steps after its own as after the other's (one round stays one).
    const asked = Math.max(o.rounds, o.cpuRounds);
    const cpuRounds = asked > 1 && asked % 2 ? asked + 1 : asked;
    const active = new Set<'floor' | 'wharf'>(['floor', 'wharf']);
    for (const [k, rate] of o.rates.entries()) {
      const here: Record<'floor' | 'wharf', FloorStep[]> = { floor: [], wharf: [] };
      const roundsHere = rate === o.cpuRate ? cpuRounds : o.rounds;
      for (let n = 0; n < roundsHere; n++) {
        // Odd rounds run Wharf first: a drift of the machine within a rate does not always favour one.
        for (const sys of n % 2 ? [wharf.system, floor] : [floor, wharf.system]) {
          if (!active.has(sys.name)) continue;
          // Keep ~20 s for Wharf's restart at the end; the first step runs whatever the budget (quick mode).
          if ((k > 0 || n > 0) && left() < stepCost + 20_000) {
            stopped.push(`${sys.name}: stopped before ${rate}/s (round ${n + 1}): out of the section's time budget`);
            active.delete(sys.name);
            continue;
          }
          const label = roundsHere > 1 ? ` (round ${n + 1} of ${roundsHere})` : '';
          const prefix = `${sys.name[0]}${k}r${n}`;
          if (o.leadInSeconds > 0 && lastRan !== sys.name) {
            progress(`floor: ${sys.name} lead-in at ${rate} msgs/s for ${o.leadInSeconds} s (not measured)`);
            const lead = await step(sys, fake, chats, rate, o.leadInSeconds, `${prefix}L`, 10_000 + o.backlogMs);
            leadIns.push({ ...lead, round: n });
            progress(`  ${sys.name} lead-in ${rate}/s: ${lead.totalCpuMsPerMsg ?? '—'} ms/msg`);
          }
          lastRan = sys.name;
          progress(`floor: ${sys.name} at ${rate} msgs/s for ${o.seconds} s${label}`);
          const s = { ...(await step(sys, fake, chats, rate, o.seconds, prefix, 10_000 + o.backlogMs)), round: n };
          here[sys.name].push(s);
          rounds.push(s);
          progress(
            `  ${sys.name} ${rate}/s${label}: acks ${s.ackRate}/s (p50/p99 ${s.ackP50}/${s.ackP99} ms), e2e p50/p99 ${s.e2eP50 ?? '—'}/${s.e2eP99 ?? '—'} ms, in 10 s ${s.answeredIn10sPct} %, cpu app/temporal ${s.appCpuPct}/${s.temporalCpuPct} %, ${s.totalCpuMsPerMsg ?? '—'} ms/msg${s.withinBound ? '' : ' — outside the bound'}`,
          );
        }
      }
      for (const name of ['floor', 'wharf'] as const) {
        if (!here[name].length) continue;
        steps.push(summarize(here[name]));
        // Above the rate the CPU goal compares, a system that left the bound twice in a row is done.
        const lastTwo = steps.filter((x) => x.system === name).slice(-2);
        if (active.has(name) && rate >= o.cpuRate && lastTwo.length === 2 && lastTwo.every((x) => !x.withinBound)) {
          stopped.push(`${name}: stopped after ${rate}/s: outside the bound at two rates in a row`);
          active.delete(name);
        }
      }
      if (!active.size) break;
    }

    // Restart of Wharf on the same data dir (its channel, chats and policy in place).
    if (left() > 15_000) {
      progress('floor: restarting Wharf on the same data dir');
      const port = p.port;
      const token = p.token;
      await wharf.system.stop();
      wharf = await startWharf(fake, o.runDir, dataDir, port, token);
      restartMs = Math.round(wharf.system.startMs);
      progress(`floor: Wharf healthy again in ${restartMs} ms`);
    }

    const cap = { floor: capacity(steps, 'floor'), wharf: capacity(steps, 'wharf') };
    const at = (sys: 'floor' | 'wharf'): number | null =>
      steps.find((s) => s.system === sys && s.rate === o.cpuRate)?.totalCpuMsPerMsg ?? null;
    const cf = at('floor');
    const cw = at('wharf');
    // Each round's Wharf step against the floor step next to it.
    const roundRatios: number[] = [];
    const ordered: Record<'wharfFirst' | 'floorFirst', number[]> = { wharfFirst: [], floorFirst: [] };
    for (let n = 0; n < cpuRounds; n++) {
      const f = rounds.find((s) => s.system === 'floor' && s.rate === o.cpuRate && s.round === n)?.totalCpuMsPerMsg;
      const w = rounds.find((s) => s.system === 'wharf' && s.rate === o.cpuRate && s.round === n)?.totalCpuMsPerMsg;
      if (!f || !w) continue;
      roundRatios.push(round(w / f, 3));
      ordered[n % 2 ? 'wharfFirst' : 'floorFirst'].push(w / f); // odd rounds run Wharf first
    }
    const ratio = cf && cw ? cw / cf : null;
    const paused = (sys: 'floor' | 'wharf'): number | null =>
      median(leadIns.filter((s) => s.system === sys && s.rate === o.cpuRate).map((s) => s.totalCpuMsPerMsg));
    const pf = paused('floor');
    const pw = paused('wharf');
    const ofOrder = (order: keyof typeof ordered): number | null => {
      const r = median(ordered[order]);
      return r === null ? null : round(r, 3);
    };
    return {
      steps,
      rounds: rounds.length > steps.length ? rounds : [],
      leadIns,
      afterPause: {
        seconds: o.leadInSeconds,
        floorMsPerMsg: pf,
        wharfMsPerMsg: pw,
        ratio: pf && pw ? round(pw / pf, 3) : null,
      },
      capacity: { ...cap, ratio: cap.floor > 0 ? round(cap.wharf / cap.floor, 2) : null },
      cpuAt: {
        rate: o.cpuRate,
        floorMsPerMsg: cf,
        wharfMsPerMsg: cw,
        ratio: ratio === null ? null : round(ratio, 3),
        roundRatios,
        byOrder: { wharfFirst: ofOrder('wharfFirst'), floorFirst: ofOrder('floorFirst') },
      },
      start: { floorMs: Math.round(floor.startMs), wharfFirstMs: Math.round(firstMs), wharfRestartMs: restartMs },
      stopped,
    };
  } finally {
    await floor.stop();
    await wharf?.system.stop();
  }
}
