/**
 * Driving the real product for the benchmark: start `node dist/workers/main.js` (embedded Temporal dev
 * server included) on a data dir, talk to its HTTP API, set up connected Cloud API channels against the fake
 * Graph API, build signed Meta webhooks, watch the process (RSS, CPU) and match echo replies to messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { projectRoot } from '../lib/paths.js';
import { inboundPayload, signPayload, type FakeGraph } from '../test/fakes/graph-server.js';
import { percentile, sleep, type LoadRequest } from './load.js';
import { freePort } from '../workers/temporal-server.js';

export const PHONE_NUMBER_ID = '106540352242922';
export const DISPLAY_PHONE = '+1 555-010-0000';
export const WABA_ID = '102290129340398';
export const GRAPH_TOKEN = 'bench-graph-token';

export { freePort };

/** An HTTP answer from the API. */
export interface ApiAnswer<T = unknown> {
  status: number;
  data: T;
  ms: number;
}

/** A running product. */
export interface Product {
  base: string;
  port: number;
  token: string;
  dataDir: string;
  pid: number;
  /** Milliseconds from spawn to the first healthy `/healthz`. */
  startMs: number;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>>;
  /**
   * Graceful stop: `signal` (SIGTERM) to Wharf's own process, as a service manager would send it, so Wharf
   * shuts down in order and stops its dev server itself; SIGKILL to the whole group after `graceMs`, and to
   * a dev server still running once Wharf has exited. Resolves with the time Wharf took to exit.
   */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number>;
  /** After `stop`: child processes (dev server) that were still running when Wharf had exited. */
  leftoverChildren: number;
  /** SIGKILL to the whole process group (Wharf and its Temporal dev server), at once, synchronously. */
  killNow(): void;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** The last output lines (stdout + stderr). */
  tail(chars?: number): string;
  logFile: string;
}

const live = new Set<ChildProcess>();
let cleanupInstalled = false;
function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      // already gone
    }
  }
}
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const c of live) killGroup(c, 'SIGKILL');
  });
}

/** Options for {@link startProduct}. */
export interface StartOptions {
  graphUrl: string;
  dataDir: string;
  port?: number;
  adminToken?: string;
  /** Where the product's stdout/stderr go (appended). */
  logFile: string;
  timeoutMs?: number;
  logLevel?: string;
  /** Run against this Temporal frontend (TEMPORAL_ADDRESS) instead of the embedded dev server. */
  temporalAddress?: string | null;
  /** Extra environment (e.g. WHARF_WA_URL for the sessions section). */
  env?: NodeJS.ProcessEnv;
}

/**
 * glibc's malloc arenas `npm start` allows (package.json, the Dockerfile): the Temporal core's threads each
 * kept an arena of their own, ~60 MB of Wharf's idle RSS (docs/performance.md, session 9). The floor's
 * process gets the same, so the two compare like for like.
 */
const START_MALLOC_ARENA_MAX = '2';
/**
 * glibc's mmap threshold `npm start` fixes (its default, without glibc raising it after a large free): blocks
 * of 128 KiB and more then always come from their own mapping, which goes back to the system when freed,
 * instead of settling in the heap between small live blocks (docs/performance.md, session 11).
 */
const START_MALLOC_MMAP_THRESHOLD = '131072';

/** The allocator settings `npm start` gives the product (above), unless the bench's own environment says. */
export function startMallocEnv(): { MALLOC_ARENA_MAX: string; MALLOC_MMAP_THRESHOLD_: string } {
  return {
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? START_MALLOC_ARENA_MAX,
    MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? START_MALLOC_MMAP_THRESHOLD,
  };
}

