/**
 * A personal session fails over across nodes: two Wharf processes on one PostgreSQL database and one
 * Temporal, the real Baileys client against the WhatsApp Web simulator (in this process). A channel is
 * linked by QR; the node holding its session is found (Temporal names the worker running the session's
 * activity) and killed with SIGKILL; the session comes back on the other node with the same linked device
 * (no new QR, the simulator sees a login with the same creds), never while the old socket was still open,
 * and a message the contact sent after the kill is answered. The gaps are printed, not asserted (timing
 * goals live in `npm run bench -- --only=cluster`).
 */
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createCertAuthority } from './fakes/wa-simulator/noise.js';
import { startWaSimulator, type WaSimulator } from './fakes/wa-simulator/server.js';
import { clusterSettings, startNode, type ClusterNode } from './support/cluster.js';
import { createTestDatabase, dropTestDatabase } from './support/postgres.js';
import { channelOf, linkChannel, pairContact, pollWith } from './support/simulator.js';

let sim: WaSimulator;
let databaseUrl: string;
let nodes: ClusterNode[] = [];
let connection: Connection;
let client: Client;

beforeAll(async () => {
  sim = await startWaSimulator({ ca: createCertAuthority() });
  databaseUrl = await createTestDatabase(inject('postgresAdminUrl'));
  const settings = clusterSettings({
    databaseUrl,
    temporalAddress: inject('temporalAddress'),
    workflowBundlePath: inject('workflowBundlePath'),
    graphUrl: 'http://127.0.0.1:9',
  });
  settings.waUrl = sim.url;
  settings.waCertRoot = sim.certRoot;
  nodes = await Promise.all([startNode('a', settings), startNode('b', settings)]);
  connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({ connection });
}, 300_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await connection?.close();
  await sim?.stop();
  if (databaseUrl) await dropTestDatabase(inject('postgresAdminUrl'), databaseUrl);
});

/** Polls until `fn` gives a value, with this file's default patience (a node's start takes its share). */
const waitFor = pollWith(60_000);

/** The process id of the worker running the channel's session attempt (Temporal's identity is `pid@host`). */
async function sessionHolderPid(channelId: string): Promise<number | null> {
  const d = await client.workflow.getHandle(`channel-${channelId}`).describe();
  const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === 'runSession');
  const pid = Number(a?.lastWorkerIdentity?.split('@')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

describe('a personal session on two nodes', () => {
  it('kill -9 of the node holding it: the session resumes on the other node with the same creds, and the contact is answered', async () => {
    const [a, b] = nodes;
    const owner = sim.addUser('15550009001', 'Owner');
    const contact = sim.addUser('15557779001', 'Dana');
    const id = await linkChannel(sim, a.w, owner, 'Failover', 60_000);

    // The contact pairs through the other node's API, then gets an echo: the session works before the kill.
    await pairContact(sim, b.w, id, owner, contact, 60_000);
    sim.sendText(contact, owner, 'before the **kill**');
    expect((await sim.waitForInbox(contact, (m) => m.text.includes('kill'))).text).toBe('before the *kill*');

    const [device] = sim.linkedDevices(owner);
    const holderPid = await waitFor(() => sessionHolderPid(id), 'the session holder');
    const holder = nodes.find((n) => n.child.pid === holderPid);
    expect(holder, `the holder (pid ${holderPid}) is one of the two nodes`).toBeDefined();
    const survivor = holder === a ? b : a;
    const loginsBefore = device.logins;
    const refsBefore = sim.stats.refsIssued;
    const replacedBefore = sim.stats.replaced;

    holder!.kill();
    const killedAt = Date.now();
    await holder!.exited;
    // The contact writes while the account's session is down: WhatsApp keeps it for the device.
    sim.sendText(contact, owner, 'after the **failover**');

    const loginAt = await waitFor(
      async () => device.logins > loginsBefore && Date.now(),
      'a login with the same device',
      90_000,
    );
    const connectedAt = await waitFor(
      async () => (await channelOf(survivor.w, id)).status === 'connected' && Date.now(),
      'connected again',
      90_000,
    );
    const reply = await sim
      .waitForInbox(contact, (m) => m.text.includes('failover'), 90_000)
      .catch(async (err) => {
        // What the chat and the channel were doing, for the failure's report.
        const seen: unknown[] = [];
        for await (const wf of client.workflow.list({ query: `WharfChannelId = '${id}'` })) {
          const d = await client.workflow.getHandle(wf.workflowId).describe();
          seen.push({
            id: wf.workflowId,
            status: d.status.name,
            history: d.historyLength,
            pending: d.raw.pendingActivities?.map((a) => ({
              type: a.activityType?.name,
              state: a.state,
              attempt: a.attempt,
              failure: a.lastFailure?.message,
            })),
          });
        }
        const chan = await client.workflow.getHandle(`channel-${id}`).describe();
        console.log(
          'DIAG',
          JSON.stringify({
            chats: seen,
            channel: await channelOf(survivor.w, id),
            channelPending: chan.raw.pendingActivities?.map((a) => ({
              type: a.activityType?.name,
              attempt: a.attempt,
            })),
            inbox: sim.linkedDevices(owner).length,
          }),
        );
        throw err;
      });
    const repliedAt = Date.now();
    expect(reply.text).toBe('after the *failover*');

    // Same auth state: the same linked device logged in again, no QR was issued, the same number.
    expect(sim.linkedDevices(owner)).toEqual([device]);
    expect(sim.stats.refsIssued).toBe(refsBefore);
    expect((await channelOf(survivor.w, id)).selfAddress).toBe(`+${owner.pn}`);
    // Never two live sockets: the new login found no open connection of the device.
    expect(sim.stats.replaced).toBe(replacedBefore);
    expect(await sessionHolderPid(id)).toBe(survivor.child.pid);
    console.log(
      `personal failover: login on the surviving node ${loginAt - killedAt} ms after the kill, ` +
        `connected ${connectedAt - killedAt} ms, first reply ${repliedAt - killedAt} ms`,
    );
  }, 240_000);
});
