/**
 * HashiCorp Vault connections against a faithful fake of Vault's HTTP API (test/fakes/hashicorp-vault.ts:
 * no `vault` or OpenBao binary installs from the registries reachable here). Real Temporal, PGlite, HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VALUE_CACHE_MS, vaultRegistry, VaultError } from '../../lib/vaults/index.js';
import { inboundPayload, startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { startFakeVault, type FakeVault } from '../fakes/hashicorp-vault.js';
import {
  digits,
  expectError,
  getChannel,
  phone,
  postWebhook,
  uid,
  vaultItem,
  waitFor,
  wamid,
} from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';
import { capturingLogger, cloudSecrets, expectNoSecrets, runEndToEnd } from './scenario.js';

let w: TestWharf;
let graph: FakeGraph;
let vault: FakeVault;
const logs = capturingLogger();

beforeAll(async () => {
  graph = await startFakeGraph();
  vault = await startFakeVault();
  w = await startWharf({ graphUrl: graph.url, log: logs.log });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await graph?.close();
  await vault?.close();
});

/** Stores `value` in the local vault and returns a ref to it (a connection's own secret). */
const localRef = (value: string) => vaultItem(w, `hc-${uid()}`, value);

describe('a HashiCorp Vault connection (KV v2, AppRole, namespace)', () => {
  it('walks the whole path: connect, list, configure, answer, rotate, outage, recovery — and leaks nothing', async () => {
    const s = cloudSecrets();
    const ns = `team-${uid()}`;
    const mount = `kv-${uid()}`;
    vault.mount(mount, 2, ns);
    vault.put(
      mount,
      'meta/whatsapp',
      { access_token: s.accessToken, verify_token: s.verifyToken, app_secret: s.appSecret },
      ns,
    );
    const roleId = `role-${uid()}`;
    const secretId = `SECRET-approle-${uid()}`;
    vault.addAppRole(roleId, secretId, { ttl: 3600, renewable: true, write: true, namespace: ns });
    const id = `ops-${uid()}`;
    const ref = (field: string) => ({ vault: id, item: 'meta/whatsapp', field });

    const seen = await runEndToEnd(
      w,
      graph,
      {
        connection: {
          id,
          kind: 'hashicorp',
          settings: {
            address: vault.url,
            mount,
            kvVersion: 2,
            namespace: ns,
            writable: true,
            auth: { roleId, secretId: await localRef(secretId) },
          },
        },
        refs: { access_token: ref('access_token'), verify_token: ref('verify_token'), app_secret: ref('app_secret') },
        rotatesBehindWharf: false,
        rotate: async (value) => {
          const r = await w.api('PUT', `/api/vaults/${id}/items/meta/whatsapp`, { fields: { access_token: value } });
          expect(r.status, JSON.stringify(r.data)).toBe(200);
          expect(r.data).toEqual({
            vault: id,
            item: 'meta/whatsapp',
            name: 'meta/whatsapp',
            fields: ['access_token', 'verify_token', 'app_secret'],
          });
        },
        down: () => vault.stop(),
        up: () => vault.start(),
        downReason: /unreachable \(ECONNREFUSED\)/,
      },
      s,
    );
    expectNoSecrets([...seen, ...logs.lines], [s.accessToken, s.verifyToken, s.appSecret, s.rotatedToken, secretId]);
  }, 180_000);
});

