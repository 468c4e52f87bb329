/**
 * `GET /metrics`: the Prometheus text of a running Wharf, scraped with the metrics token, and its counters
 * moving as a Cloud API channel is paired, answers, and refuses a forged event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundPayload, signPayload, startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  cloudChannel,
  echoRoundTrip,
  expectError,
  pairPhone,
  phone,
  postWebhook,
  sendText,
  waitForChannel,
  waitFor,
  waitForOutcome,
  wamid,
} from './support/cloud.js';
import { startWharf, type TestWharf } from './support/wharf.js';
import { vaultRegistry } from '../lib/vaults/index.js';

const METRICS_TOKEN = 'metrics-token-for-the-scraper';

let fake: FakeGraph;
let w: TestWharf;

beforeAll(async () => {
  fake = await startFakeGraph();
  // On PostgreSQL: it starts in a fraction of PGlite's time (no initdb); what is measured is the same.
  w = await startWharf({ graphUrl: fake.url, store: 'postgres', env: { WHARF_METRICS_TOKEN: METRICS_TOKEN } });
});

afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

/** Scrapes /metrics with the metrics token; returns each sample's value by `name{labels}`. */
async function scrape(): Promise<Map<string, number>> {
  const r = await w.api('GET', '/metrics', undefined, {
    auth: false,
    headers: { authorization: `Bearer ${METRICS_TOKEN}` },
  });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
  const samples = new Map<string, number>();
  for (const line of String(r.data).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const value = (m: Map<string, number>, key: string): number => m.get(key) ?? 0;

describe('GET /metrics', () => {
  it('needs the metrics token or the admin token', async () => {
    expectError(await w.api('GET', '/metrics', undefined, { auth: false }), 401, 'unauthorized');
    expectError(
      await w.api('GET', '/metrics', undefined, {
        auth: false,
        headers: { authorization: 'Bearer not-the-metrics-token-at-all' },
      }),
      401,
      'unauthorized',
    );
    expect((await w.api('GET', '/metrics')).status).toBe(200); // the admin token
  });

  it('counts webhooks, acknowledgements, inbound outcomes, replies, Graph calls, pairing and signature failures', async () => {
    const before = await scrape();
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const paired = phone();
    await pairPhone(w, fake, ch, paired);
    await echoRoundTrip(w, fake, ch, paired, 'counted');
    const raw = JSON.stringify(inboundPayload(ch.target, [{ from: paired, text: 'forged', id: wamid() }]));
    expectError(
      await postWebhook(w, ch.id, raw, { signature: signPayload(raw, 'not-the-app-secret') }),
      401,
      'bad_signature',
    );

    // The echo reaches the fake Graph before its completion (the inbound's `answered`, the accepted reply) is
    // recorded and counted: wait for the counters, not for a time.
    const since = (m: Map<string, number>, key: string): number => value(m, key) - value(before, key);
    const after = await waitFor('the reply completions counted', async () => {
      const m = await scrape();
      const answered = since(m, 'wharf_inbound_messages_total{status="answered",type="text"}');
      return answered >= 1 && since(m, 'wharf_replies_total{outcome="accepted"}') >= 2 && m;
    });
    const moved = (key: string): number => since(after, key);
    expect(moved('wharf_webhook_requests_total{kind="verify",outcome="accepted"}')).toBe(1);
    expect(moved('wharf_webhook_requests_total{kind="event",outcome="accepted"}')).toBe(2);
    expect(moved('wharf_webhook_requests_total{kind="event",outcome="bad_signature"}')).toBe(1);
    expect(moved('wharf_webhook_signature_failures_total')).toBe(1);
    expect(moved('wharf_webhook_ack_seconds_count')).toBe(2);
    expect(moved('wharf_webhook_ack_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(moved('wharf_inbound_messages_total{status="received",type="text"}')).toBeGreaterThanOrEqual(2);
    expect(moved('wharf_inbound_messages_total{status="paired",type="text"}')).toBeGreaterThanOrEqual(1);
    expect(moved('wharf_inbound_messages_total{status="answered",type="text"}')).toBeGreaterThanOrEqual(1);
    expect(moved('wharf_replies_total{outcome="accepted"}')).toBeGreaterThanOrEqual(2); // the pairing confirmation and the echo
    expect(moved('wharf_graph_requests_total{endpoint="sendText",code="ok"}')).toBeGreaterThanOrEqual(2);
    expect(moved('wharf_pairing_attempts_total{outcome="code_issued"}')).toBe(1);
    expect(moved('wharf_pairing_attempts_total{outcome="paired"}')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'wharf_channels{provider="whatsapp_cloud",status="connected"}')).toBeGreaterThanOrEqual(1);
    expect([...after.keys()].some((k) => k.startsWith('wharf_process_cpu_seconds_total'))).toBe(true);
  });

  it('counts inbound messages by type, wrong pairing codes, vault errors by kind, and personal sessions by state', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const before = await scrape();
    const moved = (after: Map<string, number>, key: string): number => value(after, key) - value(before, key);

    // A reaction (recorded, not sent to the agent) and a stranger guessing a code that is not the live one.
    const reaction = { type: 'reaction', reaction: { message_id: wamid(), emoji: '👍' } };
    expect(
      (
        await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: p, message: reaction }]), {
          secret: ch.appSecret,
        })
      ).status,
    ).toBe(200);
    const { code } = (await w.api('POST', `/api/channels/${ch.id}/pair`)).data as { code: string };
    const wrong = code === 'QQQ-111' ? 'QQQ-112' : 'QQQ-111';
    await waitForOutcome(w, ch.id, await sendText(w, ch, phone(), wrong));

    // Refs that cannot be read, through the registry every activity resolves secrets with: an item the local
    // vault does not have, and a vault that is not connected.
    const vaults = vaultRegistry(w.store);
    await expect(vaults.resolve({ vault: 'local', item: 'itm_missing', field: 'value' })).rejects.toThrow(/no such/);
    await expect(vaults.resolve({ vault: 'ops', item: 'x', field: 'y' })).rejects.toThrow(/no such vault/);

    // A personal channel: it cannot reach WhatsApp from here, and says so in its state.
    const personal = await w.api('POST', '/api/channels', { provider: 'whatsapp_user', agent: 'echo' });
    expect(personal.status).toBe(201);

    const after = await scrape();
    expect(moved(after, 'wharf_inbound_messages_total{status="ignored",type="reaction"}')).toBe(1);
    expect(moved(after, 'wharf_inbound_messages_total{status="denied",type="text"}')).toBeGreaterThanOrEqual(1);
    expect(moved(after, 'wharf_pairing_attempts_total{outcome="wrong_code"}')).toBe(1);
    expect(moved(after, 'wharf_pairing_attempts_total{outcome="code_issued"}')).toBe(1);
    expect(moved(after, 'wharf_vault_errors_total{vault_kind="local",problem="not_found"}')).toBe(1);
    expect(moved(after, 'wharf_vault_errors_total{vault_kind="unknown",problem="not_found"}')).toBe(1);
    const personalStates = [...after.entries()].filter(([k]) => k.startsWith('wharf_personal_sessions{'));
    expect(personalStates.reduce((n, [, v]) => n + v, 0)).toBeGreaterThanOrEqual(1);
  });

  it('counts Graph errors by endpoint and Meta error code', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const before = await scrape();
    fake.revokeToken(ch.accessToken); // Meta answers 190 from now on

    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: p, text: 'after revocation', id: wamid() }]), {
      secret: ch.appSecret,
    });
    await waitForChannel(w, ch.id, 'failed', (c) => c.status === 'failed');

    const after = await scrape();
    expect(
      value(after, 'wharf_graph_requests_total{endpoint="sendText",code="190"}') -
        value(before, 'wharf_graph_requests_total{endpoint="sendText",code="190"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(after, 'wharf_replies_total{outcome="failed"}') - value(before, 'wharf_replies_total{outcome="failed"}'),
    ).toBeGreaterThanOrEqual(1);
  });
});
