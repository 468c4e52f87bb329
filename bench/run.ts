/**
 * `npm run bench` (issue #7): measures Wharf as it ships — `node dist/workers/main.js` with the embedded
 * Temporal dev server on a fresh data dir — against the fake Graph API, with real HTTP throughout.
 *
 *   micro     Cedar decision time, formatter MB/s, webhook signature check µs (in this process)
 *   baseline  a bare Express server that only checks the HMAC, driven like Wharf (its own process)
 *   ingest    signed webhooks over 64 chats at increasing offered rates (open loop), then a closed loop:
 *             sustained msgs/s, webhook-ack p50/p99, end-to-end (webhook in → Graph send out) p50/p99
 *   crash     SIGKILL mid-burst, restart on the same data dir: every 200-acked message must be answered
 *   scale     N channels and M chat workflows, then RSS, restart-to-healthy and GET /api/channels latency
 *   flood     strangers' code-shaped texts at a high rate on one channel while a paired sender on another
 *             channel is answered: its latency before / during / after (bench/flood.ts)
 *   sessions  N personal accounts linked against the WhatsApp Web simulator, 1 msg/session/minute: RSS and
 *             CPU per session (bench/sessions.ts; its own product and data dir)
 *   cluster   two nodes on one PostgreSQL and one Temporal: kill -9 of one under load, then a rolling
 *             restart (bench/cluster.ts; own servers; only with --only=cluster)
 *   failover  three nodes, a personal session on the WhatsApp Web simulator and a Cloud channel under load:
 *             SIGKILL of the session's node, then every node restarted one by one (bench/cluster-failover.ts;
 *             own servers; only with --only=failover)
 *   floor     issue #22: the minimal Temporal pipeline (bench/floor/) and Wharf, alternating at a ladder of
 *             offered rates: capacity and CPU per message side by side, first start and restart
 *             (bench/floor.ts; own processes and data dirs)
 *
 * ingest, crash and scale run one after another on the same product and data dir (crash restarts it,
 * scale restarts it again), which saves two cold starts. The whole run keeps to a time budget (--budget,
 * 1,800 s by default): each section gets a share, and every wait is capped by what is left of it.
 *
 * Flags: --quick (CI smoke, small sizes), --only=micro,baseline,ingest,crash,scale, --rates=100,200,500
 * --seconds=10 --channels=1000 --chats=10000 --crash-messages=2000 --crash-rate=300 --sessions=40 --sessions-load=60 --budget=1800
 * --floor-rates=25,50,100 --floor-seconds=20 --floor-rounds=2 (steps per rate and system; medians reported)
 * --floor-warmup=15 (unmeasured seconds at 100 msgs/s per system before the first step; 0 in --quick)
 * --floor-cpu-rounds=4 (rounds at 100 msgs/s, where the CPU goal is decided; at least --floor-rounds)
 * --floor-lead-in=15 (unmeasured seconds at the step's rate before a step that follows the other system's; 0 in --quick)
 * --out=bench/results.json --keep (keep the data dirs). Tables go to stdout, progress to stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { verifySignature } from '../lib/graph/webhook.js';
import { projectRoot } from '../lib/paths.js';
import { startFakeGraph, type FakeGraph } from '../test/fakes/graph-server.js';
import { benchBaseline, type BaselineResult } from './baseline.js';
import { runCluster } from './cluster.js';
import { runClusterFailover } from './cluster-failover.js';
import {
  loadAgent,
  percentile,
  post,
  round,
  runClosedLoop,
  runOpenLoop,
  sleep,
  type LoadOutcome,
  type LoadRequest,
  type StepResult,
} from './load.js';
import { runFlood } from './flood.js';
import { runFloorSection, type FloorResult, type FloorStep } from './floor.js';
import { benchFormatter } from './micro-format.js';
import { benchPolicy, benchPolicyService } from './micro-policy.js';
import { benchStore } from './micro-store.js';
import { runSessionsBench } from './sessions.js';
import {
  DISPLAY_PHONE,
  GRAPH_TOKEN,
  PHONE_NUMBER_ID,
  ReplyTracker,
  benchText,
  childPids,
  configureAndConnect,
  cpuTicks,
  createChannel,
  createSecrets,
  freePort,
  productHeap,
  afterIdleClose,
  productMemory,
  senders,
  signedWebhook,
  startProduct,
  waitIdle,
  type Product,
  type ReadyChannel,
} from './product.js';

// ---- options -------------------------------------------------------------------------------------

const SECTIONS = [
  'micro',
  'baseline',
  'floor',
  'ingest',
  'crash',
  'scale',
  'flood',
  'sessions',
  'cluster',
  'failover',
] as const;
type Section = (typeof SECTIONS)[number];
/** The sections a run without --only runs (cluster starts its own PostgreSQL and nodes: asked for by name). */
const DEFAULT_SECTIONS: Section[] = ['micro', 'baseline', 'floor', 'ingest', 'crash', 'scale', 'flood', 'sessions'];
/**
 * Share of the time budget per section (normalised over the sections that run). A full run's budget is
 * what its sections need to measure every goal: the floor section ~13 minutes (four rates, four rounds at
 * 100 msgs/s, lead-ins), the scale section ~7 (10,000 chats, then their idle close and a quiet minute).
 */
const SHARE: Record<Section, number> = {
  micro: 0.015,
  baseline: 0.025,
  floor: 0.42,
  ingest: 0.09,
  crash: 0.07,
  scale: 0.25,
  flood: 0.05,
  sessions: 0.08,
  cluster: 0.2,
  failover: 0.2,
};

interface Options {
  quick: boolean;
  only: Set<Section>;
  budgetSec: number;
  rates: number[];
  seconds: number;
  chats: number;
  concurrency: number;
  drainMs: number;
  warmup: boolean;
  /** Longest wait for the product to go idle before memory is measured. */
  idleWaitMs: number;
  /** Whether the scale section restarts the product (quick mode keeps the crash section's restart figure). */
  scaleRestart: boolean;
  /** Whether the scale section waits for the chats' idle close and measures memory after it (not in quick mode). */
  scaleIdleClose: boolean;
  crashMessages: number;
  crashRate: number;
  crashWaitMs: number;
  scaleChannels: number;
  scaleChats: number;
  scaleSendChannels: number;
  scaleConcurrency: number;
  out: string;
  keep: boolean;
  /** Personal accounts the sessions section links, and seconds of its traffic phase. */
  sessions: number;
  sessionsLoadSec: number;
  /** An external Temporal frontend (host:port) instead of the embedded dev server. */
  temporal: string | null;
  /** The floor section's offered rates (msgs/s) and seconds per step. */
  floorRates: number[];
  floorSeconds: number;
  /** Steps per rate and system in the floor section (alternating which goes first); medians are reported. */
  floorRounds: number;
  /** Unmeasured seconds of load at 100 msgs/s each system gets before the floor section's first step. */
  floorWarmup: number;
  /** Rounds at 100 msgs/s, where the floor section's CPU goal is decided (at least floorRounds). */
  floorCpuRounds: number;
  /** Unmeasured seconds at the step's rate before a floor-section step that follows the other system's. */
  floorLeadIn: number;
}

