/**
 * `npm run bench -- --only=failover`: three Wharf nodes (child processes) on one throwaway PostgreSQL and one
 * Temporal dev server, with the WhatsApp Web simulator in this process. A Cloud API channel takes a steady
 * load through the live nodes and a personal account (linked by QR, the real Baileys client in the nodes)
 * gets a message from a contact every second. Then:
 *
 * 1. the node holding the personal session gets SIGKILL: the gap until the session logs in again on another
 *    node (same device: no QR), until the channel says `connected`, and until the first reply;
 * 2. the killed node comes back, then every node is restarted one by one (SIGTERM, a new process in its
 *    place), the load going to the others meanwhile: nothing acknowledged may be lost, no channel stuck.
 *
 * Reported: the gaps, messages lost and answered twice on both channels, logins of the device that found
 * its previous connection still open (two live sockets: must be 0), and the machine's load.
 */
import { loadavg } from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { createCertAuthority } from '../test/fakes/wa-simulator/noise.js';
import { startWaSimulator } from '../test/fakes/wa-simulator/server.js';
import type { ClusterNode } from '../test/support/cluster.js';
import { apiOk, connectCloudChannel, postInbound, startClusterRig, until } from './cluster-rig.js';
import { percentile, round, sleep } from './load.js';

/** Options of the failover section. */
export interface FailoverOptions {
  /** Cloud API messages per second over the live nodes. */
  cloudRate: number;
  chats: number;
  progress: (line: string) => void;
}

type Json = Record<string, unknown>;