/** Node flags for the product's and the floor's processes (WHARF_BENCH_NODE_ARGS, e.g. "--cpu-prof"). */
export function benchNodeArgs(): string[] {
  return (process.env.WHARF_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

/** Spawns the product on `dataDir` and waits until `/healthz` says ok. */
export async function startProduct(opts: StartOptions): Promise<Product> {
  installCleanup();
  const port = opts.port ?? (await freePort());
  const token = opts.adminToken ?? `bench-${randomBytes(12).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WHARF_PORT: String(port),
    WHARF_HOST: '127.0.0.1',
    WHARF_PUBLIC_URL: `http://127.0.0.1:${port}`,
    WHARF_DATA_DIR: opts.dataDir,
    WHARF_ADMIN_TOKEN: token,
    META_GRAPH_URL: opts.graphUrl,
    LOG_LEVEL: opts.logLevel ?? 'warn',
  };
  delete env.TEMPORAL_ADDRESS;
  delete env.DATABASE_URL;
  // What `npm start` runs the product with (package.json), unless the bench's own environment says.
  Object.assign(env, startMallocEnv());
  if (opts.temporalAddress) env.TEMPORAL_ADDRESS = opts.temporalAddress;
  Object.assign(env, opts.env);
  const t0 = performance.now();
  const nodeArgs = benchNodeArgs();
  const child = spawn(process.execPath, [...nodeArgs, join(projectRoot, 'dist', 'workers', 'main.js')], {
    cwd: projectRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const log: WriteStream = createWriteStream(opts.logFile, { flags: 'a' });
  log.write(`\n===== start ${new Date().toISOString()} pid ${child.pid} port ${port} =====\n`);
  let tail = '';
  const keep = (d: Buffer): void => {
    log.write(d);
    tail = (tail + d.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let done: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = { code, signal };
      live.delete(child);
      // Died (V8 abort, kill, crash): take its Temporal dev server along, as a graceful stop would.
      if (signal !== null || code !== 0) killGroup(child, 'SIGKILL');
      log.write(`===== exit code ${code} signal ${signal} =====\n`);
      log.end();
      resolve(done);
    });
  });
  const base = `http://127.0.0.1:${port}`;

  const api = async <T = unknown>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> => {
    const s = performance.now();
    const r = await fetch(base + path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await r.text();
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: r.status, data: data as T, ms: performance.now() - s };
  };

  const timeoutMs = opts.timeoutMs ?? 180_000;
  for (;;) {
    if (done)
      throw new Error(
        `the product exited during start-up (${JSON.stringify(done)}); log ${opts.logFile}:\n${tail.slice(-3000)}`,
      );
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200 && ((await r.json()) as { ok?: boolean }).ok) break;
    } catch {
      // not up yet
    }
    if (performance.now() - t0 > timeoutMs) {
      killGroup(child, 'SIGKILL');
      throw new Error(`the product was not healthy within ${timeoutMs} ms; log ${opts.logFile}:\n${tail.slice(-3000)}`);
    }
    await sleep(100);
  }
  const startMs = performance.now() - t0;

  const product: Product = {
    leftoverChildren: 0,
    base,
    port,
    token,
    dataDir: opts.dataDir,
    pid: child.pid ?? 0,
    startMs,
    api,
    exited,
    hasExited: () => done !== null,
    tail: (chars = 3000) => tail.slice(-chars),
    logFile: opts.logFile,
    killNow: () => killGroup(child, 'SIGKILL'),
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000) {
      const s = performance.now();
      if (done) return 0;
      // Its children (the Temporal dev server), to make sure they do not outlive it.
      const kids = childPids(child.pid ?? 0).map((pid) => ({ pid, comm: commOf(pid) }));
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      const ms = performance.now() - s;
      for (const k of kids) {
        if (commOf(k.pid) !== k.comm) continue;
        product.leftoverChildren++;
        try {
          process.kill(k.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      return ms;
    },
  };
  return product;
}

// ---- process figures -----------------------------------------------------------------------------

/** Resident set size of `pid` in MB (VmRSS), or NaN when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Direct children of `pid` (from /proc/<pid>/task/<tid>/children). */
export function childPids(pid: number): number[] {
  const out = new Set<number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const f = `/proc/${pid}/task/${tid}/children`;
      if (!existsSync(f)) continue;
      for (const c of readFileSync(f, 'utf8').trim().split(/\s+/)) if (c) out.add(Number(c));
    }
  } catch {
    // gone
  }
  return [...out];
}

/** The command name of `pid`. */
export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** CPU time (user + system) of `pid`, in clock ticks (1/100 s on Linux). */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * Where Wharf's own memory is, from its `/metrics` (prom-client's process and Node.js gauges), in MB: the
 * V8 heap (total and used), memory outside it (buffers, WebAssembly) and the resident set. Null when
 * `/metrics` does not answer.
 */
