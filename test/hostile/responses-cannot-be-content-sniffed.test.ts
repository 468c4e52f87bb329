/**
 * Attack: content sniffing. The verification challenge echoes `hub.challenge` from the query as text; a
 * browser that guessed HTML from it would run a script someone put in a link. Every response — the
 * challenge, API answers, errors, `/healthz` — carries `X-Content-Type-Options: nosniff`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, verify, type CloudSetup } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;
let ch: CloudSetup;
beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
  ch = await cloudChannel(w, fake, { stage: 'configured' });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

describe('X-Content-Type-Options: nosniff', () => {
  it('on the verification challenge, which stays text/plain', async () => {
    const r = await verify(w, ch.id, ch.verifyToken, '<script>alert(1)</script>');
    expect(r.status).toBe(200);
    expect(r.data).toBe('<script>alert(1)</script>');
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it.each([
    ['GET', '/healthz', false],
    ['GET', '/api/channels', true],
    ['GET', '/api/channels', false],
    ['GET', '/api/nowhere', true],
    ['POST', '/webhooks/whatsapp/ch_unknown', false],
    ['GET', '/webhooks/whatsapp/%E0%A4%A', false],
  ])('on %s %s (auth: %s), answers and errors alike', async (method, path, auth) => {
    const r = await w.api(method, path, method === 'POST' ? {} : undefined, { auth });
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
