/**
 * Attack: anything at all, on every route. fast-check sends arbitrary paths (malformed %-escapes, NUL and
 * other control characters, very long segments) and arbitrary bodies (random JSON, a 1 MB field, strings
 * that are not JSON, wrong content types) with every method to `/api/*`, `/webhooks/whatsapp/*` and
 * `/healthz` of an in-process Wharf; signed webhook bodies of every shape go to a paired channel too. No
 * answer is a 5xx, every 4xx has the error body, and afterwards the paired sender's next message is answered.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundPayload, signPayload, startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, echoRoundTrip, phone, type CloudSetup } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;
/** Paired and never named by the fuzzer's paths: the channel whose next message must still be answered. */
let paired: CloudSetup;
let pairedSender: string;
/** Configured and named by the fuzzer's paths (every method, so it may be deleted on the way). */
let victim: CloudSetup;

beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
  pairedSender = phone();
  paired = await cloudChannel(w, fake, { pair: [pairedSender] });
  victim = await cloudChannel(w, fake, { stage: 'configured' });
}, 120_000);
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** Route shapes with `{}` where a segment goes (SPEC §4 and the personal-account routes). */
const ROUTES = [
  '/healthz',
  '/api/system',
  '/api/providers',
  '/api/spaces',
  '/api/agents',
  '/api/agents/{}',
  '/api/vaults',
  '/api/vaults/{}/items',
  '/api/vaults/local/items',
  '/api/policies',
  '/api/policies/check',
  '/api/signals/wait',
  '/api/channels',
  '/api/channels/{}',
  '/api/channels/{}/config',
  '/api/channels/{}/pair',
  '/api/channels/{}/paired/{}',
  '/api/channels/{}/disconnect',
  '/api/channels/{}/reconnect',
  '/api/channels/{}/messages',
  '/api/channels/{}/qr',
  '/api/channels/{}/qr/refresh',
  '/api/channels/{}/link-code',
  '/webhooks/whatsapp/{}',
  '/api/{}',
  '/{}',
];

/** A path segment as it goes on the wire: valid ids, junk, malformed escapes, control characters, long runs. */
const segment = (): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constant('VICTIM'),
    fc.constantFrom(
      'local',
      'echo',
      'ch_aaaaaaaaaa',
      '+15551234567',
      '100%25',
      '%',
      '%E0%A4%A',
      '%00',
      '%ZZ',
      '%C0%AF',
      '..',
      '.',
      '%2e%2e',
      '%2F',
      '%u0041',
    ),
    fc.string({ maxLength: 40 }).map(encodeURIComponent),
    fc
      .string({ unit: 'binary', maxLength: 20 })
      .map((s) => encodeURIComponent(s).replace(/%(..)/g, (m) => (Math.random() < 0.3 ? '%' : m))),
    fc
      .array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 })
      .map((bytes) => bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
    // Long, but two of them stay under Node's 16 KB limit for a request head (over it: see the next file).
    fc.integer({ min: 1000, max: 7000 }).map((n) => 'a'.repeat(n)),
  );

const query = (): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constant(''),
    fc.constantFrom(
      '?limit=-1',
      '?limit=1e9',
      '?status=%00',
      '?unbound=maybe',
      '?format=png',
      '?hub.mode=subscribe&hub.verify_token=x&hub.challenge=%00',
      '?a=%E0%A4%A',
      '?=&&=',
    ),
    fc
      .dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), { maxKeys: 3 })
      .map((d) => `?${new URLSearchParams(d)}`),
  );

/** A body and the content type it is sent with. */
const body = (): fc.Arbitrary<{ type?: string; data?: string }> =>
  fc.oneof(
    fc.constant({}),
    fc.record({
      type: fc.constant('application/json'),
      data: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
    }),
    fc.record({
      type: fc.constantFrom(
        'application/json',
        'text/plain',
        'application/cedar',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'image/png',
        'application/json; charset=latin1',
        'x/\u00e9',
      ),
      data: fc.string({ unit: 'binary', maxLength: 200 }),
    }),
    fc.record({
      type: fc.constant('application/json'),
      data: fc.constantFrom(
        '{',
        '{"a":',
        '[1,2',
        'nul',
        '"\\ud800"',
        '{"policies": "\\u0000"}',
        '{"__proto__": {"x": 1}}',
        '{"space": "a\\u0000", "timeoutSeconds": 0}',
      ),
    }),
    fc.record({
      type: fc.constantFrom('application/json', 'text/plain'),
      data: fc
        .constantFrom('name', 'policies', 'space', 'text')
        .map((k) => JSON.stringify({ [k]: 'x'.repeat(1_000_000), provider: 'whatsapp_cloud', agent: 'echo' })),
    }),
  );