function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    flags.set(m[1], m[2] ?? 'true');
  }
  const known = [
    'quick',
    'only',
    'budget',
    'rates',
    'seconds',
    'channels',
    'chats',
    'crash-messages',
    'crash-rate',
    'scale-concurrency',
    'sessions',
    'sessions-load',
    'out',
    'keep',
    'temporal',
    'floor-rates',
    'floor-seconds',
    'floor-rounds',
    'floor-warmup',
    'floor-cpu-rounds',
    'floor-lead-in',
  ];
  for (const k of flags.keys())
    if (!known.includes(k)) throw new Error(`unknown flag --${k} (known: ${known.map((x) => '--' + x).join(' ')})`);
  const quick = flags.get('quick') === 'true';
  const num = (k: string, full: number, q: number): number => {
    const v = flags.get(k);
    if (v === undefined) return quick ? q : full;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} wants a positive number, got ${v}`);
    return n;
  };
  /** Like `num`, where `0` (none) is allowed too. */
  const numOrNone = (k: string, full: number, q: number): number => (flags.get(k) === '0' ? 0 : num(k, full, q));
  const only = new Set<Section>();
  for (const s of (flags.get('only') ?? DEFAULT_SECTIONS.join(','))
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (!(SECTIONS as readonly string[]).includes(s))
      throw new Error(`--only: unknown section ${s} (known: ${SECTIONS.join(', ')})`);
    only.add(s as Section);
  }
  const rates = flags.has('rates')
    ? flags.get('rates')!.split(',').map(Number)
    : quick
      ? [100]
      : [100, 200, 500, 1000, 1500];
  if (
    flags.has('floor-rates') &&
    flags
      .get('floor-rates')!
      .split(',')
      .some((r) => !(Number(r) > 0))
  )
    throw new Error('--floor-rates wants positive numbers, e.g. --floor-rates=25,50,100');
  if (rates.some((r) => !Number.isFinite(r) || r <= 0))
    throw new Error('--rates wants positive numbers, e.g. --rates=100,200,500');
  const scaleChannels = Math.round(num('channels', 1000, 30));
  return {
    quick,
    only,
    budgetSec: num('budget', 1800, 240),
    rates,
    seconds: num('seconds', 10, 2),
    chats: 64,
    concurrency: 64,
    drainMs: quick ? 15_000 : 30_000,
    warmup: true,
    idleWaitMs: quick ? 3_000 : 240_000,
    scaleRestart: !quick,
    scaleIdleClose: !quick,
    crashMessages: Math.round(num('crash-messages', 2000, 200)),
    crashRate: num('crash-rate', 300, 150),
    crashWaitMs: quick ? 30_000 : 120_000,
    scaleChannels,
    scaleChats: Math.round(num('chats', 10_000, 150)),
    scaleSendChannels: Math.min(scaleChannels, quick ? 5 : 20),
    scaleConcurrency: Math.round(num('scale-concurrency', 32, 16)),
    out: resolve(flags.get('out') ?? join(projectRoot, 'bench', 'results.json')),
    keep: flags.get('keep') === 'true',
    sessions: Math.round(num('sessions', 40, 4)),
    sessionsLoadSec: num('sessions-load', 60, 15),
    temporal: flags.get('temporal') ?? null,
    floorRates: flags.has('floor-rates')
      ? flags.get('floor-rates')!.split(',').map(Number)
      : quick
        ? [25]
        : [50, 100, 150, 200],
    floorSeconds: num('floor-seconds', 20, 5),
    floorRounds: Math.max(1, Math.round(num('floor-rounds', 2, 1))),
    floorWarmup: numOrNone('floor-warmup', 15, 0),
    floorCpuRounds: Math.max(1, Math.round(num('floor-cpu-rounds', 4, 1))),
    floorLeadIn: numOrNone('floor-lead-in', 15, 0),
  };
}

// ---- output and time helpers ---------------------------------------------------------------------

const t0 = performance.now();
const progress = (line: string): void => {
  process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
};

function table(title: string, head: string[], rows: (string | number | null)[][]): void {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' || c === null ? fmt(c) : c)))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

function fmt(n: number | null | undefined, d = 1): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (n === Infinity) return '∞';
  if (n !== 0 && Math.abs(n) < 1) return String(Number(n.toPrecision(2)));
  return Math.abs(n) >= 100 ? String(Math.round(n)) : String(round(n, d));
}

/** A JSON-safe number (NaN/Infinity → null). */
const j = (n: number): number | null => (Number.isFinite(n) ? n : null);

interface Goal {
  goal: string;
  target: string;
  value: string;
  /** null: informational, not measured, or inconclusive (see `note`). */
  pass: boolean | null;
  note?: string;
}
const goals: Goal[] = [];
function goal(
  name: string,
  target: string,
  value: number | null | undefined,
  ok: ((v: number) => boolean) | null,
  unit = '',
  inconclusive?: string,
): void {
  const measured = value !== null && value !== undefined && !Number.isNaN(value);
  const pass = measured && ok ? ok(value) : null;
  goals.push({
    goal: name,
    target,
    value: measured ? `${fmt(value)}${unit}` : 'not measured',
    pass: inconclusive && pass === false ? null : pass,
    ...(inconclusive && pass === false ? { note: inconclusive } : {}),
  });
}
const mark = (g: Goal): string =>
  g.note ? `INCONCLUSIVE: ${g.note}` : g.pass === null ? '' : g.pass ? 'PASS' : 'FAIL';

/** Time left until `deadline` (performance.now() based), ms, never negative. */
const left = (deadline: number): number => Math.max(0, deadline - performance.now());

// ---- the product session shared by ingest, crash and scale ---------------------------------------

/** One data dir and port; the product on it is started on first use and replaced by restarts. */
class Session {
  readonly dataDir: string;
  readonly logFile: string;
  private current?: Product;
  private port?: number;
  private token?: string;
  /** The channel ingest and crash send to (permitted by a policy scoped to it). */
  load?: ReadyChannel;
  /** Time the first start took. */
  firstStartMs?: number;

  constructor(
    readonly fake: FakeGraph,
    runDir: string,
    private readonly temporalAddress: string | null = null,
  ) {
    this.dataDir = join(runDir, 'data');
    this.logFile = join(runDir, 'wharf.log');
  }

  async product(): Promise<Product> {
    if (this.current && !this.current.hasExited()) return this.current;
    return this.start();
  }

  /** Starts the product on the session's data dir (same port and admin token every time). */
  async start(timeoutMs?: number): Promise<Product> {
    this.port ??= await freePort();
    const first = !this.current;
    progress(first ? 'starting the product on a fresh data dir' : 'starting the product again on the same data dir');
    this.current = await startProduct({
      graphUrl: this.fake.url,
      dataDir: this.dataDir,
      port: this.port,
      logFile: this.logFile,
      temporalAddress: this.temporalAddress,
      // Chats close after one idle minute (10 by default), so the scale section can measure memory after it.
      env: { WHARF_CHAT_IDLE_MINUTES: '1' },
      ...(this.token ? { adminToken: this.token } : {}),
      ...(timeoutMs ? { timeoutMs } : {}),
    });
    this.token = this.current.token;
    if (first) this.firstStartMs = this.current.startMs;
    progress(`product healthy in ${Math.round(this.current.startMs)} ms (pid ${this.current.pid})`);
    return this.current;
  }

  /** The load channel: created, configured, connected, and let through by a policy on first use. */
  async loadChannel(): Promise<ReadyChannel> {
    if (this.load) return this.load;
    const p = await this.product();
    progress('setting up the load channel and a policy that lets everyone through on it');
    const secrets = await createSecrets(p, 'load');
    const { id } = await createChannel(p, 'bench-load');
    this.load = await configureAndConnect(p, id, secrets);
    // Scoped to this channel, so the scale section's channels keep the default policy (paired senders only).
    const policy = `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${id}");`;
    const r = await p.api('PUT', '/api/policies', { policies: policy });
    if (r.status !== 200) throw new Error(`saving the policy: HTTP ${r.status} ${JSON.stringify(r.data)}`);
    return this.load;
  }

  async stop(): Promise<void> {
    if (this.current && !this.current.hasExited()) await this.current.stop();
  }
}

// ---- micro ---------------------------------------------------------------------------------------

function benchSignature(iterations: number): {
  name: string;
  usPerCheck: number;
  checksPerSec: number;
  payloadBytes: number;
} {
  const secret = 'appsecret-0123456789abcdef';
  // A ~1 KB Meta payload: one text message with a longer body, as real webhooks carry.
  const req = signedWebhook(secret, {
    from: '15552000001',
    text: benchText('sig') + ' ' + 'lorem ipsum dolor sit amet '.repeat(22),
  });
  const header = req.headers!['x-hub-signature-256'];
  const raw = req.body;
  let ok = 0;
  for (let i = 0; i < Math.min(2000, iterations); i++) if (verifySignature(raw, header, secret)) ok++;
  const s = performance.now();
  for (let i = 0; i < iterations; i++) if (verifySignature(raw, header, secret)) ok++;
  const us = ((performance.now() - s) * 1000) / iterations;
  if (ok < iterations) throw new Error('verifySignature rejected a correctly signed payload');
  return {
    name: 'webhook.verifySignature',
    usPerCheck: round(us, 2),
    checksPerSec: Math.round(1e6 / us),
    payloadBytes: raw.length,
  };
}

async function runMicro(o: Options): Promise<Json> {
  progress('micro: formatter');
  const format = benchFormatter({ seconds: o.quick ? 0.5 : 2 });
  progress('micro: Cedar policy decisions');
  const policy = benchPolicy({ iterations: o.quick ? 1_000 : 20_000 });
  const policyCached = await benchPolicyService({ iterations: o.quick ? 5_000 : 50_000 });
  progress('micro: signature check');
  const signature = benchSignature(o.quick ? 20_000 : 200_000);
  progress('micro: the store’s hot statements (PGlite; SQLite when better-sqlite3 is installed)');
  const store = await benchStore({ messages: o.quick ? 300 : 2000 });
  table(
    'Micro (in the benchmark process)',
    ['benchmark', 'figure', 'unit', 'also'],
    [
      [
        policy.name,
        policy.usPerDecision,
        'µs/decision',
        `${policy.decisionsPerSec}/s; naive parse-every-call ${fmt(policy.naiveUsPerDecision)} µs`,
      ],
      [
        policyCached.name,
        policyCached.usPerDecision,
        'µs/decision',
        `${policyCached.decisionsPerSec}/s; what each message costs once a sender was seen`,
      ],
      [format.name, format.mbPerSec, 'MB/s', `${fmt(format.docsPerSec)} docs/s of ${format.docBytes} B`],
      [signature.name, signature.usPerCheck, 'µs/check', `${signature.checksPerSec}/s on ${signature.payloadBytes} B`],
    ],
  );
  table(
    'Micro: the store, one echo message’s statements one at a time (p50 µs per statement over the last quarter of the messages; CPU µs per message over all)',
    ['engine', 'select 1', ...Object.keys(store.results[0]?.statementsUsLastQuarter ?? {}), 'CPU µs/msg', 'msgs/s'],
    store.results.map((r) => [
      r.engine,
      r.select1Us,
      ...Object.values(r.statementsUsLastQuarter),
      r.cpuUsPerMessage,
      r.messagesPerSec,
    ]),
  );
  for (const s of store.skipped) console.log(`store micro-benchmark: ${s}`);
  return { policy, policyCached, format, signature, store };
}

