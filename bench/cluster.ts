/**
 * `npm run bench -- --only=cluster`: two Wharf nodes (child processes, test/support/cluster-node.ts) on one
 * throwaway PostgreSQL and one Temporal dev server, started at once on the empty database. Load goes to both
 * nodes; one is killed with SIGKILL mid-load and the load moves to the other, as a load balancer does once a
 * health check fails. Then the other is restarted and stopped in turn (a rolling restart). Measures: start
 * to serving, acknowledged messages lost (must be 0), duplicates, the time each chat waited for its first
 * reply after the kill, the end-to-end latency of messages acknowledged after it, and PostgreSQL commits
 * and row writes per message.
 */
import pg from 'pg';
import type { ClusterNode } from '../test/support/cluster.js';
import { connectCloudChannel, postInbound, startClusterRig } from './cluster-rig.js';
import { percentile, round, sleep } from './load.js';
import { cpuTicks } from './product.js';

/** Options of the cluster section. */
export interface ClusterOptions {
  /** Messages per second over both nodes. */
  rate: number;
  /** Seconds of load before the kill, and after it. */
  beforeKillSec: number;
  afterKillSec: number;
  chats: number;
  progress: (line: string) => void;
}

type Json = Record<string, unknown>;

/** Runs the section; returns its figures. */
export async function runCluster(o: ClusterOptions): Promise<Json> {
  const rig = await startClusterRig('cluster');
  const { settings, fake } = rig;
  try {
    o.progress('cluster: starting two nodes at once on an empty database');
    const [a, b] = await Promise.all([rig.startNode('a'), rig.startNode('b')]);
    const startMs = [a.startMs, b.startMs];
    const ch = await connectCloudChannel(a, b, { space: 'cluster', secretPrefix: 'cluster' });

    const chats = Array.from({ length: o.chats }, (_, i) => `+1557${String(1_000_000 + i)}`);
    const acked = new Map<string, { to: string; ackedAt: number }>();
    const send = async (n: ClusterNode, to: string, text: string): Promise<void> => {
      const ackedAt = await postInbound(n, ch, { to, text, id: `wamid.cluster${text.replace(/\W/g, '')}` });
      if (ackedAt !== null) acked.set(text, { to: to.slice(1), ackedAt });
    };
    const stats = async () => {
      const c = new pg.Client({ connectionString: settings.databaseUrl });
      await c.connect();
      try {
        const [r] = (
          await c.query(
            `select xact_commit::float8 as commits, (tup_inserted + tup_updated + tup_deleted)::float8 as writes from pg_stat_database where datname = current_database()`,
          )
        ).rows;
        return r as { commits: number; writes: number };
      } finally {
        await c.end();
      }
    };
    const cpu = () => [a, b].map((n) => (n.child.pid ? cpuTicks(n.child.pid) : 0));

    // Load over both nodes, the kill of A, then load on B alone.
    o.progress(
      `cluster: ${o.rate} msgs/s over ${o.chats} chats to both nodes for ${o.beforeKillSec} s, then SIGKILL of node a and ${o.afterKillSec} s on node b`,
    );
    const stats0 = await stats();
    const cpu0 = cpu();
    const t0 = Date.now();
    const pending: Array<Promise<void>> = [];
    let killedAt = 0;
    let cpuAtKill: number[] = [];
    for (let i = 0; Date.now() - t0 < (o.beforeKillSec + o.afterKillSec) * 1000; i++) {
      if (!killedAt && Date.now() - t0 >= o.beforeKillSec * 1000) {
        cpuAtKill = cpu();
        a.kill();
        killedAt = Date.now();
      }
      pending.push(send(killedAt || i % 2 ? b : a, chats[i % chats.length], `cluster ${i} k${killedAt ? 1 : 0}`));
      await sleep(Math.max(0, t0 + ((i + 1) * 1000) / o.rate - Date.now()));
    }
    await Promise.all(pending);
    const answered = (text: string) => fake.sent.find((s) => s.text === text);
    const waitStart = Date.now();
    while ([...acked.keys()].some((t) => !answered(t)) && Date.now() - waitStart < 120_000) await sleep(200);
    const lost = [...acked.keys()].filter((t) => !answered(t)).length;
    const stats1 = await stats();
    const duplicates = [...acked.keys()].filter((t) => fake.sent.filter((s) => s.text === t).length > 1).length;
    const chatGap = chats
      .map((to) =>
        Math.min(
          ...fake.sent
            .filter((s) => s.to === to.slice(1) && s.at > killedAt && acked.has(s.text))
            .map((s) => s.at - killedAt),
        ),
      )
      .filter(Number.isFinite);
    const afterKill = [...acked].filter(([, m]) => m.ackedAt > killedAt && answered);
    const e2eAfter = afterKill.flatMap(([t, m]) => (answered(t) ? [answered(t)!.at - m.ackedAt] : []));
    const beforeKill = [...acked].filter(([, m]) => m.ackedAt <= killedAt);
    const e2eBefore = beforeKill.flatMap(([t, m]) => (answered(t) ? [answered(t)!.at - m.ackedAt] : []));
    // CPU per message while both nodes ran (ticks are 10 ms): both nodes' CPU over the messages acked then.
    const cpuMsPerMessage = beforeKill.length
      ? round(((cpuAtKill[0] - cpu0[0] + cpuAtKill[1] - cpu0[1]) * 10) / beforeKill.length, 2)
      : null;

    // Rolling restart: start A again, then stop B gracefully and start it again; nothing may be left unanswered.
    o.progress('cluster: rolling restart (a back, then b stopped and started)');
    const a2 = await rig.startNode('a2');
    const rolling: string[] = [];
    for (let i = 0; i < 40; i++) {
      if (i === 15) await b.stop();
      const text = `rolling ${i}`;
      await send(i >= 15 || i % 2 ? a2 : b, chats[i % chats.length], text);
      if (acked.has(text)) rolling.push(text);
      await sleep(50);
    }
    await rig.startNode('b2');
    const rollStart = Date.now();
    while (rolling.some((t) => !answered(t)) && Date.now() - rollStart < 60_000) await sleep(200);
    const rollingLost = rolling.filter((t) => !answered(t)).length;

    const result = {
      nodes: 2,
      startMs,
      rate: o.rate,
      chats: o.chats,
      acknowledged: acked.size,
      lost,
      duplicates,
      firstReplyAfterKillPerChatMs: { p50: percentile(chatGap, 0.5), max: Math.max(...chatGap) },
      e2eBeforeKillMs: { p50: percentile(e2eBefore, 0.5), p99: percentile(e2eBefore, 0.99) },
      e2eAckedAfterKillMs: {
        p50: percentile(e2eAfter, 0.5),
        p99: percentile(e2eAfter, 0.99),
        max: Math.max(...e2eAfter),
      },
      postgresPerMessage: {
        commits: round((stats1.commits - stats0.commits) / acked.size, 2),
        rowWrites: round((stats1.writes - stats0.writes) / acked.size, 2),
      },
      wharfCpuMsPerMessage: cpuMsPerMessage,
      rollingRestart: { acknowledged: rolling.length, lost: rollingLost },
    };
    o.progress(`cluster: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await rig.close();
  }
}
