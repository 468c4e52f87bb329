/**
 * `npm run bench -- --only=sessions`: how many linked personal accounts one machine holds. The product runs
 * as it ships (`dist/workers/main.js`, embedded Temporal) against the WhatsApp Web simulator in this process
 * (`WHARF_WA_URL`, `WHARF_WA_CERT_ROOT`): every session is a real Baileys socket with its Noise transport,
 * Signal sessions and keep-alives. It links N channels by QR, lets them idle, then sends one message per
 * session per minute (each answered by the echo agent, so inbound decrypt, Temporal and outbound encrypt all
 * run) and reports RSS and CPU per session, and where 2 cores or 8 GB would run out at that rate.
 */
import { join } from 'node:path';
import { createCertAuthority } from '../test/fakes/wa-simulator/noise.js';
import { startWaSimulator, type SimUser } from '../test/fakes/wa-simulator/server.js';
import { sleep } from './load.js';
import { childPids, cpuTicks, productMemory, startProduct, waitIdle } from './product.js';

/** What the section needs from the runner. */
export interface SessionsBenchOptions {
  graphUrl: string;
  runDir: string;
  /** Channels to link. */
  sessions: number;
  /** Seconds of the one-message-per-session-per-minute phase. */
  loadSec: number;
  /** Absolute `performance.now()` deadline of the section. */
  deadline: number;
  progress(msg: string): void;
  table(title: string, head: string[], rows: (string | number | null)[][]): void;
}

const CLK_TCK = 100;
/** Channels linked at once. */
const LINK_BATCH = 6;
const round = (n: number, d = 1): number => Math.round(n * 10 ** d) / 10 ** d;

/** Runs the section; returns its figures. */
export async function runSessionsBench(o: SessionsBenchOptions): Promise<Record<string, unknown>> {
  const sim = await startWaSimulator({ ca: createCertAuthority() });
  const product = await startProduct({
    graphUrl: o.graphUrl,
    dataDir: join(o.runDir, 'sessions-data'),
    logFile: join(o.runDir, 'sessions-product.log'),
    env: { WHARF_WA_URL: sim.url, WHARF_WA_CERT_ROOT: sim.certRoot },
  });
  const cpuOf = (): number => [product.pid, ...childPids(product.pid)].reduce((a, p) => a + cpuTicks(p), 0);
  try {
    await waitIdle(product.pid, { maxWaitMs: 20_000 });
    const before = productMemory(product.pid);
    const friend = sim.addUser('4915100000000', 'Bench friend');
    const owners: SimUser[] = [];
    const channels: string[] = [];
    const linkMs: number[] = [];

    /** Links one channel by QR and pairs the friend with it (so its messages are answered). */
    const link = async (i: number): Promise<void> => {
      const t0 = performance.now();
      const owner = sim.addUser(`1555${String(i).padStart(7, '0')}`, `Owner ${i}`);
      const created = await product.api<{ id: string }>('POST', '/api/channels', {
        provider: 'whatsapp_user',
        agent: 'echo',
        space: `Sessions ${i}`,
      });
      const id = created.data.id;
      let qr: string | undefined;
      while (!qr && performance.now() < o.deadline) {
        const r = await product.api<{ qr: string }>('GET', `/api/channels/${id}/qr`);
        if (r.status === 200) qr = r.data.qr;
        else await sleep(100);
      }
      if (!qr) throw new Error(`no QR for channel ${i}`);
      await sim.scan(qr, owner);
      for (;;) {
        const ch = await product.api<{ status: string }>('GET', `/api/channels/${id}`);
        if (ch.data.status === 'connected') break;
        if (performance.now() > o.deadline) throw new Error(`channel ${i} did not connect`);
        await sleep(100);
      }
      const pairing = await product.api<{ code: string }>('POST', `/api/channels/${id}/pair`);
      sim.sendText(friend, owner, pairing.data.code);
      owners.push(owner);
      channels.push(id);
      linkMs.push(performance.now() - t0);
    };

    // A few links at a time: each one generates and uploads 812 pre-keys, the costly part of linking.
    const tLink = performance.now();
    for (let i = 0; i < o.sessions && performance.now() < o.deadline - (o.loadSec + 20) * 1000; i += LINK_BATCH) {
      await Promise.all(Array.from({ length: Math.min(LINK_BATCH, o.sessions - i) }, (_, k) => link(i + k)));
      o.progress(`sessions: ${owners.length} linked`);
    }
    const linkSec = (performance.now() - tLink) / 1000;
    const n = owners.length;
    await waitIdle(product.pid, { maxWaitMs: 30_000 });
    const linked = productMemory(product.pid);

    // Idle with traffic: one message per session per minute, spread evenly.
    const perMsgMs = 60_000 / n;
    const cpu0 = cpuOf();
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < o.loadSec * 1000 && performance.now() < o.deadline - 10_000) {
      const owner = owners[sent % n];
      sim.sendText(friend, owner, `tick ${sent}`);
      sent++;
      await sleep(perMsgMs);
    }
    const windowSec = (performance.now() - t0) / 1000;
    const cpuSec = (cpuOf() - cpu0) / CLK_TCK;
    await sleep(3000);
    const answered = friend.inbox.filter((m) => m.text.startsWith('tick ')).length;
    const after = productMemory(product.pid);

    const rssPerSessionMb = (linked.wharfRssMb - before.wharfRssMb) / n;
    const cpuPerSessionPct = (cpuSec / windowSec / n) * 100;
    // Where a 2-core / 8 GB machine (WAHA's published figure: 85 sessions) runs out, at this traffic.
    const byMemory = Math.floor((8192 - before.wharfRssMb - before.temporalRssMb) / Math.max(rssPerSessionMb, 0.01));
    const byCpu = Math.floor((2 * 100 * 0.8) / Math.max(cpuPerSessionPct, 0.001));
    const result = {
      sessions: n,
      linkSec: round(linkSec),
      linkP50Ms: Math.round(linkMs.sort((a, b) => a - b)[Math.floor(n / 2)] ?? 0),
      rssBeforeMb: round(before.wharfRssMb),
      rssLinkedMb: round(linked.wharfRssMb),
      rssAfterLoadMb: round(after.wharfRssMb),
      temporalRssMb: round(after.temporalRssMb),
      rssPerSessionMb: round(rssPerSessionMb, 2),
      loadWindowSec: round(windowSec),
      messagesSent: sent,
      messagesAnswered: answered,
      cpuPercentOfOneCore: round((cpuSec / windowSec) * 100),
      cpuPerSessionPct: round(cpuPerSessionPct, 3),
      topOutByMemory8GB: byMemory,
      topOutByCpu2Cores80pct: byCpu,
      topOut: Math.min(byMemory, byCpu),
    };
    o.table(
      `Sessions: ${n} personal accounts linked against the WhatsApp Web simulator, 1 message/session/minute`,
      [
        'sessions',
        'link s',
        'RSS MB before → linked',
        'MB/session',
        'CPU % (1 core)',
        'CPU %/session',
        'answered',
        'tops out at',
      ],
      [
        [
          n,
          round(linkSec),
          `${round(before.wharfRssMb)} → ${round(linked.wharfRssMb)}`,
          round(rssPerSessionMb, 2),
          round((cpuSec / windowSec) * 100),
          round(cpuPerSessionPct, 3),
          `${answered}/${sent}`,
          `${Math.min(byMemory, byCpu)} (${byMemory <= byCpu ? '8 GB' : '2 cores'})`,
        ],
      ],
    );
    return result;
  } finally {
    await product.stop();
    await sim.stop();
  }
}