// ---- ingest --------------------------------------------------------------------------------------

interface IngestStep extends StepResult {
  label: string;
  answered: number;
  unanswered: number;
  e2eP50: number | null;
  e2eP99: number | null;
  drainMs: number;
  cpu: { wharfPct: number; temporalPct: number; benchPct: number };
}

/** CPU use of the product (node process, then its children) and of this process over a step, % of one core. */
function cpuMeter(pid: number): () => { wharfPct: number; temporalPct: number; benchPct: number } {
  const kids = (): number => childPids(pid).reduce((a, c) => a + cpuTicks(c), 0);
  const w0 = cpuTicks(pid);
  const k0 = kids();
  const b0 = process.cpuUsage();
  const s = performance.now();
  return () => {
    const sec = (performance.now() - s) / 1000;
    const b = process.cpuUsage(b0);
    return {
      wharfPct: Math.round(((cpuTicks(pid) - w0) / 100 / sec) * 100),
      temporalPct: Math.round(((kids() - k0) / 100 / sec) * 100),
      benchPct: Math.round(((b.user + b.system) / 1e6 / sec) * 100),
    };
  };
}

type Loader = (
  makeRequest: (i: number) => LoadRequest,
  onOutcome: (i: number, out: LoadOutcome) => void,
) => Promise<StepResult>;

/** One load step on the load channel, then waits (≤ drainMs) for the echo replies of every acked message. */
async function runIngestStep(
  p: Product,
  ch: ReadyChannel,
  tracker: ReplyTracker,
  chats: string[],
  label: string,
  tokenPrefix: string,
  drainMs: number,
  load: Loader,
): Promise<IngestStep> {
  const tokens: string[] = [];
  const acked: string[] = [];
  const makeRequest = (i: number): LoadRequest => {
    const token = `${tokenPrefix}n${i}`;
    tokens[i] = token;
    return signedWebhook(ch.appSecret, { from: chats[i % chats.length], text: benchText(token) });
  };
  const onOutcome = (i: number, out: LoadOutcome): void => {
    tracker.sent(tokens[i], out.sentAt);
    if (out.status === 200) acked.push(tokens[i]);
  };
  const cpu = cpuMeter(p.pid);
  const r = await load(makeRequest, onOutcome);
  const usage = cpu();
  const d0 = performance.now();
  const unanswered = await tracker.waitAll(acked, drainMs, (m) => progress(`  ${label}: waiting for ${m} replies`));
  const e2e = tracker.e2e(acked);
  // Messages still unanswered count as slower than anything measured.
  for (let i = 0; i < unanswered; i++) e2e.push(Infinity);
  const step: IngestStep = {
    label,
    ...r,
    answered: acked.length - unanswered,
    unanswered,
    e2eP50: j(round(percentile(e2e, 0.5), 1)),
    e2eP99: j(round(percentile(e2e, 0.99), 1)),
    drainMs: Math.round(performance.now() - d0),
    cpu: usage,
  };
  progress(
    `  ${label}: sent ${r.sent}, 200 ${r.ok}, sustained ${fmt(r.sustained)}/s, ack p50/p99 ${fmt(r.ackP50)}/${fmt(r.ackP99)} ms, e2e p50/p99 ${fmt(step.e2eP50)}/${fmt(step.e2eP99)} ms, unanswered ${unanswered}, cpu wharf/temporal/bench ${usage.wharfPct}/${usage.temporalPct}/${usage.benchPct}%${r.aborted ? `, ABORTED: ${r.abortReason}` : ''}`,
  );
  return step;
}

const errorsText = (s: StepResult): string => {
  const parts = [
    ...Object.entries(s.statuses).map(([k, v]) => `${v}×${k}`),
    ...Object.entries(s.failures).map(([k, v]) => `${v}×${k}`),
  ];
  return parts.length ? parts.join(' ') : '0';
};
/** A step counts towards "sustained" when it ran to the end with at most 1 % errors. */
const clean = (s: StepResult): boolean => !s.aborted && s.errors <= s.sent * 0.01;

async function runIngest(o: Options, session: Session, deadline: number): Promise<Json> {
  const p = await session.product();
  const ch = await session.loadChannel();
  const chats = senders(o.chats);
  const tracker = new ReplyTracker(session.fake);
  const stepCost = o.seconds * 1000 + 5_000;
  const drain = (reserve: number): number => Math.max(5_000, Math.min(o.drainMs, left(deadline) - reserve));

  let warmup: IngestStep | null = null;
  if (o.warmup) {
    // One message per chat starts the 64 chat workflows and warms the JIT; not part of the figures.
    progress(`ingest: warm-up (one message per chat, ${o.quick ? 64 : 32}/s)`);
    warmup = await runIngestStep(p, ch, tracker, chats, 'warm-up', 'w', drain(2 * stepCost), (mk, on) =>
      runOpenLoop({
        url: ch.webhookUrl,
        rate: o.quick ? 64 : 32,
        seconds: o.chats / (o.quick ? 64 : 32),
        makeRequest: mk,
        onOutcome: on,
      }),
    );
  }

  const steps: IngestStep[] = [];
  let rampStopped: string | undefined;
  for (const [k, rate] of o.rates.entries()) {
    // Keep room for this step, its drain and the closed-loop step after the ramp.
    if (left(deadline) < 2 * stepCost + 10_000) {
      rampStopped = `stopped before ${rate}/s: out of the section's time budget`;
      break;
    }
    progress(`ingest: open loop at ${rate} msgs/s for ${o.seconds} s`);
    const step = await runIngestStep(p, ch, tracker, chats, `${rate}/s`, `s${k}`, drain(stepCost + 5_000), (mk, on) =>
      runOpenLoop({ url: ch.webhookUrl, rate, seconds: o.seconds, makeRequest: mk, onOutcome: on }),
    );
    steps.push(step);
    if (step.aborted || step.sustained < rate * 0.5) {
      rampStopped = step.aborted
        ? `stopped at ${rate}/s: ${step.abortReason}`
        : `stopped at ${rate}/s: sustained ${fmt(step.sustained)}/s is under half the offered rate`;
      progress(`ingest: ramp ${rampStopped}`);
      break;
    }
  }
  progress(`ingest: closed loop, ${o.concurrency} webhooks in flight, ${o.seconds} s`);
  const closed = await runIngestStep(p, ch, tracker, chats, `closed ×${o.concurrency}`, 'c', drain(0), (mk, on) =>
    runClosedLoop({
      url: ch.webhookUrl,
      concurrency: o.concurrency,
      seconds: o.seconds,
      makeRequest: mk,
      onOutcome: on,
    }),
  );
  const memory = productMemory(p.pid);

  const all = [...steps, closed];
  table(
    'Ingest (one channel, 64 chats, echo agent, one message per webhook)',
    [
      'rate',
      'offered/s',
      'sent',
      'sustained/s',
      'ack p50',
      'ack p99',
      'e2e p50',
      'e2e p99',
      'unanswered',
      'errors',
      'gen lag p99',
      'cpu % wharf/temporal/bench',
    ],
    all.map((s) => [
      s.label,
      s.offeredRate ?? '—',
      s.sent,
      s.sustained,
      s.ackP50,
      s.ackP99,
      s.e2eP50 ?? `>${Math.round(s.drainMs / 1000)} s`,
      s.e2eP99 ?? `>${Math.round(s.drainMs / 1000)} s`,
      s.unanswered,
      errorsText(s) + (s.aborted ? ' (aborted)' : ''),
      s.genLagP99,
      `${s.cpu.wharfPct}/${s.cpu.temporalPct}/${s.cpu.benchPct}`,
    ]),
  );
  console.log(
    'latencies in ms. ack: webhook POST → its 200, counted from the scheduled send time. e2e: webhook sent → echo reply at the Graph API.',
  );
  console.log(
    'unanswered: acked messages without a reply when the step’s drain wait ended. cpu: % of one core (this machine has ' +
      cpus().length +
      ').',
  );
  if (rampStopped) console.log(`ramp ${rampStopped}`);

  const cleanSteps = all.filter(clean);
  const maxSustained = cleanSteps.length ? Math.max(...cleanSteps.map((s) => s.sustained)) : 0;
  const at = (rate: number): IngestStep | null => steps.find((s) => s.offeredRate === rate) ?? null;
  return {
    channel: ch.id,
    warmup,
    steps,
    closed,
    rampStopped: rampStopped ?? null,
    maxSustained,
    memoryAfter: memory,
    at500: at(500),
    at200: at(200),
  };
}

// ---- crash ---------------------------------------------------------------------------------------

