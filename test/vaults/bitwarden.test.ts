/**
 * Bitwarden connections through `bw serve`'s Vault Management API: a faithful fake of its published API
 * (test/fakes/bitwarden-serve.ts). Real Temporal, PGlite, HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vaultRegistry } from '../../lib/vaults/index.js';
import { startFakeBitwarden, type FakeBitwarden } from '../fakes/bitwarden-serve.js';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { expectError, uid, vaultItem } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';
import { capturingLogger, cloudSecrets, expectNoSecrets, runEndToEnd } from './scenario.js';

let w: TestWharf;
let graph: FakeGraph;
let bw: FakeBitwarden;
const master = `SECRET-master-${uid()}`;
const logs = capturingLogger();

beforeAll(async () => {
  graph = await startFakeGraph();
  bw = await startFakeBitwarden(master);
  w = await startWharf({ graphUrl: graph.url, log: logs.log });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await graph?.close();
  await bw?.close();
});

describe('a Bitwarden (bw serve) connection', () => {
  it('walks the whole path: connect (unlocking), list, configure, answer, rotate, outage, recovery — and leaks nothing', async () => {
    const s = cloudSecrets();
    const item = bw.addLogin(
      'Meta WhatsApp',
      { username: 'wharf', password: s.accessToken },
      { verify_token: s.verifyToken, app_secret: s.appSecret },
    );
    const id = `bw-${uid()}`;
    const ref = (field: string) => ({ vault: id, item, field });

    const seen = await runEndToEnd(
      w,
      graph,
      {
        connection: {
          id,
          kind: 'bitwarden',
          settings: { url: bw.url, password: await vaultItem(w, `bw-${uid()}`, master), writable: true },
        },
        refs: { access_token: ref('password'), verify_token: ref('verify_token'), app_secret: ref('app_secret') },
        rotatesBehindWharf: false,
        rotate: async (value) => {
          const r = await w.api('PUT', `/api/vaults/${id}/items/${item}`, { fields: { password: value } });
          expect(r.status, JSON.stringify(r.data)).toBe(200);
          expect(r.data).toEqual({
            vault: id,
            item,
            name: 'Meta WhatsApp',
            fields: ['username', 'password', 'verify_token', 'app_secret'],
          });
        },
        down: () => bw.stop(),
        up: () => bw.start(),
        downReason: /unreachable \(ECONNREFUSED\)/,
      },
      s,
    );
    expect(bw.unlocks).toBeGreaterThanOrEqual(1);
    expectNoSecrets([...seen, ...logs.lines], [s.accessToken, s.verifyToken, s.appSecret, s.rotatedToken, master]);
  }, 180_000);

  it('unlocks again after bw serve was locked, and says so when the master password is wrong', async () => {
    const item = bw.addLogin('Key', { password: 'SECRET-bw-value' });
    const id = `bw-${uid()}`;
    const bad = await w.api('POST', '/api/vaults', {
      id,
      kind: 'bitwarden',
      settings: { url: bw.url, password: await vaultItem(w, `bw-${uid()}`, 'SECRET-wrong-master') },
    });
    // bw serve is unlocked by the test before: the check tries the password anyway.
    expectError(bad, 422, 'not_possible_now');
    expect(bad.data.error.message).toMatch(new RegExp(`vault '${id}' refused Wharf's credentials \\(unlock refused`));
    expect(JSON.stringify(bad.data)).not.toContain('SECRET-wrong-master');

    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'bitwarden',
          settings: { url: bw.url, password: await vaultItem(w, `bw-${uid()}`, master) },
        })
      ).status,
    ).toBe(201);
    bw.lock();
    expect(await vaultRegistry(w.store).resolve({ vault: id, item, field: 'password' })).toBe('SECRET-bw-value');
    const missing = await w.api('GET', `/api/vaults/${id}/items`);
    expect(missing.status).toBe(200);
    expect(JSON.stringify(missing.data)).not.toContain('SECRET-bw-value');
  });

  it('names a missing item and a missing field', async () => {
    const item = bw.addLogin('Other', { password: 'SECRET-other' });
    const id = `bw-${uid()}`;
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'bitwarden',
          settings: { url: bw.url, password: await vaultItem(w, `bw-${uid()}`, master) },
        })
      ).status,
    ).toBe(201);
    const registry = vaultRegistry(w.store);
    await expect(
      registry.resolve({ vault: id, item: '00000000-0000-4000-8000-000000000000', field: 'password' }),
    ).rejects.toThrow(`vault '${id}' has no such item or field (no item 00000000-0000-4000-8000-000000000000)`);
    await expect(registry.resolve({ vault: id, item, field: 'api' })).rejects.toThrow(
      `vault '${id}' has no such item or field (item ${item} has no field 'api')`,
    );
  });
});
