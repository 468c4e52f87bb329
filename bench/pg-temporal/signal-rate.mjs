// Closed-loop rate of bare signal-with-start calls against a Temporal frontend.
//   node bench/pg-temporal/signal-rate.mjs --address 127.0.0.1:7243 --seconds 10 --concurrency 64 [--ids 64]
//        [--warmup 2] [--namespace default] [--cpu temporal=123,postgres=456] [--label text] [--json]
// Each call is what lib/inbound-delivery.ts sends on its slow path: signalWithStart('chatWorkflow') with the
// chat args, the WharfChannelId search attribute and one small `inbound` signal. The task queue has no
// poller, so only the start/signal writes are measured. Ids are fresh per run (prefix = run tag), spread
// round-robin over --ids workflows. --cpu: named root pids whose CPU (with all their descendants, e.g.
// postgres backends) is sampled from /proc over the measured window: serverCpuPct is % of one core
// (200 = both cores here), machineBusyPct is % of the whole machine (all processes, this client included).
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split(/\s*--/)
    .filter(Boolean)
    .map((a) => {
      const [k, ...v] = a.split(/\s+/);
      return [k, v.join(' ') || 'true'];
    }),
);
const address = args.address ?? '127.0.0.1:7233';
const seconds = Number(args.seconds ?? 10),
  warmup = Number(args.warmup ?? 2);
const concurrency = Number(args.concurrency ?? 64),
  ids = Number(args.ids ?? 64);
const namespace = args.namespace ?? 'default';
// --cpu temporal=123,postgres=456 (or bare pids): each root's process tree is summed separately.
const cpuRoots = (args.cpu ?? args['cpu-pids'] ?? '')
  .split(',')
  .filter(Boolean)
  .map((x) => {
    const [n, p] = x.includes('=') ? x.split('=') : [x, x];
    return { name: n, pid: Number(p) };
  });
const WharfChannelId = defineSearchAttributeKey('WharfChannelId', SearchAttributeType.KEYWORD);

const TICK = 100; // USER_HZ on Linux
const cores = availableParallelism();
function procTree(roots) {
  const parent = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out = new Set(roots);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parent)
      if (out.has(pp) && !out.has(p)) {
        out.add(p);
        grew = true;
      }
  }
  return [...out];
}
function cpuTicks(pids) {
  const m = new Map();
  for (const p of pids) {
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8'),
        f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(p, Number(f[11]) + Number(f[12]));
    } catch {}
  }
  return m;
}
const machineTicks = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: f[0] + f[1] + f[2] + f[5] + f[6] + f[7], all: f.reduce((a, b) => a + b, 0) };
};

const connection = await Connection.connect({ address });
const client = new Client({ connection, namespace });
const tag = `sigrate-${Date.now().toString(36)}`;
let next = 0,
  stopAt = 0,
  measuring = false,
  ok = 0,
  errors = 0,
  lastErr = '';
const lat = [];
async function worker() {
  while (Date.now() < stopAt) {
    const n = next++,
      chatId = `chat-${n % ids}`,
      t0 = performance.now();
    try {
      await client.workflow.signalWithStart('chatWorkflow', {
        workflowId: `${tag}:${chatId}`,
        taskQueue: `${tag}-nobody-polls`,
        args: [{ channelId: tag, chatId }],
        typedSearchAttributes: [{ key: WharfChannelId, value: tag }],
        signal: 'inbound',
        signalArgs: [[{ id: `m${n}`, chatId, text: 'hello', receivedAt: Date.now() }]],
      });
      if (measuring) {
        ok++;
        lat.push(performance.now() - t0);
      }
    } catch (e) {
      if (measuring) {
        errors++;
        lastErr = String(e?.message ?? e).slice(0, 200);
      }
    }
  }
}
stopAt = Date.now() + (warmup + seconds) * 1000;
const workers = Array.from({ length: concurrency }, worker);
await new Promise((r) => setTimeout(r, warmup * 1000));
const trees = () => cpuRoots.map((r) => ({ ...r, pids: procTree([r.pid]) }));
const tree0 = trees(),
  cpu0 = tree0.map((t) => cpuTicks(t.pids)),
  m0 = machineTicks(),
  me0 = process.cpuUsage(),
  t0 = performance.now();
measuring = true;
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const elapsed = (performance.now() - t0) / 1000;
const tree1 = trees(),
  cpu1 = tree1.map((t) => cpuTicks(t.pids)),
  m1 = machineTicks(),
  me1 = process.cpuUsage(me0);
await Promise.all(workers);
await connection.close();

lat.sort((a, b) => a - b);
const pct = (q) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] : NaN);
const cpuPct = {};
tree1.forEach((t, i) => {
  let ticks = 0;
  for (const [p, v] of cpu1[i]) ticks += v - (cpu0[i].get(p) ?? 0);
  cpuPct[t.name] = +((ticks / TICK / elapsed) * 100).toFixed(0);
});
const serverCpuPct = Object.values(cpuPct).reduce((a, b) => a + b, 0);
const r = {
  label: args.label ?? address,
  address,
  concurrency,
  ids,
  seconds: +elapsed.toFixed(2),
  ok,
  errors,
  perSec: +(ok / elapsed).toFixed(1),
  p50ms: +pct(0.5).toFixed(1),
  p99ms: +pct(0.99).toFixed(1),
  serverCpuPct: cpuRoots.length ? serverCpuPct : null,
  ...Object.fromEntries(Object.entries(cpuPct).map(([k, v]) => [`cpu_${k}`, v])),
  clientCpuPct: +(((me1.user + me1.system) / 1e6 / elapsed) * 100).toFixed(0),
  machineBusyPct: +(((m1.busy - m0.busy) / (m1.all - m0.all)) * 100).toFixed(0),
  // CPU used by everything else on the machine (other users' jobs, kernel threads), % of one core.
  otherCpuPct: +(
    ((m1.busy - m0.busy) / (m1.all - m0.all)) * cores * 100 -
    (cpuRoots.length ? serverCpuPct : 0) -
    ((me1.user + me1.system) / 1e6 / elapsed) * 100
  ).toFixed(0),
  ...(errors ? { lastErr } : {}),
};
console.log(
  args.json
    ? JSON.stringify(r)
    : Object.entries(r)
        .map(([k, v]) => `${k}=${v}`)
        .join('  '),
);