async function runCrash(o: Options, session: Session, deadline: number): Promise<Json> {
  const p1 = await session.product();
  const ch = await session.loadChannel();
  const chats = senders(o.chats, 10_000);
  const tracker = new ReplyTracker(session.fake);
  const n = o.crashMessages;
  const killAt = Math.floor(n / 2);
  // The kill must catch acked-but-unanswered messages: wait past the halfway mark until a quarter of
  // what was sent has been acked (a slow product acks late); if that never happens, kill right after the burst.
  const minAcked = Math.ceil(killAt / 4);
  let killedAfterBurst = false;
  const reqs: LoadRequest[] = [];
  const tokens: string[] = [];
  const acked = new Set<string>();
  let killedAt = 0;
  progress(
    `crash: burst of ${n} messages at ${o.crashRate}/s over ${o.chats} chats; SIGKILL of the process group from message ${killAt} on, once ${minAcked} are acked (at the end of the burst at the latest)`,
  );
  const kill = (): void => {
    if (killedAt) return;
    p1.killNow();
    killedAt = Date.now();
  };
  // At the end of the burst's schedule at the latest, not after its last answer (a slow product answers late).
  const fallback = setTimeout(
    () => {
      killedAfterBurst = !killedAt;
      kill();
    },
    (n / o.crashRate) * 1000 + 50,
  );
  const burst = await runOpenLoop({
    url: ch.webhookUrl,
    rate: o.crashRate,
    seconds: n / o.crashRate,
    maxErrorRatio: 1,
    makeRequest: (i) => {
      tokens[i] = `k${i}`;
      reqs[i] = signedWebhook(ch.appSecret, { from: chats[i % chats.length], text: benchText(tokens[i]) });
      return reqs[i];
    },
    onOutcome: (i, out) => {
      tracker.sent(tokens[i], out.sentAt);
      if (out.status === 200) acked.add(tokens[i]);
    },
    beforeSend: (i) => {
      if (!killedAt && (i < killAt || acked.size < minAcked)) return false;
      kill();
      return true;
    },
  });
  clearTimeout(fallback);
  await p1.exited;
  tracker.poll();
  const answeredBeforeKill = tokens.filter((t) => tracker.replies.has(t)).length;
  progress(
    `crash: killed${killedAfterBurst ? ' at the end of the burst' : ''}: ${burst.sent} sent, ${acked.size} acked, ${answeredBeforeKill} answered`,
  );

  const p2 = await session.start();

  // Meta redelivers what it did not get a 200 for; so does the benchmark (same body, same message id),
  // for at most 30 s.
  const unacked = tokens.map((t, i) => ({ t, i })).filter(({ t }) => !acked.has(t));
  const agent = loadAgent(16);
  const redelivered: string[] = [];
  let redeliveredOk = 0;
  const redeliverEnd = performance.now() + 30_000;
  for (let k = 0; k < unacked.length && performance.now() < redeliverEnd; k += 16) {
    const batch = unacked.slice(k, k + 16);
    const outs = await Promise.all(batch.map(({ i }) => post(new URL(ch.webhookUrl), reqs[i], agent, 10_000)));
    batch.forEach(({ t }) => redelivered.push(t));
    redeliveredOk += outs.filter((x) => x.status === 200).length;
  }
  agent.destroy();
  progress(`crash: redelivered ${redelivered.length} of ${unacked.length} unacked webhooks (${redeliveredOk} acked)`);

  const waitMs = Math.max(20_000, Math.min(o.crashWaitMs, left(deadline) - 5_000));
  const expect = [...acked, ...redelivered];
  progress(
    `crash: waiting up to ${Math.round(waitMs / 1000)} s for replies to ${acked.size} acked + ${redelivered.length} redelivered messages`,
  );
  const w0 = performance.now();
  const missingAtEnd = await tracker.waitAll(expect, waitMs, (m) => progress(`  crash: ${m} replies missing`));
  const waitedMs = performance.now() - w0;
  await sleep(5000); // late duplicates, and: are replies still coming in?
  tracker.poll();
  const stillArriving = missingAtEnd > 0 && tracker.missing(expect) < missingAtEnd;
  if (stillArriving)
    progress(
      `crash: replies were still arriving when the wait ended (${missingAtEnd} missing, then ${tracker.missing(expect)} 5 s later): "lost" is an upper bound`,
    );
  const lost = [...acked].filter((t) => !tracker.replies.has(t));
  const lostRedelivered = redelivered.filter((t) => !tracker.replies.has(t));
  let duplicates = 0;
  let duplicated = 0;
  let answered = 0;
  // When each copy of a repeated reply reached Meta, in ms relative to the kill: a first copy just before
  // the kill is the window nobody can close; one well before it would be a bug.
  const duplicateTimes: number[][] = [];
  for (const t of tokens) {
    const r = tracker.replies.get(t);
    if (!r) continue;
    answered++;
    if (r.length > 1) {
      duplicates += r.length - 1;
      duplicated++;
      duplicateTimes.push(r.map((at) => at - killedAt));
    }
  }
  const res = {
    channel: ch.id,
    messagesPlanned: n,
    rate: o.crashRate,
    sentBeforeKill: burst.sent,
    ackedBeforeKill: acked.size,
    notAckedBeforeKill: burst.sent - acked.size,
    answeredBeforeKill,
    killedAt: new Date(killedAt).toISOString(),
    killedAfterBurst,
    restartToHealthyMs: Math.round(p2.startMs),
    redelivered: redelivered.length,
    redeliveredAcked: redeliveredOk,
    notRedelivered: unacked.length - redelivered.length,
    waitedMs: Math.round(waitedMs),
    answered,
    lost: lost.length,
    lostTokens: lost.slice(0, 20),
    stillArriving,
    lostRedelivered: lostRedelivered.length,
    duplicates,
    duplicatedMessages: duplicated,
    duplicateSendsMsFromKill: duplicateTimes.slice(0, 20),
    duplicatePct: answered ? round((duplicates / answered) * 100, 3) : null,
  };
  table(
    'Crash (SIGKILL of Wharf and its Temporal dev server mid-burst, restart on the same data dir)',
    [
      'sent',
      'acked',
      'not acked',
      'answered pre-kill',
      'restart ms',
      'redelivered',
      'answered',
      'lost (acked)',
      'lost (redelivered)',
      'duplicates',
      'dup %',
    ],
    [
      [
        res.sentBeforeKill,
        res.ackedBeforeKill,
        res.notAckedBeforeKill,
        res.answeredBeforeKill,
        res.restartToHealthyMs,
        `${res.redelivered} (${res.redeliveredAcked} acked)`,
        res.answered,
        res.lost,
        res.lostRedelivered,
        res.duplicates,
        res.duplicatePct,
      ],
    ],
  );
  console.log(
    'lost (acked): got a 200 before the kill and was never answered — must be 0. Unacked webhooks are redelivered as Meta would.',
  );
  if (killedAfterBurst)
    console.log('the kill came at the end of the burst: too few messages had been acked by its halfway point.');
  if (stillArriving)
    console.log(
      `replies were still arriving when the ${Math.round(waitMs / 1000)} s wait ended, so "lost" counts messages not answered yet: an upper bound.`,
    );
  return res;
}

// ---- scale ---------------------------------------------------------------------------------------

/** Runs `fn(0..count-1)`, `concurrency` at a time, starting no new call after `deadline` (performance.now()). */
async function parallel<T>(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<T>,
  deadline = Infinity,
): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count && performance.now() < deadline) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out.filter((x) => x !== undefined);
}

/** Sequential GET /api/channels: at most `n` requests, stopping after `maxMs` (at least 2). */
async function listLatency(
  p: Product,
  n: number,
  maxMs: number,
): Promise<{ p50: number; p99: number; max: number; requests: number; channels: number; bytes: number }> {
  const ms: number[] = [];
  let channels = 0;
  let bytes = 0;
  const s0 = performance.now();
  for (let i = 0; i < n && (i < 2 || performance.now() - s0 < maxMs); i++) {
    const s = performance.now();
    const r = await fetch(`${p.base}/api/channels`, {
      headers: { authorization: `Bearer ${p.token}` },
      signal: AbortSignal.timeout(60_000),
    });
    const text = await r.text();
    ms.push(performance.now() - s);
    if (r.status !== 200) throw new Error(`GET /api/channels: HTTP ${r.status} ${text.slice(0, 300)}`);
    channels = (JSON.parse(text) as unknown[]).length;
    bytes = text.length;
  }
  return {
    p50: round(percentile(ms, 0.5), 1),
    p99: round(percentile(ms, 0.99), 1),
    max: round(Math.max(...ms), 1),
    requests: ms.length,
    channels,
    bytes,
  };
}

/** The scale section's senders: numbers with this prefix (no other section uses it). */
const SCALE_PREFIX = '1556';

/**
 * How many of the `acked` scale messages are not answered yet. Each scale sender writes once and gets one
 * echo reply, so the fake Graph API's sends to scale senders count what was processed (the message log shows
 * at most 500 entries a channel: fewer than a scale channel's messages and replies).
 */
function unanswered(fake: FakeGraph, acked: number): number {
  const answered = new Set<string>();
  for (const r of fake.sent) if (r.to.replace(/^\+/, '').startsWith(SCALE_PREFIX)) answered.add(r.to);
  return Math.max(0, acked - answered.size);
}

