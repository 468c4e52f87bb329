/**
 * "Outbound works, inbound doesn't" made detectable: the Graph client reads and writes a WhatsApp Business
 * Account's subscribed apps against the fake Graph server over real HTTP, and a channel's diagnostics turn
 * what it found (and a quiet webhook) into warnings an operator can act on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diagnosticWarnings, QUIET_WEBHOOK_HOURS } from '../api/diagnostics.router.js';
import { newChannelState } from '../api/channel-gateway.js';
import { createGraphClient, GraphError, type GraphClient } from '../lib/graph/graph-client.js';
import type { ChannelDiagnostics } from '../lib/types.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';

const TOKEN = 'EAASubscribe-token-0123456789';
const MESSAGING_ONLY = 'EAAMessagingOnly-token-0123456789';
const PHONE = '106540352242999';
const WABA = '102290129340999';

let graph: FakeGraph;
let client: GraphClient;

beforeAll(async () => {
  graph = await startFakeGraph({
    tokens: { [TOKEN]: {}, [MESSAGING_ONLY]: { scopes: ['whatsapp_business_messaging'] } },
    phoneNumbers: { [PHONE]: { displayPhoneNumber: '+1 555-078-0000', wabaId: WABA } },
  });
  client = createGraphClient({ baseUrl: graph.url, version: 'v23.0' });
});
afterAll(async () => {
  await graph.close();
});

describe('Graph client: subscribed apps', () => {
  it('reads none on an unsubscribed account, subscribes, then reads the app', async () => {
    graph.setSubscribedApps(WABA, []);
    expect(await client.subscribedApps({ businessAccountId: WABA, accessToken: TOKEN })).toEqual([]);
    await client.subscribeApp({ businessAccountId: WABA, accessToken: TOKEN });
    const apps = await client.subscribedApps({ businessAccountId: WABA, accessToken: TOKEN });
    expect(apps).toHaveLength(1);
    expect(apps[0]).toMatchObject({ id: expect.any(String), name: 'Wharf Fake App' });
    const call = graph.calls.find((c) => c.method === 'POST' && c.path === `/v23.0/${WABA}/subscribed_apps`);
    expect(call?.status).toBe(200);
  });

  it('a token without whatsapp_business_management is refused with Meta’s permission error', async () => {
    const err = await client
      .subscribedApps({ businessAccountId: WABA, accessToken: MESSAGING_ONLY })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).code).toBe(200);
    expect((err as GraphError).message).not.toContain(MESSAGING_ONLY);
  });

  it('an unknown account is Meta’s unknown-object error, not an empty list', async () => {
    const err = await client
      .subscribedApps({ businessAccountId: '999000999000999', accessToken: TOKEN })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).code).toBe(100);
  });
});

describe('diagnostics warnings', () => {
  const zero: ChannelDiagnostics = {
    lastWebhookAt: null,
    lastVerificationAt: null,
    verificationsRefused: 0,
    badSignatureEvents: 0,
    lastSendError: null,
  };
  const cloud = { ...newChannelState({ id: 'ch_test', provider: 'whatsapp_cloud', agent: 'echo' }), configured: true };
  const now = Date.parse('2026-12-02T12:00:00Z');

  it.each([
    ['nothing checked yet', cloud, zero, []],
    [
      'no app subscribed',
      cloud,
      { ...zero, subscribedApps: { count: 0, checkedAt: '2026-12-02T11:00:00Z' } },
      [/No app is subscribed/],
    ],
    ['an app subscribed', cloud, { ...zero, subscribedApps: { count: 1, checkedAt: '2026-12-02T11:00:00Z' } }, []],
    [
      'connected, last webhook 7 h ago',
      { ...cloud, status: 'connected' as const },
      { ...zero, lastWebhookAt: '2026-12-02T05:00:00Z' },
      [new RegExp(`No webhook from Meta in 7 hours`)],
    ],
    [
      'connected, last webhook 1 h ago',
      { ...cloud, status: 'connected' as const },
      { ...zero, lastWebhookAt: '2026-12-02T11:00:00Z' },
      [],
    ],
    ['connected, never any webhook', { ...cloud, status: 'connected' as const }, zero, []],
    [
      'personal channels have no Meta webhooks',
      { ...cloud, provider: 'whatsapp_user' as const, status: 'connected' as const },
      { ...zero, lastWebhookAt: '2026-12-01T00:00:00Z' },
      [],
    ],
  ])('%s', (_name, ch, d, expected) => {
    const got = diagnosticWarnings(ch, d, now);
    expect(got).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(got[i]).toMatch(re));
  });

  it(`the quiet-webhook threshold is ${QUIET_WEBHOOK_HOURS} hours`, () => {
    const ch = { ...cloud, status: 'connected' as const };
    const at = (h: number) => new Date(now - h * 3_600_000 + 1000).toISOString();
    expect(diagnosticWarnings(ch, { ...zero, lastWebhookAt: at(QUIET_WEBHOOK_HOURS) }, now)).toEqual([]);
    expect(diagnosticWarnings(ch, { ...zero, lastWebhookAt: at(QUIET_WEBHOOK_HOURS + 1) }, now)).toHaveLength(1);
  });
});
