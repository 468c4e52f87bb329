/**
 * 1Password connections through a Connect server: a faithful fake of the published Connect API
 * (test/fakes/onepassword-connect.ts). Real Temporal, PGlite, HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vaultRegistry } from '../../lib/vaults/index.js';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { startFakeConnect, type FakeConnect } from '../fakes/onepassword-connect.js';
import {
  bare,
  cloudChannel,
  echoRoundTrip,
  expectError,
  getChannel,
  phone,
  sendText,
  uid,
  vaultItem,
  waitForChannel,
} from '../support/cloud.js';
import { startFakeCompletions } from '../fakes/chat-completions-server.js';
import { startWharf, type TestWharf } from '../support/wharf.js';
import { capturingLogger, cloudSecrets, expectNoSecrets, runEndToEnd } from './scenario.js';

let w: TestWharf;
let graph: FakeGraph;
let connect: FakeConnect;
const logs = capturingLogger();

beforeAll(async () => {
  graph = await startFakeGraph();
  connect = await startFakeConnect();
  w = await startWharf({ graphUrl: graph.url, log: logs.log });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await graph?.close();
  await connect?.close();
});

describe('a 1Password Connect connection', () => {
  it('walks the whole path: connect, list, configure, answer, rotate, outage, recovery — and leaks nothing', async () => {
    const s = cloudSecrets();
    const vaultId = connect.addVault('Operations');
    const itemId = connect.addItem(vaultId, 'Meta WhatsApp', {
      access_token: s.accessToken,
      verify_token: s.verifyToken,
      app_secret: s.appSecret,
    });
    const token = `SECRET-connect-${uid()}`;
    connect.addToken(token, [vaultId], true);
    const id = `op-${uid()}`;
    const item = `${vaultId}/${itemId}`;
    const ref = (field: string) => ({ vault: id, item, field });

    const seen = await runEndToEnd(
      w,
      graph,
      {
        connection: {
          id,
          kind: 'onepassword',
          settings: { connectUrl: connect.url, token: await vaultItem(w, `op-${uid()}`, token), writable: true },
        },
        refs: { access_token: ref('access_token'), verify_token: ref('verify_token'), app_secret: ref('app_secret') },
        rotatesBehindWharf: false,
        rotate: async (value) => {
          const r = await w.api('PUT', `/api/vaults/${id}/items/${item}`, { fields: { access_token: value } });
          expect(r.status, JSON.stringify(r.data)).toBe(200);
          expect(r.data).toEqual({
            vault: id,
            item,
            name: 'Meta WhatsApp',
            fields: ['access_token', 'verify_token', 'app_secret'],
          });
        },
        down: () => connect.stop(),
        up: () => connect.start(),
        downReason: /unreachable \(ECONNREFUSED\)/,
      },
      s,
    );
    expectNoSecrets([...seen, ...logs.lines], [s.accessToken, s.verifyToken, s.appSecret, s.rotatedToken, token]);
  }, 180_000);

  it('sees a value changed in 1Password itself within the value cache time', async () => {
    const vaultId = connect.addVault('Edits');
    const itemId = connect.addItem(vaultId, 'Key', { credential: 'SECRET-one' });
    const token = `SECRET-connect-${uid()}`;
    connect.addToken(token, [vaultId]);
    const id = `op-${uid()}`;
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'onepassword',
          settings: { connectUrl: connect.url, token: await vaultItem(w, `op-${uid()}`, token) },
        })
      ).status,
    ).toBe(201);
    const ref = { vault: id, item: `${vaultId}/${itemId}`, field: 'credential' };
    const registry = vaultRegistry(w.store);
    expect(await registry.resolve(ref)).toBe('SECRET-one');
    connect.setField(vaultId, itemId, 'credential', 'SECRET-two');
    // Served from memory at most VALUE_CACHE_MS (5 s); after that the new value.
    await new Promise((r) => setTimeout(r, 5200));
    expect(await registry.resolve(ref)).toBe('SECRET-two');
  });

  it('refuses a revoked or wrong Connect token with a reason, and a token without write access cannot rotate', async () => {
    const vaultId = connect.addVault('Locked');
    const itemId = connect.addItem(vaultId, 'Key', { credential: 'SECRET-locked' });
    const id = `op-${uid()}`;
    const bad = await w.api('POST', '/api/vaults', {
      id,
      kind: 'onepassword',
      settings: { connectUrl: connect.url, token: await vaultItem(w, `op-${uid()}`, 'SECRET-wrong-token') },
    });
    expectError(bad, 422, 'not_possible_now');
    expect(bad.data.error.message).toBe(
      `The connection was not saved: vault '${id}' refused Wharf's credentials (HTTP 401 for the vault list: the Connect token is invalid or revoked).`,
    );
    expect(JSON.stringify(bad.data)).not.toContain('SECRET-wrong-token');

    const token = `SECRET-connect-${uid()}`;
    connect.addToken(token, [vaultId], false);
    // Marked writable, but the token may only read: the vault's 403 comes back as Wharf's reason.
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'onepassword',
          settings: { connectUrl: connect.url, token: await vaultItem(w, `op-${uid()}`, token), writable: true },
        })
      ).status,
    ).toBe(201);
    const rotate = await w.api('PUT', `/api/vaults/${id}/items/${vaultId}/${itemId}`, {
      fields: { credential: 'SECRET-new' },
    });
    expectError(rotate, 502, 'provider_refused');
    expect(rotate.data.error.message).toMatch(/denied access \(HTTP 403/);
    expect(JSON.stringify(rotate.data)).not.toContain('SECRET-new');

    connect.revokeToken(token);
    const items = await w.api('GET', `/api/vaults/${id}/items`);
    expectError(items, 502, 'provider_refused');
    expect(items.data.error.message).toMatch(/refused Wharf's credentials \(HTTP 401/);
    const missing = await w.api('GET', `/api/vaults/nope-${uid()}/items`);
    expectError(missing, 404, 'not_found');
  });

  it('creates a new credential in 1Password and deletes it', async () => {
    const vaultId = connect.addVault('New');
    const token = `SECRET-connect-${uid()}`;
    connect.addToken(token, [vaultId], true);
    const id = `op-${uid()}`;
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'onepassword',
          settings: { connectUrl: connect.url, token: await vaultItem(w, `op-${uid()}`, token), writable: true },
        })
      ).status,
    ).toBe(201);
    const created = await w.api('POST', `/api/vaults/${id}/items`, {
      name: 'LLM key',
      kind: 'api_key',
      fields: { value: 'SECRET-llm' },
    });
    expect(created.status, JSON.stringify(created.data)).toBe(201);
    expect(created.data).toMatchObject({ vault: id, name: 'LLM key', fields: ['value'] });
    expect(JSON.stringify(created.data)).not.toContain('SECRET-llm');
    expect(await vaultRegistry(w.store).resolve({ vault: id, item: created.data.item, field: 'value' })).toBe(
      'SECRET-llm',
    );
    expect((await w.api('DELETE', `/api/vaults/${id}/items/${created.data.item}`)).status).toBe(204);
    expect((await w.api('GET', `/api/vaults/${id}/items`)).data).toEqual([]);
  });

  it("an agent's apiKey in 1Password: answers, names field and vault on the channel while Connect is down, recovers", async () => {
    const apiKey = `SECRET-llm-${uid()}`;
    const llm = await startFakeCompletions({ apiKeys: [apiKey] });
    try {
      const vaultId = connect.addVault('LLM');
      const itemId = connect.addItem(vaultId, 'LLM key', { credential: apiKey });
      const token = `SECRET-connect-${uid()}`;
      connect.addToken(token, [vaultId]);
      const id = `op-${uid()}`;
      expect(
        (
          await w.api('POST', '/api/vaults', {
            id,
            kind: 'onepassword',
            settings: { connectUrl: connect.url, token: await vaultItem(w, `op-${uid()}`, token) },
          })
        ).status,
      ).toBe(201);
      const agent = `op-agent-${uid()}`;
      const created = await w.api('POST', '/api/agents', {
        id: agent,
        kind: 'openai',
        baseUrl: llm.baseUrl,
        model: 'm',
        apiKey: { vault: id, item: `${vaultId}/${itemId}`, field: 'credential' },
      });
      expect(created.status, JSON.stringify(created.data)).toBe(201);
      const me = phone();
      const ch = await cloudChannel(w, graph, { agent, pair: [me] });
      await echoRoundTrip(w, graph, ch, me, 'first', 'You said: first');

      await connect.stop();
      try {
        await new Promise((r) => setTimeout(r, 5500));
        await sendText(w, ch, me, 'second');
        const failing = await waitForChannel(w, ch.id, 'the vault reason', (c) =>
          c.statusReason.startsWith(`agent ${agent} apiKey: vault '${id}' unreachable`),
        );
        expect(failing.status).toBe('connected');
      } finally {
        await connect.start();
      }
      await graph.waitForSent((x) => x.to === bare(me) && x.text === 'You said: second', 30_000);
      await waitForChannel(
        w,
        ch.id,
        'the reason cleared',
        (c) => c.statusReason === `agent ${agent} apiKey: vault '${id}' answers again.`,
      );
      expectNoSecrets([...logs.lines, JSON.stringify(await getChannel(w, ch.id))], [apiKey, token]);
    } finally {
      await llm.close();
    }
  }, 120_000);
});