/**
 * Waits (at most `maxMs`) until every acknowledged scale message has been processed and the product's
 * processes then went quiet. Most new chats' first workflow tasks are still queued in Temporal when the last
 * webhook is acknowledged, and CPU alone is no guide to when they are done (Temporal hands out a backlog
 * in bursts), so the answers decide. The wait also ends when no further message was answered for
 * `STALL_MS` (something is stuck: waiting longer measures nothing).
 */
const STALL_MS = 90_000;

async function settle(
  p: Product,
  fake: FakeGraph,
  acked: number,
  maxMs: number,
): Promise<{ idle: boolean; waitedMs: number; drainMs: number; unprocessed: number }> {
  const d0 = performance.now();
  const by = d0 + maxMs;
  let waiting = unanswered(fake, acked);
  let told = d0;
  let movedAt = d0;
  while (waiting > 0 && performance.now() < by && performance.now() - movedAt < STALL_MS) {
    await sleep(5000); // (the count is the fake Graph API's: it costs the product nothing)
    const now = unanswered(fake, acked);
    if (now < waiting) movedAt = performance.now();
    waiting = now;
    if (performance.now() - told >= 10_000) {
      told = performance.now();
      progress(`  scale: ${waiting} messages not answered yet after ${Math.round((told - d0) / 1000)} s`);
    }
  }
  const drainMs = performance.now() - d0;
  const quiet =
    waiting === 0
      ? await waitIdle(p.pid, { maxWaitMs: Math.max(2_000, Math.min(30_000, by - performance.now())) })
      : { idle: false, waitedMs: 0 };
  const idle = waiting === 0 && quiet.idle;
  progress(
    `scale: ${waiting === 0 ? `every message processed after ${Math.round(drainMs / 1000)} s` : `${waiting} messages still unprocessed when the wait ended`}; ${idle ? 'idle' : 'still busy'}`,
  );
  return { idle, waitedMs: Math.round(drainMs + quiet.waitedMs), drainMs: Math.round(drainMs), unprocessed: waiting };
}

async function runScale(o: Options, session: Session, deadline: number): Promise<Json> {
  let p = await session.product();
  const before = productMemory(p.pid);
  const secrets = await createSecrets(p, 'scale');
  // Keep ~60 s for idling, measuring and the restart; channel creation may use 40 % of the rest.
  const reserve = 60_000;
  const createEnd = performance.now() + Math.max(15_000, (left(deadline) - reserve) * 0.4);
  const c0 = performance.now();
  const createMs: number[] = [];
  const create = async (i: number): Promise<string> => {
    const r = await createChannel(p, `bench-scale-${i}`);
    createMs.push(r.ms);
    if (createMs.length % 100 === 0) progress(`  scale: ${createMs.length} channels`);
    return r.id;
  };
  // The channels that get traffic first: configured and connected before the product has 1,000 others.
  const sendCount = Math.min(o.scaleSendChannels, o.scaleChannels);
  progress(`scale: creating, configuring and connecting ${sendCount} channels`);
  const connectErrors: string[] = [];
  const ready = (
    await parallel(sendCount, 4, async (i) => {
      try {
        return await configureAndConnect(p, await create(i), secrets);
      } catch (err) {
        connectErrors.push(err instanceof Error ? err.message : String(err));
        return null;
      }
    })
  ).filter((c): c is ReadyChannel => c !== null);
  if (connectErrors.length)
    progress(`scale: ${connectErrors.length} channels could not be set up, e.g. ${connectErrors[0]}`);
  if (!ready.length) throw new Error(`no scale channel could be set up: ${connectErrors[0] ?? 'unknown error'}`);
  progress(
    `scale: creating the other ${o.scaleChannels - sendCount} channels, 8 at a time, for at most ${Math.round(left(createEnd) / 1000)} s`,
  );
  await parallel(o.scaleChannels - sendCount, 8, (i) => create(sendCount + i), createEnd);
  const createSec = (performance.now() - c0) / 1000;
  const channelsCreated = createMs.length;
  progress(`scale: ${channelsCreated} channels in ${round(createSec)} s`);

  // Distinct senders spread over the connected channels, each starting a chat workflow of its own: a policy
  // lets everyone through on these channels (the default would turn the strangers away at the webhook, with
  // no workflow at all: api/stranger-screen.ts), and each message is answered by the echo agent.
  const current = await p.api<{ policies: string }>('GET', '/api/policies');
  const permits = ready
    .map(
      (c) => `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${c.id}");`,
    )
    .join('\n');
  const saved = await p.api('PUT', '/api/policies', { policies: `${current.data.policies}\n${permits}` });
  if (saved.status !== 200)
    throw new Error(`saving the scale policy: HTTP ${saved.status} ${JSON.stringify(saved.data)}`);
  const chatSec = Math.max(10, (left(deadline) - reserve) / 1000);
  progress(
    `scale: ${o.scaleChats} webhooks from distinct senders, ${o.scaleConcurrency} in flight, for at most ${Math.round(chatSec)} s (one new chat workflow each)`,
  );
  const from = senders(o.scaleChats, 100_000, SCALE_PREFIX);
  const webhookPath = (url: string): string => new URL(url).pathname;
  let acked = 0;
  const chatsLoad = await runClosedLoop({
    url: ready[0].webhookUrl,
    concurrency: o.scaleConcurrency,
    seconds: chatSec,
    maxRequests: o.scaleChats,
    makeRequest: (i) => {
      const ch = ready[i % ready.length];
      return {
        ...signedWebhook(ch.appSecret, { from: from[i], text: `hello ${i}` }),
        path: webhookPath(ch.webhookUrl),
      };
    },
    onOutcome: (_i, out) => {
      if (out.status === 200 && ++acked % 1000 === 0) progress(`  scale: ${acked} chat webhooks acked`);
    },
  });
  progress(
    `scale: ${acked} chat webhooks acked (errors: ${errorsText(chatsLoad)}); waiting for the product to go idle`,
  );
  // Memory is measured once the new chats are processed (see settle), keeping ~45 s for the restart.
  const atLastAck = productMemory(p.pid);
  // The drain may take what the budget leaves after the idle close (up to 4 min) and the restart (45 s): a
  // new chat costs Temporal more than a message to a running one, so 10,000 of them are still being answered
  // minutes after the last acknowledgement (settle stops early when answers stall).
  const drainCap = o.quick ? o.idleWaitMs : left(deadline) - 45_000 - (o.scaleIdleClose ? 240_000 : 0);
  const idle = await settle(p, session.fake, acked, Math.max(10_000, drainCap));
  const mem = productMemory(p.pid);
  const heap = await productHeap(p);
  const list = await listLatency(p, 20, 10_000);
  progress(
    `scale: RSS wharf ${fmt(mem.wharfRssMb)} MB (V8 heap ${heap?.heapTotalMb ?? '?'} MB, ${heap?.heapUsedMb ?? '?'} MB used; outside it ${heap?.externalMb ?? '?'} MB), temporal ${fmt(mem.temporalRssMb)} MB; GET /api/channels p50 ${list.p50} ms`,
  );

  // The chats' idle close (the bench's product runs with WHARF_CHAT_IDLE_MINUTES=1; 10 by default): once no
  // chat workflow runs and memory has settled, the idle figure the goal is about. (The product is rarely quiet
  // before: the first chats already close while the last are answered.)
  let closed: Awaited<ReturnType<typeof afterIdleClose>> | null = null;
  let closedHeap: Awaited<ReturnType<typeof productHeap>> = null;
  if (o.scaleIdleClose && idle.unprocessed === 0) {
    progress('scale: waiting for the chats to close after their idle minute, then for memory to settle');
    closed = await afterIdleClose(p, Math.max(30_000, Math.min(360_000, left(deadline) - 45_000)));
    closedHeap = await productHeap(p);
    const w = closed.lastMinuteMb;
    progress(
      `scale: ${closed.closed ? `no chat workflow running after ${Math.round(closed.closedAfterMs / 1000)} s` : 'chats still running when the wait ended'}; RSS wharf ${fmt(w.median)} MB (median of the last minute, ${fmt(w.min)}–${fmt(w.max)}; V8 heap ${closedHeap?.heapTotalMb ?? '?'} MB), temporal ${fmt(closed.mem.temporalRssMb)} MB after ${Math.round(closed.settledAfterMs / 1000)} s`,
    );
  }

  // Restart with all that state (quick mode leaves it out: the crash section measured a restart already).
  let after: {
    stopMs: number;
    restartMs: number;
    list: Awaited<ReturnType<typeof listLatency>>;
    idle: boolean;
    mem: ReturnType<typeof productMemory>;
  } | null = null;
  if (o.scaleRestart) {
    const stopMs = await p.stop();
    p = await session.start(300_000);
    const restartMs = p.startMs;
    const listAfter = await listLatency(p, 10, 5_000);
    progress('scale: after the restart:');
    const idleAfter = await settle(
      p,
      session.fake,
      acked,
      Math.max(5_000, Math.min(o.idleWaitMs, left(deadline) - 5_000)),
    );
    after = { stopMs, restartMs, list: listAfter, idle: idleAfter.idle, mem: productMemory(p.pid) };
  }
  const complete = channelsCreated === o.scaleChannels && acked === o.scaleChats;

  const res = {
    channelsWanted: o.scaleChannels,
    channelsCreated,
    chatWorkflowsWanted: o.scaleChats,
    chatWorkflowsCreated: acked,
    complete,
    channelsListed: list.channels,
    channelCreate: {
      totalSec: round(createSec, 1),
      perSec: round(channelsCreated / createSec, 1),
      p50Ms: round(percentile(createMs, 0.5), 1),
      p99Ms: round(percentile(createMs, 0.99), 1),
    },
    connectedChannels: ready.length,
    connectErrors: connectErrors.slice(0, 5),
    chatWebhooks: chatsLoad,
    idleBeforeMeasuring: idle,
    rssBeforeMb: { wharf: round(before.wharfRssMb), temporal: round(before.temporalRssMb) },
    rssAtLastAckMb: { wharf: round(atLastAck.wharfRssMb), temporal: round(atLastAck.temporalRssMb) },
    rssIdleMb: {
      wharf: round(mem.wharfRssMb),
      temporal: round(mem.temporalRssMb),
      total: round(mem.wharfRssMb + mem.temporalRssMb),
    },
    // Where Wharf's idle RSS is (its /metrics): the V8 heap and memory outside it.
    heapIdleMb: heap,
    // After every chat workflow completed (idle close) and memory settled: the median of the last minute.
    rssAfterIdleCloseMb: closed
      ? {
          wharf: round(closed.lastMinuteMb.median),
          lastMinute: {
            min: round(closed.lastMinuteMb.min),
            max: round(closed.lastMinuteMb.max),
            readings: closed.lastMinuteMb.readings,
          },
          heap: closedHeap,
          temporal: round(closed.mem.temporalRssMb),
          allClosed: closed.closed,
          closedAfterSec: round(closed.closedAfterMs / 1000),
          settledAfterSec: round(closed.settledAfterMs / 1000),
        }
      : null,
    listChannelsMs: list,
    gracefulStopMs: after ? Math.round(after.stopMs) : null,
    restartToHealthyMs: after ? Math.round(after.restartMs) : null,
    listChannelsAfterRestartMs: after?.list ?? null,
    rssAfterRestartMb: after
      ? { wharf: round(after.mem.wharfRssMb), temporal: round(after.mem.temporalRssMb), idle: after.idle }
      : null,
  };
  table(
    `Scale of idle state (${channelsCreated} of ${o.scaleChannels} channels, ${acked} of ${o.scaleChats} chat workflows${complete ? '' : ' — INCOMPLETE: the time budget ran out first'})`,
    ['figure', 'value'],
    [
      [
        'channel create p50 / p99 (ms), rate',
        `${fmt(res.channelCreate.p50Ms)} / ${fmt(res.channelCreate.p99Ms)}, ${fmt(res.channelCreate.perSec)}/s (incl. setting up ${ready.length} with traffic)`,
      ],
      [
        'chat webhooks acked / errors, rate',
        `${acked} / ${errorsText(chatsLoad)}, ${fmt(chatsLoad.sustained)}/s at ${o.scaleConcurrency} in flight`,
      ],
      ['RSS before: wharf / temporal (MB)', `${fmt(before.wharfRssMb)} / ${fmt(before.temporalRssMb)}`],
      ['RSS at the last ack: wharf / temporal (MB)', `${fmt(atLastAck.wharfRssMb)} / ${fmt(atLastAck.temporalRssMb)}`],
      [
        'RSS idle: wharf / temporal (MB)',
        `${fmt(mem.wharfRssMb)} / ${fmt(mem.temporalRssMb)}${idle.idle ? '' : ' (still busy when measured)'}`,
      ],
      [
        'GET /api/channels p50 / p99 (ms)',
        `${fmt(list.p50)} / ${fmt(list.p99)} (${list.requests} requests, ${list.channels} channels, ${Math.round(list.bytes / 1024)} KB)`,
      ],
      ...(after
        ? [
            ['graceful stop (ms)', Math.round(after.stopMs)],
            ['restart to healthy (ms)', Math.round(after.restartMs)],
            ['GET /api/channels after restart p50 (ms)', fmt(after.list.p50)],
            [
              'RSS after restart: wharf / temporal (MB)',
              `${fmt(after.mem.wharfRssMb)} / ${fmt(after.mem.temporalRssMb)}`,
            ],
          ]
        : [['restart', 'not measured here (quick mode): see the crash section']]),
    ],
  );
  return res;
}