/** Asserts the answer: never a 5xx; a 4xx carries the error body. */
function expectSane(what: string, status: number, text: string): void {
  expect(status, `${what} → ${status} ${text.slice(0, 300)}`).toBeLessThan(500);
  if (status >= 400) {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    expect(parsed.error, `${what} → ${status} ${text.slice(0, 300)}`).toEqual({
      code: expect.stringMatching(/^[a-z_]+$/),
      message: expect.any(String),
      details: expect.any(Array),
    });
  }
}

/**
 * fetch, once more when a kept-alive socket was closed by the server just as it was reused (the server's
 * keep-alive timeout racing the next request on a loaded machine; fetch retries only idempotent requests).
 */
async function fetchOnce(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (code !== 'ECONNRESET' && code !== 'UND_ERR_SOCKET') throw err;
    return fetch(url, init);
  }
}

async function send(method: string, path: string, b: { type?: string; data?: string }, auth: boolean): Promise<void> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = `Bearer ${w.token}`;
  if (b.type) headers['content-type'] = b.type;
  const withBody = b.data !== undefined && method !== 'GET';
  const r = await fetchOnce(w.url + path, {
    method,
    headers,
    body: withBody ? b.data : undefined,
    signal: AbortSignal.timeout(20_000),
  });
  expectSane(`${method} ${path.slice(0, 200)} (${b.type ?? 'no body'})`, r.status, await r.text());
}

describe('arbitrary requests on every route', () => {
  it('paths × methods × bodies: never a 5xx, always the error body on a 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        fc.constantFrom(...ROUTES),
        fc.array(segment(), { minLength: 2, maxLength: 2 }),
        query(),
        body(),
        fc.boolean(),
        async (method, route, segs, q, b, auth) => {
          let i = 0;
          const path = route.replace(/\{\}/g, () => segs[i++ % segs.length].replace('VICTIM', victim.id)) + q;
          // A long-poll with a real space would legitimately wait; the fuzzer only names made-up spaces.
          await send(method, path, b, auth);
        },
      ),
      { numRuns: 400 },
    );
  }, 120_000);

  it('webhook posts of every shape, unsigned, badly signed and signed: never a 5xx', async () => {
    const payloads = fc.oneof(
      fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v) ?? 'null'),
      fc.string({ unit: 'binary', maxLength: 300 }),
      // Meta-shaped, from strangers, with any text (control characters, lone surrogates): admission decides.
      fc
        .record({
          text: fc.oneof(
            fc.string({ unit: 'binary', maxLength: 200 }),
            fc.constant('\ud800'),
            fc.constant('\u0000'),
            fc.constant('a'.repeat(65_536)),
          ),
          from: fc.constant(null),
        })
        .map(({ text }) => JSON.stringify(inboundPayload(paired.target, [{ from: phone(), text }]))),
    );
    await fc.assert(
      fc.asyncProperty(
        payloads,
        fc.constantFrom('none', 'bad', 'good'),
        fc.constantFrom('paired', 'victim'),
        async (raw, signature, target) => {
          const ch = target === 'paired' ? paired : victim;
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (signature === 'bad') headers['x-hub-signature-256'] = signPayload(raw, 'not-the-secret');
          if (signature === 'good') headers['x-hub-signature-256'] = signPayload(raw, ch.appSecret);
          const r = await fetchOnce(`${w.url}/webhooks/whatsapp/${ch.id}`, {
            method: 'POST',
            headers,
            body: raw,
            signal: AbortSignal.timeout(20_000),
          });
          expectSane(`POST webhook (${signature}) ${raw.slice(0, 100)}`, r.status, await r.text());
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it('afterwards the process is healthy and the paired sender is answered', async () => {
    expect((await w.api('GET', '/healthz', undefined, { auth: false })).status).toBe(200);
    await echoRoundTrip(w, fake, paired, pairedSender, 'still here after the fuzzing');
  }, 60_000);
});