describe('HashiCorp Vault: KV v1, token auth, renewal and clear reasons', () => {
  it('reads KV v1 with a token, and a wrong token is refused at connect time with a reason (422)', async () => {
    const mount = `v1-${uid()}`;
    vault.mount(mount, 1);
    vault.put(mount, 'slack/bot', { token: 'SECRET-v1-value' });
    const token = `SECRET-token-${uid()}`;
    vault.addToken(token, {});
    const id = `v1-${uid()}`;

    const bad = await w.api('POST', '/api/vaults', {
      id,
      kind: 'hashicorp',
      settings: { address: vault.url, mount, kvVersion: 1, auth: { token: await localRef('SECRET-not-a-token') } },
    });
    expectError(bad, 422, 'not_possible_now');
    expect(bad.data.error.message).toMatch(new RegExp(`vault '${id}' refused Wharf's credentials`));
    expect(JSON.stringify(bad.data)).not.toContain('SECRET-not-a-token');

    const ok = await w.api('POST', '/api/vaults', {
      id,
      kind: 'hashicorp',
      settings: { address: vault.url, mount, kvVersion: 1, auth: { token: await localRef(token) } },
    });
    expect(ok.status, JSON.stringify(ok.data)).toBe(201);
    expect(ok.data.writable).toBe(false);
    const items = await w.api('GET', `/api/vaults/${id}/items`);
    expect(items.data).toEqual([{ item: 'slack/bot', name: 'slack/bot', fields: ['token'] }]);
    expect(await vaultRegistry(w.store).resolve({ vault: id, item: 'slack/bot', field: 'token' })).toBe(
      'SECRET-v1-value',
    );
    // Read-only by default: rotation is refused with what to do.
    const rotate = await w.api('PUT', `/api/vaults/${id}/items/slack/bot`, { fields: { token: 'x' } });
    expectError(rotate, 422, 'not_possible_now');
  });

  it('renews a renewable AppRole token once two thirds of its lease are gone', async () => {
    const mount = `renew-${uid()}`;
    vault.mount(mount, 2);
    vault.put(mount, 'a', { k: 'v' });
    const roleId = `role-${uid()}`;
    vault.addAppRole(roleId, 'SECRET-renew-secret', { ttl: 3, renewable: true });
    const id = `renew-${uid()}`;
    const r = await w.api('POST', '/api/vaults', {
      id,
      kind: 'hashicorp',
      settings: { address: vault.url, mount, auth: { roleId, secretId: await localRef('SECRET-renew-secret') } },
    });
    expect(r.status, JSON.stringify(r.data)).toBe(201);
    const registry = vaultRegistry(w.store);
    await registry.resolve({ vault: id, item: 'a', field: 'k' });
    const before = { ...vault.counts };
    await new Promise((res) => setTimeout(res, 2300));
    registry.forget(id, 'a');
    expect(await registry.resolve({ vault: id, item: 'a', field: 'k' })).toBe('v');
    expect(vault.counts.renew).toBe(before.renew + 1);
    expect(vault.counts.login).toBe(before.login);
  });

  it('names 403, 404 and a sealed vault (503) each with its own reason', async () => {
    const mount = `errs-${uid()}`;
    vault.mount(mount, 2);
    vault.put(mount, 'x', { k: 'SECRET-x' });
    const token = `SECRET-tok-${uid()}`;
    vault.addToken(token, {});
    const id = `errs-${uid()}`;
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'hashicorp',
          settings: { address: vault.url, mount, auth: { token: await localRef(token) } },
        })
      ).status,
    ).toBe(201);
    const registry = vaultRegistry(w.store);
    const reason = async (item: string, field = 'k'): Promise<string> => {
      registry.forget(id);
      try {
        await registry.resolve({ vault: id, item, field });
        return 'resolved';
      } catch (err) {
        expect(err).toBeInstanceOf(VaultError);
        return (err as Error).message;
      }
    };

    expect(await reason('missing')).toBe(`vault '${id}' has no such item or field (no secret at ${mount}/missing)`);
    expect(await reason('x', 'nope')).toBe(`vault '${id}' has no such item or field (${mount}/x has no key 'nope')`);
    vault.seal();
    expect(await reason('x')).toMatch(new RegExp(`^vault '${id}' is sealed or unavailable \\(HTTP 503`));
    vault.unseal();
    vault.revokeToken(token);
    expect(await reason('x')).toMatch(new RegExp(`^vault '${id}' refused Wharf's credentials \\(HTTP 403`));
    const items = await w.api('GET', `/api/vaults/${id}/items`);
    expectError(items, 502, 'provider_refused');
    expect(JSON.stringify(items.data)).not.toContain(token);
  });

  it('refuses deleting a connection or an item a channel config still uses (409)', async () => {
    const mount = `ref-${uid()}`;
    vault.mount(mount, 2);
    vault.put(mount, 'meta', { access_token: 'SECRET-a' });
    const token = `SECRET-tok-${uid()}`;
    vault.addToken(token, { write: true });
    const id = `ref-${uid()}`;
    const tokenRef = await localRef(token);
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'hashicorp',
          settings: { address: vault.url, mount, writable: true, auth: { token: tokenRef } },
        })
      ).status,
    ).toBe(201);
    const agent = `hc-agent-${uid()}`;
    const created = await w.api('POST', '/api/agents', {
      id: agent,
      kind: 'openai',
      baseUrl: 'http://127.0.0.1:9/v1',
      model: 'm',
      apiKey: { vault: id, item: 'meta', field: 'access_token' },
    });
    expect(created.status, JSON.stringify(created.data)).toBe(201);

    const delVault = await w.api('DELETE', `/api/vaults/${id}`);
    expectError(delVault, 409, 'conflict');
    expect(delVault.data.error.message).toContain(`agent ${agent}`);
    expectError(await w.api('DELETE', `/api/vaults/${id}/items/meta`), 409, 'conflict');
    // The connection's own token (a local item) is referred to by the connection.
    const delLocal = await w.api('DELETE', `/api/vaults/local/items/${tokenRef.item}`);
    expectError(delLocal, 409, 'conflict');
    expect(delLocal.data.error.message).toContain(`vault connection ${id}`);

    expect((await w.api('DELETE', `/api/agents/${agent}`)).status).toBe(204);
    expect((await w.api('DELETE', `/api/vaults/${id}/items/meta`)).status).toBe(204);
    expect((await w.api('DELETE', `/api/vaults/${id}`)).status).toBe(204);
    expect((await w.api('GET', `/api/vaults/${id}`)).status).toBe(404);
  });

  it('checks a PATCH like a new connection: a bad token is refused (422) and the old settings stay', async () => {
    const mount = `patch-${uid()}`;
    vault.mount(mount, 2);
    vault.put(mount, 'k', { v: 'SECRET-patched' });
    const token = `SECRET-tok-${uid()}`;
    vault.addToken(token, {});
    const id = `patch-${uid()}`;
    const good = await localRef(token);
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'hashicorp',
          settings: { address: vault.url, mount, auth: { token: good } },
        })
      ).status,
    ).toBe(201);

    const bad = await w.api('PATCH', `/api/vaults/${id}`, {
      settings: { auth: { token: await localRef('SECRET-bad') } },
    });
    expectError(bad, 422, 'not_possible_now');
    expect((await w.api('GET', `/api/vaults/${id}`)).data.settings.auth.token).toEqual(good);
    expectError(await w.api('PATCH', `/api/vaults/${id}`, { settings: { kvVersion: 3 } }), 400, 'validation_failed');

    const next = `SECRET-tok-${uid()}`;
    vault.addToken(next, {});
    vault.revokeToken(token);
    const patched = await w.api('PATCH', `/api/vaults/${id}`, { settings: { auth: { token: await localRef(next) } } });
    expect(patched.status, JSON.stringify(patched.data)).toBe(200);
    expect(await vaultRegistry(w.store).resolve({ vault: id, item: 'k', field: 'v' })).toBe('SECRET-patched');
  });
});