/** Runs the section; returns its figures. */
export async function runClusterFailover(o: FailoverOptions): Promise<Json> {
  const sim = await startWaSimulator({ ca: createCertAuthority() });
  const rig = await startClusterRig('failover', { waUrl: sim.url, waCertRoot: sim.certRoot });
  const { fake } = rig;
  const connection = await Connection.connect({ address: rig.temporalAddress });
  const client = new Client({ connection });
  const load0 = loadavg()[0];
  let stopLoad = false;
  let loadDone: Promise<void> = Promise.resolve();
  try {
    o.progress('failover: starting three nodes at once on an empty database');
    let generation = 0;
    const start = (name: string): Promise<ClusterNode> => rig.startNode(`${name}${generation++}`);
    // The nodes a load balancer sends to (a node leaves it before it is stopped or right after it is killed).
    const live: ClusterNode[] = await Promise.all(['a', 'b', 'c'].map((n) => start(n)));
    const startMs = live.map((n) => n.startMs);
    const api = (method: string, path: string, body?: unknown, want = 200) => apiOk(live[0], method, path, body, want);

    // ---- a Cloud API channel admitting every sender --------------------------------------------------------
    const cloud = await connectCloudChannel(live[0], live[1], { space: 'cloud', secretPrefix: 'failover' });

    // ---- a personal account linked by QR, a contact paired -----------------------------------------------
    const owner = sim.addUser('15550007001', 'Owner');
    const contact = sim.addUser('15557707001', 'Contact');
    const personal = await api(
      'POST',
      '/api/channels',
      { provider: 'whatsapp_user', agent: 'echo', space: 'personal' },
      201,
    );
    const qr = await until('a QR', async () => {
      const r = await live[2].w.api('GET', `/api/channels/${personal.id}/qr`);
      return r.status === 200 ? (r.data as { qr: string }) : null;
    });
    const device = await sim.scan(qr.qr, owner);
    await until(
      'the personal channel connected',
      async () => (await api('GET', `/api/channels/${personal.id}`)).status === 'connected',
    );
    const { code } = await api('POST', `/api/channels/${personal.id}/pair`);
    sim.sendText(contact, owner, code);
    await until('the contact paired', async () =>
      ((await api('GET', `/api/channels/${personal.id}`)).pairedAddresses as Array<{ address: string }>).some(
        (p) => p.address === `+${contact.pn}`,
      ),
    );
    // A failover happens to sessions linked long ago: let Baileys' wait for the first history sync (up to 20 s
    // after a device's first login, events held meanwhile) end before the kill, or the gap includes it.
    await sleep(22_000);
    const refsAfterLink = sim.stats.refsIssued;
    const replacedAfterLink = sim.stats.replaced;

    // ---- steady load -------------------------------------------------------------------------------------
    const chats = Array.from({ length: o.chats }, (_, i) => `+1558${String(1_000_000 + i)}`);
    const acked = new Map<string, { to: string; ackedAt: number }>();
    const personalSent = new Map<string, number>();
    const sendCloud = async (n: ClusterNode, to: string, text: string): Promise<void> => {
      const ackedAt = await postInbound(n, cloud, { to, text, id: `wamid.failover${text.replace(/\W/g, '')}` });
      if (ackedAt !== null) acked.set(text, { to: to.slice(1), ackedAt });
    };
    loadDone = (async () => {
      const pending: Array<Promise<void>> = [];
      const t0 = Date.now();
      for (let i = 0; !stopLoad; i++) {
        if (live.length) pending.push(sendCloud(live[i % live.length], chats[i % chats.length], `failover ${i}`));
        if (i % o.cloudRate === 0) {
          const text = `personal ${i / o.cloudRate}`;
          personalSent.set(text, Date.now());
          sim.sendText(contact, owner, text);
        }
        await sleep(Math.max(0, t0 + ((i + 1) * 1000) / o.cloudRate - Date.now()));
      }
      await Promise.all(pending);
    })();
    await sleep(3000);

    /** The process id of the worker running the personal session's activity (Temporal's identity is `pid@host`). */
    const holderPid = async (): Promise<number | null> => {
      const d = await client.workflow.getHandle(`channel-${personal.id}`).describe();
      const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === 'runSession');
      const pid = Number(a?.lastWorkerIdentity?.split('@')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    };
    const personalStatus = async () => (await api('GET', `/api/channels/${personal.id}`)).status as string;
    /** After `at`: the session's next login, `connected` again, and the first reply to a message sent after `at`. */
    // (A figure that never came within 90 s is null: the run goes on, and the losses show in the totals.)
    const sessionGap = async (at: number, loginsBefore: number) => {
      const within = <T>(p: Promise<T>): Promise<T | null> => p.catch(() => null);
      const login = await within(until('a login of the same device', () => device.logins > loginsBefore && Date.now()));
      const connected = await within(
        until('connected again', async () => (await personalStatus()) === 'connected' && Date.now()),
      );
      const reply = await within(
        until('a reply to a message sent after the kill', () => {
          const m = contact.inbox.find((r) => personalSent.has(r.text) && personalSent.get(r.text)! > at);
          return m ? Date.now() : null;
        }),
      );
      const since = (t: number | null) => (t === null ? null : t - at);
      return { loginMs: since(login), connectedMs: since(connected), firstReplyMs: since(reply) };
    };

    // ---- 1. kill -9 of the node holding the personal session ---------------------------------------------
    const pid = await until('the session holder', holderPid);
    const holder = live.find((n) => n.child.pid === pid);
    if (!holder) throw new Error(`the session runs on pid ${pid}, which is none of the nodes`);
    o.progress(`failover: SIGKILL of ${holder.name}, which holds the personal session`);
    live.splice(live.indexOf(holder), 1);
    const loginsBeforeKill = device.logins;
    const killedAt = Date.now();
    holder.kill();
    const kill = await sessionGap(killedAt, loginsBeforeKill);
    o.progress(`failover: personal session back after the kill: ${JSON.stringify(kill)}`);
    live.push(await start('k'));

    // ---- 2. rolling restart of every node ------------------------------------------------------------------
    const rolling: Array<{ node: string; heldSession: boolean; stopMs: number; startMs: number; session?: Json }> = [];
    for (const old of [...live]) {
      const held = (await holderPid()) === old.child.pid;
      o.progress(`failover: rolling restart of ${old.name}${held ? ' (holds the personal session)' : ''}`);
      live.splice(live.indexOf(old), 1);
      const loginsBefore = device.logins;
      const at = Date.now();
      await old.stop();
      const stopMs = Date.now() - at;
      const gap = held ? sessionGap(at, loginsBefore) : undefined;
      const next = await start('r');
      live.push(next);
      rolling.push({
        node: old.name,
        heldSession: held,
        stopMs,
        startMs: next.startMs,
        session: gap ? await gap : undefined,
      });
    }
    await sleep(3000);
    stopLoad = true;
    await loadDone;

    // ---- what was lost -----------------------------------------------------------------------------------
    const answered = (text: string) => fake.sent.find((s) => s.text === text);
    const personalAnswered = (text: string) => contact.inbox.some((m) => m.text === text);
    const waitStart = Date.now();
    while (
      ([...acked.keys()].some((t) => !answered(t)) || [...personalSent.keys()].some((t) => !personalAnswered(t))) &&
      Date.now() - waitStart < 90_000
    )
      await sleep(250);
    const e2e = [...acked].flatMap(([t, m]) => (answered(t) ? [answered(t)!.at - m.ackedAt] : []));
    const statuses = await Promise.all(
      [cloud.id, personal.id].map(async (id) => (await api('GET', `/api/channels/${id}`)).status),
    );
    const result = {
      nodes: 3,
      startMs,
      loadAvg1m: { before: round(load0, 2), after: round(loadavg()[0], 2) },
      cloud: {
        rate: o.cloudRate,
        acknowledged: acked.size,
        lost: [...acked.keys()].filter((t) => !answered(t)).length,
        duplicates: [...acked.keys()].filter((t) => fake.sent.filter((s) => s.text === t).length > 1).length,
        e2eMs: { p50: percentile(e2e, 0.5), p99: percentile(e2e, 0.99), max: Math.max(...e2e) },
      },
      personal: {
        sent: personalSent.size,
        lost: [...personalSent.keys()].filter((t) => !personalAnswered(t)).length,
        duplicates: [...personalSent.keys()].filter((t) => contact.inbox.filter((m) => m.text === t).length > 1).length,
        killGap: kill,
        logins: device.logins,
        newQrRefs: sim.stats.refsIssued - refsAfterLink,
        overlappingLogins: sim.stats.replaced - replacedAfterLink,
      },
      rollingRestart: rolling,
      channelsAtEnd: { cloud: statuses[0], personal: statuses[1] },
    };
    o.progress(`failover: ${JSON.stringify(result)}`);
    return result;
  } finally {
    stopLoad = true;
    await loadDone.catch(() => undefined);
    await rig.stopNodes();
    await connection.close();
    await sim.stop();
    await rig.close();
  }
}
