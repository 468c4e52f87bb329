/**
 * Two Wharf nodes (child processes) on one PostgreSQL database, one task queue and one Temporal server:
 * both start at once on an empty database, either answers the API and Meta's webhooks the same way, a
 * pairing or un-pairing through one node applies to the very next message through the other, and a
 * `kill -9` of one node under load loses no acknowledged message (the other answers them). The time to the
 * first reply after the kill is printed, not asserted (timing goals live in `npm run bench -- --only=cluster`).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { inboundPayload, signPayload, startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  bare,
  cloudChannel,
  echoRoundTrip,
  getChannel,
  lastingView,
  phone,
  postWebhook,
  sendText,
  uid,
  waitFor,
  waitForOutcome,
  wamid,
  type CloudSetup,
} from './support/cloud.js';
import { clusterSettings, startNode, type ClusterNode, type ClusterSettings } from './support/cluster.js';
import { createTestDatabase, dropTestDatabase } from './support/postgres.js';
import type { TestWharf } from './support/wharf.js';

/** A node's API as the helpers of test/support/cloud.ts take it (they use only `url`, `token` and `api`). */
const W = (n: ClusterNode): TestWharf => n.w as unknown as TestWharf;

let fake: FakeGraph;
let settings: ClusterSettings;
let databaseUrl: string;
let a: ClusterNode;
let b: ClusterNode;

beforeAll(async () => {
  fake = await startFakeGraph();
  databaseUrl = await createTestDatabase(inject('postgresAdminUrl'));
  settings = clusterSettings({
    databaseUrl,
    temporalAddress: inject('temporalAddress'),
    workflowBundlePath: inject('workflowBundlePath'),
    graphUrl: fake.url,
  });
  // Both at once on an empty database: the migrations must not race.
  [a, b] = await Promise.all([startNode('a', settings), startNode('b', settings)]);
}, 300_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await fake?.close();
  if (databaseUrl) await dropTestDatabase(inject('postgresAdminUrl'), databaseUrl);
});

/** The parts of a channel's view that both nodes must agree on. */
const pick = (c: Record<string, unknown>) => ({ ...lastingView(c), webhookUrl: typeof c.webhookUrl });

