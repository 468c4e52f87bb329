/**
 * The real Graph client against the fake Graph server over real HTTP: credential checks, sends, read receipts
 * and how Meta's failures are classified.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAILURE } from '../lib/errors.js';
import { createGraphClient, GraphError, type GraphClient } from '../lib/graph/graph-client.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';

const GOOD = 'EAAGood-system-user-token-0123456789';
const NO_SCOPE = 'EAANoScope-token-0123456789';
const EXPIRED = 'EAAExpired-token-0123456789';
const NO_DEBUG = 'EAANoDebug-token-0123456789';
const OTHER_WABA = 'EAAOtherWaba-token-0123456789';
const UNKNOWN = 'EAAUnknown-token-never-issued';
const PHONE = '106540352242922';
const WABA = '102290129340398';

let graph: FakeGraph;
let client: GraphClient;

beforeAll(async () => {
  graph = await startFakeGraph({
    tokens: {
      [GOOD]: {},
      [NO_SCOPE]: { scopes: ['business_management', 'whatsapp_business_management'] },
      [EXPIRED]: { expired: true },
      [NO_DEBUG]: { canDebug: false },
      [OTHER_WABA]: { wabaIds: ['999999999999999'] },
    },
    phoneNumbers: { [PHONE]: { displayPhoneNumber: '+1 555-078-3881', verifiedName: 'Wharf Test', wabaId: WABA } },
  });
  client = createGraphClient({ baseUrl: graph.url, version: 'v23.0' });
});

afterAll(async () => {
  await graph.close();
});

beforeEach(() => {
  graph.reset();
  graph.setLatency(0);
});

async function caught(p: Promise<unknown>): Promise<GraphError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphError);
  return err as GraphError;
}

describe('checkCredentials', () => {
  it('accepts good credentials and reports the business number', async () => {
    const res = await client.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: GOOD });
    expect(res).toEqual({ ok: true, displayPhoneNumber: '+1 555-078-3881', verifiedName: 'Wharf Test' });
    const phoneCall = graph.calls.find((c) => c.path === `/v23.0/${PHONE}`);
    expect(phoneCall?.query.fields).toBe('display_phone_number,verified_name');
    expect(phoneCall?.auth).toBe(GOOD);
    expect(graph.calls.find((c) => c.path === '/v23.0/debug_token')?.query.input_token).toBe(GOOD);
  });

  it('names the access_token when Meta cannot parse it', async () => {
    const res = await client.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: UNKNOWN });
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.problem).toBe('bad_token');
    expect(res.reason).toMatch(/access_token was refused by Meta \(code 190/);
    expect(res.reason).toContain('whatsapp_business_messaging');
    expect(res.reason).not.toContain(UNKNOWN);
  });

  it('names the access_token when it has expired', async () => {
    const res = await client.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: EXPIRED });
    expect(res).toMatchObject({ ok: false, problem: 'bad_token' });
    if (!res.ok) expect(res.reason).toMatch(/access_token.*expired/i);
  });

  it('names the phone_number_id when Meta does not know it', async () => {
    const res = await client.checkCredentials({ phoneNumberId: '123', businessAccountId: WABA, accessToken: GOOD });
    expect(res).toMatchObject({ ok: false, problem: 'unknown_phone_number' });
    if (!res.ok) {
      expect(res.reason).toContain('phone_number_id 123');
      expect(res.reason).toContain('code 100');
    }
  });

  it('names whatsapp_business_messaging when the token lacks it', async () => {
    const res = await client.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: NO_SCOPE });
    expect(res).toMatchObject({ ok: false, problem: 'missing_permission' });
    if (!res.ok) {
      expect(res.reason).toContain('lacks the whatsapp_business_messaging permission');
      expect(res.reason).toContain('business_management');
    }
  });

  it('flags a token whose messaging permission covers another WABA only', async () => {
    const res = await client.checkCredentials({
      phoneNumberId: PHONE,
      businessAccountId: WABA,
      accessToken: OTHER_WABA,
    });
    expect(res).toMatchObject({ ok: false, problem: 'missing_permission' });
    if (!res.ok) expect(res.reason).toContain(WABA);
  });

  it('falls back to the phone read when debug_token is refused', async () => {
    const res = await client.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: NO_DEBUG });
    expect(res).toEqual({ ok: true, displayPhoneNumber: '+1 555-078-3881', verifiedName: 'Wharf Test' });
  });

  it('throws a retryable error instead of judging the config when Meta is down', async () => {
    graph.setLatency(300);
    const slow = createGraphClient({ baseUrl: graph.url, version: 'v23.0', timeoutMs: 50 });
    const err = await caught(
      slow.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: GOOD }),
    );
    expect(err.retryable).toBe(true);
    expect(err.failureType).toBeUndefined();
  });

  it('throws a retryable error when Meta cannot be reached at all', async () => {
    const nowhere = createGraphClient({ baseUrl: 'http://127.0.0.1:9', version: 'v23.0', timeoutMs: 2000 });
    const err = await caught(
      nowhere.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: GOOD }),
    );
    expect(err.retryable).toBe(true);
    expect(err.status).toBe(0);
    expect(err.message).not.toContain(GOOD);
  });
});

describe('sendText', () => {
  it('shapes the request as Meta wants it and returns the wamid', async () => {
    const { messageId } = await client.sendText({
      phoneNumberId: PHONE,
      accessToken: GOOD,
      to: '+16505551234',
      body: 'Hello *there*',
      replyTo: 'wamid.IN-1',
    });
    expect(messageId).toMatch(/^wamid\./);
    expect(graph.sent).toHaveLength(1);
    const [sent] = graph.sent;
    expect(sent.wamid).toBe(messageId);
    expect(sent.phoneNumberId).toBe(PHONE);
    expect(sent.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: '16505551234',
      type: 'text',
      text: { body: 'Hello *there*' },
      context: { message_id: 'wamid.IN-1' },
    });
    const call = graph.calls.find((c) => c.method === 'POST');
    expect(call).toMatchObject({ path: `/v23.0/${PHONE}/messages`, auth: GOOD, status: 200 });
  });

  it('accepts numbers without a plus, omits context when not replying, and passes preview_url', async () => {
    await client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '16505551234', body: 'x', previewUrl: true });
    const sent = await graph.waitForSent((s) => s.to === '16505551234', 1000);
    expect(sent.body).not.toHaveProperty('context');
    expect(sent.body.text).toEqual({ body: 'x', preview_url: true });
  });

  it('gives distinct wamids to distinct sends', async () => {
    const a = await client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'a' });
    const b = await client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'b' });
    expect(a.messageId).not.toBe(b.messageId);
  });

  it('turns 131047 into a non-retryable sendRejected with the code', async () => {
    graph.failNext(1, { code: 131047 });
    const err = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'late' }),
    );
    expect(err).toMatchObject({ code: 131047, status: 400, retryable: false, failureType: FAILURE.sendRejected });
    expect(err.title).toBe('Re-engagement message');
    expect(err.details).toMatch(/24 hours/);
    expect(err.fbtraceId).toBeTruthy();
    expect(err.message).toContain('131047');
    expect(graph.sent).toHaveLength(0);
  });

  it('turns 130429 into a retryable rateLimited', async () => {
    graph.failNext(1, { code: 130429 });
    const err = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }),
    );
    expect(err).toMatchObject({ code: 130429, retryable: true, failureType: FAILURE.rateLimited });
  });

  it('treats a 500 as retryable, then succeeds once Meta recovers', async () => {
    graph.failNext(1, { status: 500 });
    const err = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }),
    );
    expect(err.status).toBe(500);
    expect(err.retryable).toBe(true);
    expect(err.failureType).toBeUndefined();
    await expect(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }),
    ).resolves.toHaveProperty('messageId');
  });

  it('treats a non-JSON 502 as retryable', async () => {
    graph.failNext(1, { status: 502, rawBody: '<html><body>Bad Gateway</body></html>' });
    const err = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }),
    );
    expect(err).toMatchObject({ status: 502, code: 0, retryable: true });
  });

  it('treats 131000 as retryable', async () => {
    graph.failNext(1, { code: 131000 });
    const err = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }),
    );
    expect(err).toMatchObject({ code: 131000, retryable: true });
  });

  it('treats a timeout as retryable', async () => {
    graph.setLatency(300);
    const slow = createGraphClient({ baseUrl: graph.url, version: 'v23.0', timeoutMs: 50 });
    const err = await caught(slow.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }));
    expect(err).toMatchObject({ status: 0, retryable: true });
    expect(err.message).toMatch(/50 ms/);
  });

  it('classifies 190 as badToken, 100 on the phone as unknownPhoneNumber, 10 as missingPermission', async () => {
    const bad = await caught(client.sendText({ phoneNumberId: PHONE, accessToken: UNKNOWN, to: '1650555', body: 'x' }));
    expect(bad).toMatchObject({ code: 190, status: 401, retryable: false, failureType: FAILURE.badToken });

    const phone = await caught(
      client.sendText({ phoneNumberId: '42', accessToken: GOOD, to: '16505551234', body: 'x' }),
    );
    expect(phone).toMatchObject({ code: 100, subcode: 33, retryable: false, failureType: FAILURE.unknownPhoneNumber });
    expect(phone.metaType).toBe('GraphMethodException');

    const perm = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: NO_SCOPE, to: '16505551234', body: 'x' }),
    );
    expect(perm).toMatchObject({ code: 10, status: 403, retryable: false, failureType: FAILURE.missingPermission });
  });

  it('treats a rejected parameter as a non-retryable sendRejected', async () => {
    const err = await caught(
      client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+1650555', body: 'x'.repeat(4097) }),
    );
    expect(err).toMatchObject({ code: 100, retryable: false, failureType: FAILURE.sendRejected });
  });

  it('never lets the token into an error message, even when Meta echoes it', async () => {
    const errors: GraphError[] = [];
    graph.failNext(1, { code: 131009, details: `Bad value near ${GOOD} in request` });
    errors.push(
      await caught(client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' })),
    );
    graph.failNext(1, { status: 500, rawBody: `upstream said ${GOOD}` });
    errors.push(
      await caught(client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' })),
    );
    errors.push(
      await caught(client.sendText({ phoneNumberId: PHONE, accessToken: UNKNOWN, to: '16505551234', body: 'x' })),
    );
    graph.setLatency(200);
    const slow = createGraphClient({ baseUrl: graph.url, version: 'v23.0', timeoutMs: 20 });
    errors.push(
      await caught(slow.checkCredentials({ phoneNumberId: PHONE, businessAccountId: WABA, accessToken: GOOD })),
    );
    for (const err of errors) {
      const everything = JSON.stringify({ ...err, message: err.message, stack: err.stack });
      expect(everything).not.toContain(GOOD);
      expect(everything).not.toContain(UNKNOWN);
    }
    expect(errors[0].details).toContain('[redacted]');
  });
});

describe('markRead', () => {
  it('posts a read receipt for the message', async () => {
    await client.markRead({ phoneNumberId: PHONE, accessToken: GOOD, messageId: 'wamid.IN-7' });
    expect(graph.reads).toEqual([{ phoneNumberId: PHONE, messageId: 'wamid.IN-7', at: expect.any(Number) }]);
  });

  it('surfaces injected failures on read receipts only when asked', async () => {
    graph.failNext(1, { code: 131000, on: 'read' });
    await client.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'unaffected' });
    const err = await caught(client.markRead({ phoneNumberId: PHONE, accessToken: GOOD, messageId: 'wamid.IN-8' }));
    expect(err).toMatchObject({ code: 131000, retryable: true, operation: 'markRead' });
  });
});

describe('uploads', () => {
  it('an upload has more time than a call, and more again by its size (a large file on a slow link)', async () => {
    // 100 ms calls: an upload gets 6 × 100 ms, and 1 s more per 256 KiB begun.
    const quick = createGraphClient({ baseUrl: graph.url, version: 'v23.0', timeoutMs: 100 });
    const file = { phoneNumberId: PHONE, accessToken: GOOD, mime: 'image/png', filename: 'a.png' };
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(4096, 7)]);
    graph.setUploadLatency(1200);
    try {
      expect((await quick.uploadMedia({ ...file, bytes: png })).id).toMatch(/^\d+$/);
      graph.setLatency(700); // every answer, so a plain call has no chance
      const err = await caught(
        quick.sendText({ phoneNumberId: PHONE, accessToken: GOOD, to: '+16505551234', body: 'x' }),
      );
      expect(err).toMatchObject({ retryable: true, title: 'no answer within 100 ms' });
    } finally {
      graph.setUploadLatency(0);
      graph.setLatency(0);
    }
  });
});