describe('the webhook while the app secret cannot be read', () => {
  it('answers 503 (Meta delivers again) when no good copy is in memory, and does not count a bad signature', async () => {
    const s = cloudSecrets();
    const mount = `wh-${uid()}`;
    vault.mount(mount, 2);
    vault.put(mount, 'meta', { access_token: s.accessToken, verify_token: s.verifyToken, app_secret: s.appSecret });
    const token = `SECRET-tok-${uid()}`;
    vault.addToken(token, {});
    const id = `wh-${uid()}`;
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'hashicorp',
          settings: { address: vault.url, mount, auth: { token: await localRef(token) } },
        })
      ).status,
    ).toBe(201);
    graph.setToken(s.accessToken, {});
    const phoneNumberId = digits(15);
    graph.setPhoneNumber(phoneNumberId, { displayPhoneNumber: '+1 555-000-1111', wabaId: '123456' });
    const ch = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'echo',
      space: `wh-${uid()}`,
    });
    const ref = (field: string) => ({ vault: id, item: 'meta', field });
    const saved = await w.api('PUT', `/api/channels/${ch.data.id}/config`, {
      phone_number_id: phoneNumberId,
      business_account_id: '123456',
      access_token: ref('access_token'),
      verify_token: ref('verify_token'),
      app_secret: ref('app_secret'),
    });
    expect(saved.data.status, saved.data.statusReason).toBe('setup');

    await vault.stop();
    try {
      await new Promise((r) => setTimeout(r, VALUE_CACHE_MS + 500));
      const payload = inboundPayload({ phoneNumberId, displayPhoneNumber: '15550001111', wabaId: '123456' }, [
        { from: phone(), text: 'hi', id: wamid() },
      ]);
      const r = await postWebhook(w, ch.data.id, payload, { secret: s.appSecret });
      expectError(r, 503, 'unavailable');
      expect(r.data.error.message).toMatch(new RegExp(`^app_secret: vault '${id}' unreachable`));
      expect((await getChannel(w, ch.data.id)).diagnostics.badSignatureEvents).toBe(0);
    } finally {
      await vault.start();
    }
  }, 60_000);

  it('a config saved while the vault is down fails naming field and vault, then passes by itself when it is back', async () => {
    const s = cloudSecrets();
    const mount = `re-${uid()}`;
    vault.mount(mount, 2);
    vault.put(mount, 'meta', { access_token: s.accessToken, verify_token: s.verifyToken, app_secret: s.appSecret });
    const token = `SECRET-tok-${uid()}`;
    vault.addToken(token, {});
    const id = `re-${uid()}`;
    expect(
      (
        await w.api('POST', '/api/vaults', {
          id,
          kind: 'hashicorp',
          settings: { address: vault.url, mount, auth: { token: await localRef(token) } },
        })
      ).status,
    ).toBe(201);
    graph.setToken(s.accessToken, {});
    const phoneNumberId = digits(15);
    graph.setPhoneNumber(phoneNumberId, { displayPhoneNumber: '+1 555-000-2222', wabaId: '654321' });
    const ch = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'echo',
      space: `re-${uid()}`,
    });
    const ref = (field: string) => ({ vault: id, item: 'meta', field });
    const config = {
      phone_number_id: phoneNumberId,
      business_account_id: '654321',
      access_token: ref('access_token'),
      verify_token: ref('verify_token'),
      app_secret: ref('app_secret'),
    };

    await vault.stop();
    let saved;
    try {
      await new Promise((r) => setTimeout(r, VALUE_CACHE_MS + 500));
      saved = await w.api('PUT', `/api/channels/${ch.data.id}/config`, config);
    } finally {
      await vault.start();
    }
    expect(saved.status, JSON.stringify(saved.data)).toBe(200);
    expect(saved.data.status).toBe('failed');
    expect(saved.data.statusReason).toBe(
      `access_token: vault '${id}' unreachable (ECONNREFUSED). Wharf checks the config again until the vault answers.`,
    );
    expect(saved.data.webhookUrl).toBeNull();

    const recovered = await waitFor(
      'the config checked again',
      async () => {
        const c = await getChannel(w, ch.data.id);
        return c.status === 'setup' ? c : undefined;
      },
      40_000,
    );
    expect(recovered.statusReason).toMatch(/^The vault answers again: config checked/);
    expect(recovered.webhookUrl).toMatch(new RegExp(`/webhooks/whatsapp/${ch.data.id}$`));
  }, 90_000);
});