describe('two nodes on one database and one Temporal', () => {
  it('both started at once on an empty database and apply the same schema', async () => {
    const [ha, hb] = await Promise.all([
      W(a).api('GET', '/healthz', undefined, { auth: false }),
      W(b).api('GET', '/healthz', undefined, { auth: false }),
    ]);

    expect(ha.data).toEqual({ ok: true, temporal: 'up', store: 'up' });
    expect(hb.data).toEqual({ ok: true, temporal: 'up', store: 'up' });
    expect((await W(a).api('GET', '/api/system')).data.store).toEqual({ kind: 'postgres' });
  });

  it('answers the API and webhooks the same through either node; pairing and un-pairing apply to the next message through the other', async () => {
    const ch = await cloudChannel(W(a), fake, { stage: 'connected' });
    const [viaA, viaB] = [await getChannel(W(a), ch.id), await getChannel(W(b), ch.id)];
    expect(pick(viaB)).toEqual(pick(viaA));

    // One sender whose chat starts on each node (a new chat starts on the node that took its first webhook).
    // The channel's workflow, which records pairings, runs on one of the two: so for one of these senders
    // the admission that follows a pairing or un-pairing runs on the node that did not record it.
    const senders = [
      { node: a, address: phone() },
      { node: b, address: phone() },
    ];
    for (const { node, address } of senders) {
      const { code } = (await W(node === a ? b : a).api('POST', `/api/channels/${ch.id}/pair`)).data;
      await sendText(W(node), ch, address, code);
      await fake.waitForSent((s) => s.to === bare(address) && s.text.startsWith('Paired.'), 20_000);
      const right = await echoRoundTrip(W(node), fake, ch, address, `right after pairing ${uid()}`);
      expect((await waitForOutcome(W(node), ch.id, right.id)).status).toBe('answered');
    }
    expect(pick(await getChannel(W(b), ch.id))).toEqual(pick(await getChannel(W(a), ch.id)));

    // Both chats answered just now (their nodes' copies are warm); un-pair both, then their next messages are denied.
    await Promise.all(senders.map(({ node, address }) => echoRoundTrip(W(node), fake, ch, address, `warm ${uid()}`)));
    for (const { node, address } of senders) {
      expect(
        (await W(node === a ? b : a).api('DELETE', `/api/channels/${ch.id}/paired/${encodeURIComponent(address)}`))
          .status,
      ).toBe(200);
    }
    const after = await Promise.all(
      senders.map(({ node, address }) => sendText(W(node), ch, address, `after un-pairing ${uid()}`)),
    );
    for (const [k, id] of after.entries())
      expect((await waitForOutcome(W(senders[k].node), ch.id, id)).status).toBe('denied');
  });

  it('kill -9 of one node under load: every acknowledged message is answered through the other', async () => {
    const ch = await cloudChannel(W(b), fake, { stage: 'connected' });
    const permit = `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${ch.id}");`;
    expect((await W(b).api('PUT', '/api/policies', { policies: permit })).status).toBe(200);
    const chats = Array.from({ length: 12 }, () => phone());
    const acked = new Map<string, { to: string; ackedAt: number }>();
    let killedAt = 0;

    // ~20 msgs/s for 8 s over both nodes; A is killed after 3 s, then only B is sent to (as a load
    // balancer does once A's health check fails).
    const start = Date.now();
    for (let i = 0; Date.now() - start < 8000; i++) {
      if (!killedAt && Date.now() - start > 3000) {
        a.kill();
        killedAt = Date.now();
      }
      const to = chats[i % chats.length];
      const text = `load ${i} ${uid()}`;
      const node = killedAt || i % 2 ? b : a;
      void send(node, ch, to, text).then((ok) => ok && acked.set(text, { to, ackedAt: Date.now() }));
      await new Promise((r) => setTimeout(r, 50));
    }
    await a.exited;

    const answered = (text: string, to: string) => fake.sent.find((s) => s.to === bare(to) && s.text === text);
    await waitFor(
      'every acknowledged message answered',
      () => [...acked].every(([text, m]) => answered(text, m.to)),
      90_000,
      250,
    );
    const repliesAfterKill = fake.sent.filter((s) => s.at > killedAt && acked.has(s.text)).map((s) => s.at - killedAt);
    // Per chat: how long after the kill its first reply came (the longest of these is the stall).
    const chatGap = chats.map((to) =>
      Math.min(
        ...fake.sent
          .filter((s) => s.to === bare(to) && s.at > killedAt && acked.has(s.text))
          .map((s) => s.at - killedAt),
      ),
    );
    const ackedAfterKill = [...acked]
      .filter(([, m]) => m.ackedAt > killedAt)
      .map(([text, m]) => answered(text, m.to)!.at - m.ackedAt);
    const duplicates = [...acked.keys()].filter((text) => fake.sent.filter((s) => s.text === text).length > 1).length;
    console.log(
      `cluster kill -9: ${acked.size} acknowledged, 0 lost, ${duplicates} answered twice; first reply ${Math.min(...repliesAfterKill)} ms after the kill; ` +
        `per chat, first reply after the kill in p50 ${median(chatGap)} ms, max ${Math.max(...chatGap)} ms; ` +
        `messages acknowledged after it answered in p50 ${median(ackedAfterKill)} ms, max ${Math.max(...ackedAfterKill)} ms`,
    );
    expect(acked.size).toBeGreaterThan(100);
  }, 150_000);
});

/** Posts one signed text to a node; whether it was acknowledged (a node that died mid-request is not). */
async function send(node: ClusterNode, ch: CloudSetup, from: string, text: string): Promise<boolean> {
  const payload = JSON.stringify(inboundPayload(ch.target, [{ from, text, id: wamid() }]));
  try {
    const r = await postWebhook(W(node), ch.id, payload, { signature: signPayload(payload, ch.appSecret) });
    return r.status === 200;
  } catch {
    return false;
  }
}

const median = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] ?? NaN;