export async function productHeap(
  p: Pick<Product, 'base' | 'token'>,
): Promise<{ heapTotalMb: number; heapUsedMb: number; externalMb: number; rssMb: number; trimmedMb: number } | null> {
  try {
    const r = await fetch(`${p.base}/metrics`, { headers: { authorization: `Bearer ${p.token}` } });
    if (!r.ok) return null;
    const text = await r.text();
    const mb = (name: string): number => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Math.round(Number(m[1]) / 2 ** 20) : NaN;
    };
    return {
      heapTotalMb: mb('wharf_nodejs_heap_size_total_bytes'),
      heapUsedMb: mb('wharf_nodejs_heap_size_used_bytes'),
      externalMb: mb('wharf_nodejs_external_memory_bytes'),
      rssMb: mb('wharf_process_resident_memory_bytes'),
      // What the product's memory trims gave back so far (workers/memory-trim.ts).
      trimmedMb: mb('wharf_memory_trimmed_bytes_total'),
    };
  } catch {
    return null;
  }
}

/** Memory of the product: Wharf's own node process and the Temporal dev server it runs. */
export function productMemory(pid: number): { wharfRssMb: number; temporalRssMb: number; temporalPids: number[] } {
  const kids = childPids(pid).filter((c) => commOf(c) !== 'node');
  const temporalRssMb = kids.reduce((a, c) => a + (rssMb(c) || 0), 0);
  return { wharfRssMb: rssMb(pid), temporalRssMb, temporalPids: kids };
}

/** A Temporal client on the product's own server (its `/api/system` says where); close its connection after. */
export async function productTemporal(p: Product): Promise<{ client: Client; connection: Connection }> {
  const system = await p.api<{ temporal: { address: string; namespace: string } }>('GET', '/api/system');
  const connection = await Connection.connect({ address: system.data.temporal.address });
  return { client: new Client({ connection, namespace: system.data.temporal.namespace }), connection };
}

/**
 * Waits (at most `maxMs`) until no chat workflow of the product runs any more — each completes once it was
 * idle for `WHARF_CHAT_IDLE_MINUTES` — and then until the process's memory settles: V8 and the allocator
 * give memory back only a minute or two after a burst, so RSS is read every 5 s until its low has not fallen
 * for 60 s. Idle RSS still moves between the product's memory trims (WHARF_MEMORY_TRIM_SECONDS, every 10 s
 * by default): the figure is the median of that last minute's readings, with their range.
 */
export async function afterIdleClose(
  p: Product,
  maxMs: number,
): Promise<{
  closed: boolean;
  closedAfterMs: number;
  settledAfterMs: number;
  mem: ReturnType<typeof productMemory>;
  lastMinuteMb: { median: number; min: number; max: number; readings: number };
}> {
  const t0 = performance.now();
  const by = t0 + maxMs;
  const { client, connection } = await productTemporal(p);
  let closed = false;
  try {
    while (performance.now() < by) {
      const { count } = await client.workflow.count('WorkflowType = "chatWorkflow" AND ExecutionStatus = "Running"');
      if (count === 0) {
        closed = true;
        break;
      }
      await sleep(5_000);
    }
  } finally {
    await connection.close();
  }
  const closedAfterMs = performance.now() - t0;
  const readings: { at: number; mb: number }[] = [];
  const read = (): ReturnType<typeof productMemory> => {
    const m = productMemory(p.pid);
    readings.push({ at: performance.now(), mb: m.wharfRssMb });
    return m;
  };
  let mem = read();
  let low = mem.wharfRssMb;
  let lowAt = performance.now();
  while (performance.now() < by && performance.now() - lowAt < 60_000) {
    await sleep(5_000);
    mem = read();
    if (mem.wharfRssMb < low - 1) {
      low = mem.wharfRssMb;
      lowAt = performance.now();
    }
  }
  const end = performance.now();
  const last = readings.filter((r) => r.at >= end - 60_000).map((r) => r.mb);
  return {
    closed,
    closedAfterMs,
    settledAfterMs: end - t0,
    mem,
    lastMinuteMb: {
      median: percentile(last, 0.5),
      min: Math.min(...last),
      max: Math.max(...last),
      readings: last.length,
    },
  };
}