// ---- floor ---------------------------------------------------------------------------------------

function printFloor(r: FloorResult): void {
  const row = (s: FloorStep): Array<string | number | null> => [
    s.system,
    s.rate,
    s.ackRate,
    s.ackP50,
    s.ackP99,
    s.e2eP50,
    s.e2eP99,
    s.answeredIn10sPct,
    `${s.appCpuPct}/${s.temporalCpuPct}`,
    `${fmt(s.appCpuMsPerMsg, 2)}/${fmt(s.temporalCpuMsPerMsg, 2)}/${fmt(s.totalCpuMsPerMsg, 2)}`,
    s.withinBound ? 'in' : 'out',
  ];
  const columns = [
    'system',
    'rate/s',
    'acks/s',
    'ack p50',
    'ack p99',
    'e2e p50',
    'e2e p99',
    'in 10 s %',
    'cpu % app/temporal',
    'cpu ms/msg app/temporal/total',
    'bound',
  ];
  const rounds = r.rounds.length ? Math.max(...r.rounds.map((s) => s.round)) + 1 : 1;
  if (rounds > 1)
    table(
      'Floor vs Wharf, every step (64 chats, echo, open loop; odd rounds run Wharf first)',
      ['round', ...columns],
      r.rounds.map((s) => [s.round + 1, ...row(s)]),
    );
  table(
    rounds > 1
      ? `Floor vs Wharf (64 chats, echo, open loop; each figure the median of ${rounds} rounds)`
      : 'Floor vs Wharf (64 chats, echo, open loop; floor step then Wharf step at each rate)',
    columns,
    r.steps.map(row),
  );
  console.log(
    'bound: acks ≥ 95 % of the offered rate, e2e p99 < 1 s, ≥ 99 % answered within 10 s of the end of the load. cpu %: over the load, of one core; ms/msg: over the load and its drain.',
  );
  const pause = r.afterPause.seconds
    ? `each step that follows the other system's has ${r.afterPause.seconds} s of lead-in before it`
    : "no lead-ins: a step that follows the other system's is measured after a pause";
  if (r.cpuAt.roundRatios.length > 1)
    console.log(
      `CPU per message at ${r.cpuAt.rate}/s, Wharf/floor by round: ${r.cpuAt.roundRatios.map((x) => `×${fmt(x, 3)}`).join(', ')}; median of the rounds with Wharf first ×${fmt(r.cpuAt.byOrder.wharfFirst, 3)}, with the floor first ×${fmt(r.cpuAt.byOrder.floorFirst, 3)} (${pause}); the goal compares the medians: ×${fmt(r.cpuAt.ratio, 3)}`,
    );
  if (r.afterPause.wharfMsPerMsg !== null || r.afterPause.floorMsPerMsg !== null)
    console.log(
      `after a pause (the lead-ins at ${r.cpuAt.rate}/s, the first ${r.afterPause.seconds} s after ~30 s idle, medians): Wharf ${fmt(r.afterPause.wharfMsPerMsg, 2)} vs floor ${fmt(r.afterPause.floorMsPerMsg, 2)} ms/msg (×${fmt(r.afterPause.ratio, 3)})`,
    );
  for (const line of r.stopped) console.log(line);
}

