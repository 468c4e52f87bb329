/**
 * Console sessions over real HTTP, without a browser: the admin token for an HttpOnly SameSite=Strict cookie,
 * expiry, Log out, and the Origin rule that refuses cross-site use of the cookie. Hostile inputs get the
 * usual error shape, never a 5xx.
 */
import { createServer, type Server } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorHandler } from '../api/errors.js';
import { createSessionAuth } from '../api/session-auth.js';
import { createLogger } from '../lib/logger.js';

const TOKEN = 'admin-token-for-session-tests-0123';
let server: Server;
let base: string;

beforeAll(async () => {
  const auth = createSessionAuth({ adminToken: TOKEN, publicUrl: 'https://wharf.example.com', ttlMs: 1500 });
  const app = express();
  const api = express.Router();
  api.use('/session', auth.router);
  api.use(auth.authenticate);
  api.get('/thing', (_req, res) => void res.json({ ok: true }));
  api.post('/thing', (_req, res) => void res.json({ changed: true }));
  app.use('/api', api);
  app.use(errorHandler(createLogger('silent')));
  server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const own = (): Record<string, string> => ({ origin: base, 'content-type': 'application/json' });

async function login(): Promise<string> {
  const r = await fetch(`${base}/api/session`, {
    method: 'POST',
    headers: own(),
    body: JSON.stringify({ token: TOKEN }),
  });
  expect(r.status).toBe(200);
  const cookie = r.headers.get('set-cookie') ?? '';
  expect(cookie).toMatch(/^wharf_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=1$/);
  return cookie.split(';')[0];
}

describe('console sessions', () => {
  it('the token buys a cookie that reads and, from the own origin, writes; Log out ends it', async () => {
    const cookie = await login();
    expect((await fetch(`${base}/api/thing`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${base}/api/thing`, { method: 'POST', headers: { cookie, origin: base } })).status).toBe(200);
    // The configured public URL is this server too (behind a proxy the Host header may differ).
    expect(
      (await fetch(`${base}/api/thing`, { method: 'POST', headers: { cookie, origin: 'https://wharf.example.com' } }))
        .status,
    ).toBe(200);
    const out = await fetch(`${base}/api/session`, { method: 'DELETE', headers: { cookie, origin: base } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
    expect((await fetch(`${base}/api/thing`, { headers: { cookie } })).status).toBe(401);
  });

  it('a session expires', async () => {
    const cookie = await login();
    expect((await fetch(`${base}/api/session`, { headers: { cookie } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1600));
    const r = await fetch(`${base}/api/thing`, { headers: { cookie } });
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  });

  it.each([
    ['another port of the same host', (b: string) => ({ origin: b.replace(/:\d+$/, ':1') })],
    ['another site', () => ({ origin: 'https://evil.example' })],
    ['no Origin at all', () => ({})],
    ['a same-site fetch that says so', (b: string) => ({ origin: b, 'sec-fetch-site': 'same-site' })],
  ])('a write with the cookie from %s is refused with 403', async (_name, headers) => {
    const cookie = await login();
    const r = await fetch(`${base}/api/thing`, { method: 'POST', headers: { cookie, ...headers(base) } });
    expect(r.status).toBe(403);
    expect(await r.json()).toMatchObject({
      error: { code: 'forbidden', message: expect.stringContaining('Cross-site') },
    });
  });

  it('the bearer token needs no Origin; a wrong one is 401', async () => {
    expect(
      (await fetch(`${base}/api/thing`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status,
    ).toBe(200);
    expect((await fetch(`${base}/api/thing`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await fetch(`${base}/api/thing`, { headers: { cookie: 'wharf_session=forged' } })).status).toBe(401);
  });

  it.each([
    ['a wrong token', JSON.stringify({ token: 'wrong' }), own, 401, 'unauthorized'],
    ['no token', JSON.stringify({}), own, 400, 'validation_failed'],
    ['broken JSON', '{"token":', own, 400, 'invalid_json'],
    ['a huge body', JSON.stringify({ token: 'x'.repeat(100_000) }), own, 413, 'too_large'],
    [
      'a login from another site',
      JSON.stringify({ token: TOKEN }),
      () => ({ origin: 'https://evil.example', 'content-type': 'application/json' }),
      403,
      'forbidden',
    ],
  ])('logging in with %s is refused cleanly', async (_name, body, headers, status, code) => {
    const r = await fetch(`${base}/api/session`, { method: 'POST', headers: headers(), body });
    expect(r.status).toBe(status);
    expect(await r.json()).toMatchObject({ error: { code } });
    expect(r.headers.get('set-cookie')).toBeNull();
  });
});