/**
 * Waits until `pid` and its children together use less than `maxCpuPct` of one core over `windowMs`,
 * at most `maxWaitMs`. Returns how long it waited and whether it got there.
 */
export async function waitIdle(
  pid: number,
  { maxCpuPct = 10, windowMs = 2000, maxWaitMs = 120_000 } = {},
): Promise<{ waitedMs: number; idle: boolean }> {
  const s = performance.now();
  const total = (): number => [pid, ...childPids(pid)].reduce((a, p) => a + cpuTicks(p), 0);
  let before = total();
  for (;;) {
    await sleep(windowMs);
    const after = total();
    const pct = ((after - before) / 100 / (windowMs / 1000)) * 100;
    before = after;
    if (pct < maxCpuPct) return { waitedMs: performance.now() - s, idle: true };
    if (performance.now() - s > maxWaitMs) return { waitedMs: performance.now() - s, idle: false };
  }
}

// ---- channels ------------------------------------------------------------------------------------

/** Credential refs of one set of Cloud API secrets in the local vault. */
export interface CloudSecrets {
  appSecret: string;
  verifyToken: string;
  refs: { access_token: CredentialRef; verify_token: CredentialRef; app_secret: CredentialRef };
}
/** A credential ref. */
export interface CredentialRef {
  vault: string;
  item: string;
  field: string;
}

function check<T>(what: string, r: ApiAnswer<T>, ...ok: number[]): T {
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.data).slice(0, 500)}`);
  return r.data;
}

/** Creates the three secrets (access token known to the fake Graph, verify token, app secret). */
export async function createSecrets(p: Product, name: string): Promise<CloudSecrets> {
  const appSecret = `appsecret-${randomBytes(12).toString('hex')}`;
  const verifyToken = `verify-${randomBytes(6).toString('hex')}`;
  const item = async (suffix: string, value: string): Promise<CredentialRef> => {
    const d = check(
      'creating a vault item',
      await p.api<{ item: string }>('POST', '/api/vaults/local/items', {
        name: `${name}-${suffix}`,
        kind: 'api_key',
        fields: { value },
      }),
      201,
    );
    return { vault: 'local', item: d.item, field: 'value' };
  };
  return {
    appSecret,
    verifyToken,
    refs: {
      access_token: await item('token', GRAPH_TOKEN),
      verify_token: await item('verify', verifyToken),
      app_secret: await item('secret', appSecret),
    },
  };
}

/** Creates a Cloud API channel bound to `space` with the echo agent. */
export async function createChannel(p: Product, space: string, agent = 'echo'): Promise<{ id: string; ms: number }> {
  const r = await p.api<{ id: string }>('POST', '/api/channels', { provider: 'whatsapp_cloud', agent, space });
  return { id: check(`creating channel ${space}`, r, 201).id, ms: r.ms };
}

/** A configured, connected channel ready for webhooks. */
export interface ReadyChannel {
  id: string;
  webhookUrl: string;
  appSecret: string;
}

/** Saves the config, runs Meta's verification GET and waits for `connected` (bounded). */
export async function configureAndConnect(p: Product, id: string, secrets: CloudSecrets): Promise<ReadyChannel> {
  check(
    `saving config of ${id}`,
    await p.api('PUT', `/api/channels/${id}/config`, {
      phone_number_id: PHONE_NUMBER_ID,
      business_account_id: WABA_ID,
      ...secrets.refs,
    }),
    200,
  );
  const ch = check(
    `reading ${id}`,
    await p.api<{ webhookUrl: string | null; status: string; statusReason: string }>('GET', `/api/channels/${id}`),
    200,
  );
  if (!ch.webhookUrl)
    throw new Error(
      `channel ${id} has no webhookUrl after saving its config (status ${ch.status}: ${ch.statusReason})`,
    );
  const v = await fetch(
    `${ch.webhookUrl}?hub.mode=subscribe&hub.verify_token=${encodeURIComponent(secrets.verifyToken)}&hub.challenge=123`,
  );
  if (v.status !== 200) throw new Error(`webhook verification of ${id}: HTTP ${v.status} ${await v.text()}`);
  for (let i = 0; i < 100; i++) {
    const s = await p.api<{ status: string; statusReason: string }>('GET', `/api/channels/${id}`);
    if (s.data.status === 'connected') return { id, webhookUrl: ch.webhookUrl, appSecret: secrets.appSecret };
    if (s.data.status === 'failed') throw new Error(`channel ${id} failed: ${s.data.statusReason}`);
    await sleep(100);
  }
  throw new Error(`channel ${id} did not become connected within 10 s`);
}

/** The operator policy that lets every sender through `receive_message`. */
export async function permitEveryone(p: Product): Promise<void> {
  check(
    'saving the permit-all policy',
    await p.api('PUT', '/api/policies', {
      policies: 'permit(principal, action == Policy::Action::"receive_message", resource);',
    }),
    200,
  );
}

// ---- webhooks and replies ------------------------------------------------------------------------

/** `count` distinct WhatsApp numbers (digits only, as Meta's `from`), starting at `offset`. */
export function senders(count: number, offset = 0, prefix = '1555'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(2_000_000 + offset + i).padStart(7, '0')}`);
}