/** The issue #22 goals table (floor vs Wharf, start-up, idle memory). */
function floorGoals(floor: FloorResult | undefined, scale: Json | undefined): Goal[] {
  const rows: Goal[] = [];
  const add = (name: string, target: string, value: string, pass: boolean | null, note?: string): void => {
    rows.push({ goal: name, target, value, pass, ...(note ? { note } : {}) });
  };
  if (floor) {
    const { capacity: c, cpuAt } = floor;
    add(
      'capacity, Wharf vs floor (msgs/s)',
      'Wharf ≥ floor',
      `${c.wharf} vs ${c.floor}${c.ratio !== null ? ` (×${fmt(c.ratio, 2)})` : ''}`,
      c.floor > 0 || c.wharf > 0 ? c.wharf >= c.floor : null,
    );
    add(
      `CPU per message at ${cpuAt.rate} msgs/s, Wharf vs floor (ms)`,
      'Wharf ≤ floor',
      cpuAt.wharfMsPerMsg !== null && cpuAt.floorMsPerMsg !== null
        ? `${fmt(cpuAt.wharfMsPerMsg, 2)} vs ${fmt(cpuAt.floorMsPerMsg, 2)} (×${fmt(cpuAt.ratio, 2)})`
        : 'not measured',
      cpuAt.ratio !== null ? cpuAt.ratio <= 1 : null,
    );
    const { afterPause: ap } = floor;
    if (ap.seconds)
      add(
        `CPU per message in the first ${ap.seconds} s after a pause, Wharf vs floor (ms; info)`,
        '(info)',
        ap.wharfMsPerMsg !== null && ap.floorMsPerMsg !== null
          ? `${fmt(ap.wharfMsPerMsg, 2)} vs ${fmt(ap.floorMsPerMsg, 2)} (×${fmt(ap.ratio, 2)})`
          : 'not measured',
        null,
      );
    add(
      'first start on a fresh data dir',
      '< 5 s',
      `${fmt(floor.start.wharfFirstMs / 1000, 2)} s`,
      floor.start.wharfFirstMs < 5000,
    );
    add(
      'restart to healthy',
      '< 3 s',
      floor.start.wharfRestartMs === null ? 'not measured' : `${fmt(floor.start.wharfRestartMs / 1000, 2)} s`,
      floor.start.wharfRestartMs === null ? null : floor.start.wharfRestartMs < 3000,
    );
    add('floor: start to healthy (info)', '(info)', `${fmt(floor.start.floorMs / 1000, 2)} s`, null);
  }
  if (scale) {
    const rss = scale.rssIdleMb as { wharf: number; temporal: number };
    const idle = (scale.idleBeforeMeasuring as { idle: boolean }).idle;
    const closed = scale.rssAfterIdleCloseMb as {
      wharf: number;
      temporal: number;
      allClosed: boolean;
      lastMinute: { min: number; max: number };
    } | null;
    const what = `${scale.channelsCreated as number} channels, ${scale.chatWorkflowsCreated as number} chats`;
    add(
      `RSS of Wharf's process right after the new chats (${what}; info)`,
      '(info)',
      `${fmt(rss.wharf)} MB (dev server ${fmt(rss.temporal)} MB)`,
      null,
      idle ? undefined : 'the product was still busy when measured',
    );
    if (closed)
      add(
        `idle RSS of Wharf's process, its chats closed after their idle time (${what})`,
        '< 200 MB',
        `${fmt(closed.wharf)} MB (median of a minute, ${fmt(closed.lastMinute.min)}–${fmt(closed.lastMinute.max)}; dev server ${fmt(closed.temporal)} MB)`,
        closed.allClosed ? closed.wharf < 200 : null,
        closed.allClosed ? undefined : 'chats were still running when measured',
      );
    else add("idle RSS of Wharf's process after the chats' idle close", '< 200 MB', 'not measured (quick mode)', null);
  } else
    add("idle RSS of Wharf's process, 1,000 channels / 10,000 chats", '< 200 MB', 'not measured (scale section)', null);
  if (rows.length)
    table(
      'Goals (issue #22: against the floor)',
      ['goal', 'target', 'measured', ''],
      rows.map((g) => [g.goal, g.target, g.value, mark(g)]),
    );
  return rows;
}

