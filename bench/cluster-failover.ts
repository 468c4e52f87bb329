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
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { WHARF_SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';
import { resolveTemporalCli } from '../lib/temporal-cli.js';
import { inboundPayload, signPayload, startFakeGraph } from '../test/fakes/graph-server.js';
import { createCertAuthority } from '../test/fakes/wa-simulator/noise.js';
import { startWaSimulator } from '../test/fakes/wa-simulator/server.js';
import { clusterSettings, startNode, type ClusterNode } from '../test/support/cluster.js';
import { createTestDatabase, startTestPostgres } from '../test/support/postgres.js';
import { DEV_SERVER_TUNING } from '../workers/temporal-server.js';
import { bundleWorkflows, prebuiltBundlePath } from '../workers/workflow-bundle.js';
import { percentile, round, sleep } from './load.js';
import { DISPLAY_PHONE, GRAPH_TOKEN, PHONE_NUMBER_ID, WABA_ID } from './product.js';

/** Options of the failover section. */
export interface FailoverOptions {
  /** Cloud API messages per second over the live nodes. */
  cloudRate: number;
  chats: number;
  progress: (line: string) => void;
}

type Json = Record<string, unknown>;

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`). */
async function until<T>(what: string, fn: () => Promise<T | null | false> | T | null | false, timeoutMs = 90_000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Runs the section; returns its figures. */
export async function runClusterFailover(o: FailoverOptions): Promise<Json> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-failover-bench-'));
  const postgres = await startTestPostgres();
  const cli = resolveTemporalCli();
  const temporal = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: cli.path ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' },
      searchAttributes: WHARF_SEARCH_ATTRIBUTES,
      extraArgs: ['--log-level', 'error', ...DEV_SERVER_TUNING],
    },
  });
  const fake = await startFakeGraph({
    tokens: { [GRAPH_TOKEN]: {} },
    phoneNumbers: { [PHONE_NUMBER_ID]: { displayPhoneNumber: DISPLAY_PHONE } },
  });
  const sim = await startWaSimulator({ ca: createCertAuthority() });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  const nodes: ClusterNode[] = [];
  const load0 = loadavg()[0];
  let stopLoad = false;
  let loadDone: Promise<void> = Promise.resolve();
  try {
    let workflowBundlePath = prebuiltBundlePath;
    if (!existsSync(workflowBundlePath)) {
      workflowBundlePath = join(dir, 'workflows.js');
      writeFileSync(workflowBundlePath, (await bundleWorkflows()).code);
    }
    const settings = clusterSettings({
      databaseUrl: await createTestDatabase(postgres.adminUrl),
      temporalAddress: temporal.address,
      workflowBundlePath,
      graphUrl: fake.url,
    });
    settings.waUrl = sim.url;
    settings.waCertRoot = sim.certRoot;
    o.progress('failover: starting three nodes at once on an empty database');
    let generation = 0;
    const start = async (name: string): Promise<ClusterNode> => {
      const n = await startNode(`${name}${generation++}`, settings);
      nodes.push(n);
      return n;
    };
    // The nodes a load balancer sends to (a node leaves it before it is stopped or right after it is killed).
    const live: ClusterNode[] = await Promise.all(['a', 'b', 'c'].map((n) => start(n)));
    const startMs = live.map((n) => n.startMs);
    const api = async (method: string, path: string, body?: unknown, want = 200) => {
      const r = await live[0].w.api(method, path, body);
      if (r.status !== want) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.data)}`);
      return r.data;
    };

    // ---- a Cloud API channel admitting every sender --------------------------------------------------------
    const item = async (name: string, value: string) => ({
      vault: 'local',
      item: (await api('POST', '/api/vaults/local/items', { name, fields: { value } }, 201)).item,
      field: 'value',
    });
    const appSecret = 'failover-app-secret-0123456789';
    const verifyToken = 'failover-verify';
    const cloud = await api(
      'POST',
      '/api/channels',
      { provider: 'whatsapp_cloud', agent: 'echo', space: 'cloud' },
      201,
    );
    await api('PUT', `/api/channels/${cloud.id}/config`, {
      phone_number_id: PHONE_NUMBER_ID,
      business_account_id: WABA_ID,
      access_token: await item('token', GRAPH_TOKEN),
      verify_token: await item('verify', verifyToken),
      app_secret: await item('secret', appSecret),
    });
    await live[1].w.api(
      'GET',
      `/webhooks/whatsapp/${cloud.id}?hub.mode=subscribe&hub.verify_token=${verifyToken}&hub.challenge=1`,
      undefined,
      { auth: false },
    );
    await until(
      'the Cloud channel connected',
      async () => (await api('GET', `/api/channels/${cloud.id}`)).status === 'connected',
    );
    await api('PUT', '/api/policies', {
      policies: `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${cloud.id}");`,
    });

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
      const body = JSON.stringify(
        inboundPayload({ phoneNumberId: PHONE_NUMBER_ID, wabaId: WABA_ID }, [
          { from: to.slice(1), text, id: `wamid.failover${text.replace(/\W/g, '')}` },
        ]),
      );
      try {
        const r = await fetch(`${n.w.url}/webhooks/whatsapp/${cloud.id}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': signPayload(body, appSecret) },
          body,
        });
        if (r.status === 200) acked.set(text, { to: to.slice(1), ackedAt: Date.now() });
        await r.arrayBuffer();
      } catch {
        // the node went away mid-request: not acknowledged, so Meta would send it again
      }
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
    await Promise.all(nodes.map((n) => n.stop()));
    await connection.close();
    await sim.stop();
    await fake.close();
    await temporal.teardown();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