/** A unique Meta-looking message id. */
export function newWamid(): string {
  return `wamid.HBgL${randomBytes(24).toString('base64url')}`;
}

/** One signed webhook carrying one text message. */
export function signedWebhook(
  appSecret: string,
  msg: { from: string; text: string; id?: string; name?: string },
): LoadRequest & { id: string } {
  const id = msg.id ?? newWamid();
  const payload = inboundPayload(
    { phoneNumberId: PHONE_NUMBER_ID, displayPhoneNumber: '15550100000', wabaId: WABA_ID },
    [{ from: msg.from, text: msg.text, id, name: msg.name ?? `Sender ${msg.from.slice(-4)}` }],
  );
  const body = Buffer.from(JSON.stringify(payload));
  return { id, body, headers: { 'x-hub-signature-256': signPayload(body, appSecret) } };
}

const TOKEN_RE = /\bbench ([A-Za-z0-9]+)\b/;

/** The text of message `token` (echo replies with it verbatim, so the reply carries the token back). */
export const benchText = (token: string): string => `bench ${token} hello from the load generator`;

/**
 * Matches echo replies in the fake Graph's `sent` list to messages by the token in their text, and keeps the
 * send time of each message for end-to-end latency.
 */
export class ReplyTracker {
  private idx: number;
  /** token → wall-clock time the webhook was sent. */
  readonly sentAt = new Map<string, number>();
  /** token → times (fake Graph `at`) of each reply seen. */
  readonly replies = new Map<string, number[]>();

  constructor(private readonly fake: FakeGraph) {
    this.idx = fake.sent.length;
  }

  /** Records that message `token` was sent at `at` (Date.now()). */
  sent(token: string, at: number): void {
    this.sentAt.set(token, at);
  }

  /** Reads the replies that arrived since the last call. */
  poll(): void {
    const sent = this.fake.sent;
    for (; this.idx < sent.length; this.idx++) {
      const m = TOKEN_RE.exec(sent[this.idx].text);
      if (!m) continue;
      const list = this.replies.get(m[1]);
      if (list) list.push(sent[this.idx].at);
      else this.replies.set(m[1], [sent[this.idx].at]);
    }
  }

  /** How many of `tokens` have no reply yet. */
  missing(tokens: Iterable<string>): number {
    this.poll();
    let n = 0;
    for (const t of tokens) if (!this.replies.has(t)) n++;
    return n;
  }

  /** Waits until every token has a reply, or `timeoutMs`; returns how many are still missing. */
  async waitAll(tokens: string[], timeoutMs: number, progress?: (missing: number) => void): Promise<number> {
    const s = performance.now();
    let lastReport = s;
    for (;;) {
      const missing = this.missing(tokens);
      if (missing === 0 || performance.now() - s > timeoutMs) return missing;
      if (progress && performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        progress(missing);
      }
      await sleep(100);
    }
  }

  /** End-to-end latencies (first reply − send time), ms, of the given tokens that have a reply. */
  e2e(tokens: Iterable<string>): number[] {
    this.poll();
    const out: number[] = [];
    for (const t of tokens) {
      const at = this.replies.get(t)?.[0];
      const s = this.sentAt.get(t);
      if (at !== undefined && s !== undefined) out.push(at - s);
    }
    return out;
  }
}