// ---- main ----------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const runDir = mkdtempSync(join(tmpdir(), 'wharf-bench-'));
  const results: Json = {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? null,
      memTotalMb: Math.round(totalmem() / 2 ** 20),
      memFreeMb: Math.round(freemem() / 2 ** 20),
      loadAvg1m: round(loadavg()[0], 2),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      date: new Date().toISOString(),
    },
    options: { ...o, only: [...o.only] },
    // The product's embedded store (WHARF_STORE, passed through to every product process the bench starts).
    store: process.env.WHARF_STORE ?? 'default',
    runDir,
  };
  progress(
    `sections: ${[...o.only].join(', ')}${o.quick ? ' (quick)' : ''}; store ${results.store as string}; budget ${o.budgetSec} s; product log and data dir in ${runDir}`,
  );

  // Absolute deadlines: each section ends at its cumulative share of the budget, so time one section
  // saves goes to the next.
  const selected = SECTIONS.filter((s) => o.only.has(s));
  const totalShare = selected.reduce((a, s) => a + SHARE[s], 0);
  const deadlines = new Map<Section, number>();
  let acc = 0;
  for (const s of selected) {
    acc += SHARE[s] / totalShare;
    deadlines.set(s, t0 + acc * o.budgetSec * 1000);
  }

  let failed = 0;
  const section = async (name: Section, fn: (deadline: number) => Promise<Json>): Promise<Json | undefined> => {
    if (!o.only.has(name)) return undefined;
    const s = performance.now();
    try {
      const r = await fn(deadlines.get(name)!);
      r.sectionSec = round((performance.now() - s) / 1000, 1);
      results[name] = r;
      return r;
    } catch (err) {
      failed++;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      progress(`${name}: FAILED: ${message}`);
      console.log(`\n${name}: the benchmark section failed: ${message.split('\n')[0]}`);
      results[name] = { error: message };
      return undefined;
    }
  };

  const fake = await startFakeGraph({
    tokens: { [GRAPH_TOKEN]: {} },
    phoneNumbers: { [PHONE_NUMBER_ID]: { displayPhoneNumber: DISPLAY_PHONE } },
  });
  const session = new Session(fake, runDir, o.temporal);
  let baseline: BaselineResult | undefined;
  try {
    const micro = await section('micro', () => runMicro(o));
    await section('baseline', async () => {
      const secret = 'appsecret-baseline-0123456789';
      const chats = senders(o.chats);
      let n = 0;
      baseline = await benchBaseline({
        appSecret: secret,
        makeRequest: () => signedWebhook(secret, { from: chats[n % chats.length], text: benchText(`b${n++}`) }),
        concurrency: o.concurrency,
        seconds: o.seconds,
        // The top offered rate shows whether this generator can offer it at all (see gen lag).
        rates: o.quick ? [] : [Math.max(...o.rates)],
        progress,
      });
      table(
        'Baseline: bare Express 5, HMAC check only (own process; same generator, same payloads)',
        ['rate', 'offered/s', 'sent', 'sustained/s', 'ack p50', 'ack p99', 'gen lag p99', 'errors'],
        [...baseline.open, baseline.closed].map((s) => [
          s.offeredRate ? `${s.offeredRate}/s` : `closed ×${s.concurrency}`,
          s.offeredRate ?? '—',
          s.sent,
          s.sustained,
          s.ackP50,
          s.ackP99,
          s.offeredRate ? s.genLagP99 : '—',
          errorsText(s) + (s.aborted ? ` (aborted: ${s.abortReason})` : ''),
        ]),
      );
      return { ...baseline };
    });
    const floor = (await section('floor', async (d) => {
      const r = await runFloorSection({
        fake,
        runDir,
        rates: o.floorRates,
        seconds: o.floorSeconds,
        rounds: o.floorRounds,
        warmupSeconds: o.floorWarmup,
        leadInSeconds: o.floorLeadIn,
        cpuRounds: o.floorCpuRounds,
        chats: o.chats,
        deadline: d,
        cpuRate: 100,
        backlogMs: o.quick ? 5_000 : 20_000,
        progress,
      });
      printFloor(r);
      return r as unknown as Json;
    })) as FloorResult | undefined;
    const ingest = await section('ingest', (d) => runIngest(o, session, d));
    const crash = await section('crash', (d) => runCrash(o, session, d));
    const scale = await section('scale', (d) => runScale(o, session, d));
    const flood = await section('flood', async (d) => {
      const sizes = o.quick
        ? { strangers: 100, textsEach: 3, rate: 100, phaseSec: 3 }
        : { strangers: 500, textsEach: 5, rate: 200, phaseSec: 10 };
      const r = await runFlood(
        await session.product(),
        fake,
        { ...sizes, friendRate: 5, drainMs: Math.min(left(d), o.quick ? 30_000 : 120_000) },
        progress,
      );
      const phases = r.phases as Array<{
        phase: string;
        sent: number;
        answered: number;
        e2eP50: number | null;
        e2eP99: number | null;
        e2eMax: number | null;
      }>;
      const ack = r.ack as { sent: number; ok: number; sustained: number; ackP50: number; ackP99: number };
      table(
        `Flood: ${r.strangers as number} strangers × ${r.textsEach as number} code-shaped texts at ${r.offeredRate as number}/s on one channel (its code live); a paired sender on another channel at 5/s`,
        ['phase', 'paired sender: sent', 'answered', 'e2e p50 ms', 'e2e p99 ms', 'max ms'],
        phases.map((x) => [x.phase, x.sent, x.answered, x.e2eP50, x.e2eP99, x.e2eMax]),
      );
      table(
        'Flood: the strangers',
        [
          'acked',
          'sustained/s',
          'ack p50 ms',
          'ack p99 ms',
          'newest on the log as denied',
          'chat workflows started (sampled)',
          "flooded channel's workflow: events added",
        ],
        [
          [
            `${ack.ok}/${ack.sent}`,
            ack.sustained,
            ack.ackP50,
            ack.ackP99,
            `${r.newestDeniedOnLog as number}/${r.newestChecked as number}`,
            `${r.strangerChatsStarted as number}/${r.strangerChatsSampled as number}`,
            r.targetWorkflowEventsAdded as number,
          ],
        ],
      );
      return r;
    });
    await section('sessions', (deadline) =>
      runSessionsBench({
        graphUrl: fake.url,
        runDir,
        sessions: o.sessions,
        loadSec: o.sessionsLoadSec,
        deadline,
        progress,
        table,
      }),
    );
    await session.stop();
    const cluster = await section('cluster', () =>
      runCluster({
        rate: o.quick ? 10 : 20,
        beforeKillSec: o.quick ? 3 : 5,
        afterKillSec: o.quick ? 4 : 8,
        chats: 12,
        progress,
      }),
    );
    if (cluster) {
      const gap = cluster.firstReplyAfterKillPerChatMs as { p50: number; max: number };
      const e2e = cluster.e2eAckedAfterKillMs as { p50: number; max: number };
      const pgPer = cluster.postgresPerMessage as { commits: number; rowWrites: number };
      table(
        'Cluster: two nodes, one PostgreSQL, one Temporal dev server; SIGKILL of one under load',
        ['figure', 'value'],
        [
          ['nodes started at once (ms to serving)', (cluster.startMs as number[]).join(', ')],
          [
            'acknowledged / lost / answered twice',
            `${cluster.acknowledged as number} / ${cluster.lost as number} / ${cluster.duplicates as number}`,
          ],
          ['per chat, first reply after the kill: p50 / max (ms)', `${gap.p50} / ${gap.max}`],
          ['acked after the kill, end to end: p50 / max (ms)', `${e2e.p50} / ${e2e.max}`],
          ['PostgreSQL commits / row writes per message', `${pgPer.commits} / ${pgPer.rowWrites}`],
          ['Wharf CPU per message, both nodes (ms)', String(cluster.wharfCpuMsPerMessage)],
          [
            'rolling restart: acknowledged / lost',
            `${(cluster.rollingRestart as { acknowledged: number }).acknowledged} / ${(cluster.rollingRestart as { lost: number }).lost}`,
          ],
        ],
      );
      goal('cluster: acked but never answered after a kill -9', '= 0', cluster.lost as number, (v) => v === 0);
    }
    const failover = await section('failover', () =>
      runClusterFailover({ cloudRate: o.quick ? 5 : 10, chats: 12, progress }),
    );
    if (failover) {
      const p = failover.personal as {
        sent: number;
        lost: number;
        duplicates: number;
        newQrRefs: number;
        overlappingLogins: number;
      };
      const k = p as unknown as {
        killGap: { loginMs: number | null; connectedMs: number | null; firstReplyMs: number | null };
      };
      const c = failover.cloud as { acknowledged: number; lost: number; duplicates: number };
      const rolls = failover.rollingRestart as Array<{
        node: string;
        heldSession: boolean;
        session?: { loginMs: number };
      }>;
      table(
        'Failover: three nodes, a personal session (simulator) and a Cloud channel under load; SIGKILL of the session holder, then a rolling restart',
        ['figure', 'value'],
        [
          ['nodes started at once (ms to serving)', (failover.startMs as number[]).join(', ')],
          [
            'personal session after SIGKILL of its node: login / connected / first reply (ms)',
            `${k.killGap.loginMs} / ${k.killGap.connectedMs} / ${k.killGap.firstReplyMs}`,
          ],
          [
            'personal session after a graceful stop of its node: login (ms)',
            rolls
              .filter((r) => r.session)
              .map((r) => r.session!.loginMs)
              .join(', ') || '(the session never sat on a restarted node)',
          ],
          ['personal: sent / lost / answered twice', `${p.sent} / ${p.lost} / ${p.duplicates}`],
          ['personal: new QR refs / overlapping logins', `${p.newQrRefs} / ${p.overlappingLogins}`],
          ['Cloud: acknowledged / lost / answered twice', `${c.acknowledged} / ${c.lost} / ${c.duplicates}`],
          ['channels at the end', JSON.stringify(failover.channelsAtEnd)],
          ['load average (1 min) before / after', JSON.stringify(failover.loadAvg1m)],
        ],
      );
      goal('failover: messages lost (personal + Cloud)', '= 0', p.lost + c.lost, (v) => v === 0);
      goal('failover: two live sockets for one session', '= 0', p.overlappingLogins, (v) => v === 0);
    }
    if (session.firstStartMs !== undefined) results.firstStartMs = Math.round(session.firstStartMs);

    // ---- goals ----
    if (ingest) {
      const at500 = ingest.at500 as IngestStep | null;
      const at200 = ingest.at200 as IngestStep | null;
      goal('sustained ingest (best clean step, msgs/s)', '≥ 1000', ingest.maxSustained as number, (v) => v >= 1000);
      goal('webhook-ack p99 at 500 msgs/s', '< 50 ms', at500 && at500.ok ? at500.ackP99 : null, (v) => v < 50, ' ms');
      goal(
        'end-to-end echo p50 at 200 msgs/s',
        '< 150 ms',
        at200 ? (at200.e2eP50 ?? Infinity) : null,
        (v) => v < 150,
        ' ms',
      );
      goal(
        'end-to-end echo p99 at 200 msgs/s',
        '< 500 ms',
        at200 ? (at200.e2eP99 ?? Infinity) : null,
        (v) => v < 500,
        ' ms',
      );
    }
    if (ingest && baseline) {
      const closed = ingest.closed as IngestStep;
      const ratio = baseline.closed.sustained > 0 ? closed.sustained / baseline.closed.sustained : NaN;
      const bestRatio = baseline.maxSustained > 0 ? (ingest.maxSustained as number) / baseline.maxSustained : NaN;
      results.ratio = {
        closedLoop: j(round(ratio, 4)),
        best: j(round(bestRatio, 4)),
        wharfClosed: closed.sustained,
        baselineClosed: baseline.closed.sustained,
        wharfBest: ingest.maxSustained,
        baselineBest: baseline.maxSustained,
      };
      goal(`Wharf / bare Express, closed loop ×${o.concurrency}`, '≥ 25 %', j(ratio * 100), (v) => v >= 25, ' %');
    }
    if (crash) {
      goal(
        'crash: acked but never answered',
        '= 0',
        crash.lost as number,
        (v) => v === 0,
        '',
        crash.stillArriving ? 'replies still arriving when the wait ended' : undefined,
      );
      goal('crash: duplicate replies', '≤ 0.1 %', crash.duplicatePct as number | null, (v) => v <= 0.1, ' %');
    }
    if (scale) {
      // Idle means the new chats were all processed: the first idle measurement, else the one after the
      // restart; a figure taken while still busy is an upper bound, so only a pass counts from it.
      const rss = scale.rssIdleMb as { wharf: number; temporal: number };
      const after = scale.rssAfterRestartMb as { wharf: number; idle: boolean } | null;
      const idleFirst = (scale.idleBeforeMeasuring as { idle: boolean }).idle;
      const useAfter = !idleFirst && after?.idle === true;
      const busyNote = !idleFirst && !useAfter ? 'the product was still busy when measured' : undefined;
      const what = `${scale.channelsCreated as number} channels, ${scale.chatWorkflowsCreated as number} chats${scale.complete ? '' : ', incomplete'}${useAfter ? ', after the restart' : ''}${busyNote ? ', still busy' : ''}`;
      goal(
        `idle RSS of the Wharf process (${what})`,
        '< 600 MB',
        useAfter ? after.wharf : rss.wharf,
        (v) => v < 600,
        ' MB',
        busyNote,
      );
      goal('idle RSS of the Temporal dev server', '(info)', rss.temporal, null, ' MB');
      const restartMs =
        (scale.restartToHealthyMs as number | null) ?? (crash?.restartToHealthyMs as number | undefined);
      goal(
        `restart to healthy${scale.restartToHealthyMs === null ? ' (crash section)' : ''}`,
        '< 30 s',
        restartMs === undefined ? null : restartMs / 1000,
        (v) => v < 30,
        ' s',
      );
      goal('GET /api/channels p50', '(info)', (scale.listChannelsMs as { p50: number }).p50, null, ' ms');
    }
    if (micro)
      goal(
        'Cedar decision (preparsed)',
        '(info)',
        (micro.policy as { usPerDecision: number }).usPerDecision,
        null,
        ' µs',
      );
    if (flood) {
      const during = (flood.phases as Array<{ phase: string; e2eP99: number | null }>).find(
        (x) => x.phase === 'during',
      );
      goal(
        "flood: other channel's paired sender, e2e p99 during the flood",
        '< 1000 ms',
        during?.e2eP99 ?? null,
        (v) => v < 1000,
        ' ms',
      );
      goal(
        "flood: events added to the flooded channel's workflow",
        '= 0',
        flood.targetWorkflowEventsAdded as number,
        (v) => v === 0,
      );
    }
    if (goals.length) {
      table(
        `Goals (issue #7)${o.quick ? ' — quick mode: reduced sizes, indicative only' : ''}`,
        ['goal', 'target', 'measured', ''],
        goals.map((g) => [g.goal, g.target, g.value, mark(g)]),
      );
    }
    results.goals = goals;
    results.goalsFloor = floorGoals(floor, scale);
  } finally {
    await session.stop();
    await fake.close();
  }
  results.totalSec = round((performance.now() - t0) / 1000, 1);
  writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n');
  console.log(`\nresults: ${o.out} (${results.totalSec} s)${failed ? `; ${failed} section(s) failed` : ''}`);
  // The product log stays; the data dir goes unless --keep or a section failed.
  if (!o.keep && !failed) rmSync(session.dataDir, { recursive: true, force: true });
  progress(`product log${!o.keep && !failed ? '' : ' and data dir'} in ${runDir}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
