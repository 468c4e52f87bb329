/**
 * The local vault becomes rotatable and deletable, and the vault routes refuse hostile input with the
 * usual error shape. Real Temporal, PGlite, HTTP; Meta is the fake Graph server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, echoRoundTrip, expectError, phone, uid, vaultItem } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';
import { capturingLogger, expectNoSecrets } from './scenario.js';

let w: TestWharf;
let graph: FakeGraph;
const logs = capturingLogger();

beforeAll(async () => {
  graph = await startFakeGraph();
  w = await startWharf({ graphUrl: graph.url, log: logs.log });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await graph?.close();
});

describe('rotating a local item', () => {
  it('is used by the very next send, without saving the config again', async () => {
    const me = phone();
    const ch = await cloudChannel(w, graph, { pair: [me] });
    const rotated = `SECRET-rotated-${uid()}`;
    graph.setToken(rotated, {});

    const r = await w.api('PUT', `/api/vaults/local/items/${ch.refs.access_token.item}`, {
      fields: { value: rotated },
    });
    graph.revokeToken(ch.accessToken);

    expect(r.status, JSON.stringify(r.data)).toBe(200);
    expect(r.data).toEqual({
      vault: 'local',
      item: ch.refs.access_token.item,
      name: expect.any(String),
      fields: ['value'],
    });
    await echoRoundTrip(w, graph, ch, me, 'after rotating the local token');
    const last = graph.calls
      .filter((c) => c.method === 'POST' && c.path.endsWith(`/${ch.phoneNumberId}/messages`))
      .at(-1);
    expect(last?.auth).toBe(rotated);
    expectNoSecrets([JSON.stringify(r.data), ...logs.lines], [rotated, ch.accessToken]);
  }, 60_000);

  it('adds new fields, works by name, and answers 404 / 400 for unknown items and bad bodies', async () => {
    const name = `rot-${uid()}`;
    const ref = await vaultItem(w, name, 'SECRET-one');
    const r = await w.api('PUT', `/api/vaults/local/items/${name}`, { fields: { extra: 'SECRET-two' } });
    expect(r.status).toBe(200);
    expect(r.data.fields).toEqual(['value', 'extra']);
    expect(r.data.item).toBe(ref.item);
    expectError(
      await w.api('PUT', `/api/vaults/local/items/nope-${uid()}`, { fields: { value: 'x' } }),
      404,
      'not_found',
    );
    expectError(await w.api('PUT', `/api/vaults/local/items/${ref.item}`, { fields: {} }), 400, 'validation_failed');
    expectError(
      await w.api('PUT', `/api/vaults/local/items/${ref.item}`, { fields: { value: 7 } }),
      400,
      'validation_failed',
    );
    expectError(await w.api('PUT', `/api/vaults/local/items/${ref.item}`, '{"fields":'), 400, 'invalid_json');
  });
});

describe('deleting a local item', () => {
  it('is refused with 409 while a channel config refers to it, by id or by name', async () => {
    const ch = await cloudChannel(w, graph, { stage: 'configured' });
    const r = await w.api('DELETE', `/api/vaults/local/items/${ch.refs.app_secret.item}`);
    expectError(r, 409, 'conflict');
    expect(r.data.error.message).toContain(`channel ${ch.id} (app_secret)`);
  });

  it('removes an unused item (204); it is gone from the list and a second delete is 404', async () => {
    const name = `del-${uid()}`;
    const ref = await vaultItem(w, name, 'SECRET-gone');
    expect((await w.api('DELETE', `/api/vaults/local/items/${ref.item}`)).status).toBe(204);
    const items = await w.api('GET', '/api/vaults/local/items');
    expect((items.data as Array<{ name: string }>).some((i) => i.name === name)).toBe(false);
    expectError(await w.api('DELETE', `/api/vaults/local/items/${ref.item}`), 404, 'not_found');
  });
});

describe('hostile vault requests', () => {
  it('answers 4xx with the error shape, never 5xx', async () => {
    const ref = await vaultItem(w, `h-${uid()}`, 'SECRET-h');
    const cases: Array<[string, string, unknown, number, string]> = [
      ['POST', '/api/vaults', { id: 'x', kind: 'lastpass', settings: {} }, 400, 'validation_failed'],
      [
        'POST',
        '/api/vaults',
        { id: 'local', kind: 'keepass', settings: { path: '/tmp/x.kdbx' } },
        400,
        'validation_failed',
      ],
      [
        'POST',
        '/api/vaults',
        { id: '../etc', kind: 'keepass', settings: { path: '/tmp/x.kdbx' } },
        400,
        'validation_failed',
      ],
      [
        'POST',
        '/api/vaults',
        { id: `v-${uid()}`, kind: 'hashicorp', settings: { address: 'ftp://x', mount: 'kv', auth: { token: ref } } },
        400,
        'validation_failed',
      ],
      // A connection's own secret must be a ref into local, never a value or a ref elsewhere.
      [
        'POST',
        '/api/vaults',
        {
          id: `v-${uid()}`,
          kind: 'onepassword',
          settings: { connectUrl: 'http://127.0.0.1:9', token: 'SECRET-plain' },
        },
        400,
        'validation_failed',
      ],
      [
        'POST',
        '/api/vaults',
        {
          id: `v-${uid()}`,
          kind: 'onepassword',
          settings: { connectUrl: 'http://127.0.0.1:9', token: { ...ref, vault: 'other' } },
        },
        400,
        'validation_failed',
      ],
      [
        'POST',
        '/api/vaults',
        { id: `v-${uid()}`, kind: 'onepassword', settings: { connectUrl: 'http://127.0.0.1:9', token: ref } },
        422,
        'not_possible_now',
      ],
      [
        'POST',
        '/api/vaults',
        {
          id: `v-${uid()}`,
          kind: 'bitwarden',
          settings: { url: 'http://127.0.0.1:9', password: { vault: 'local', item: 'missing', field: 'value' } },
        },
        422,
        'not_possible_now',
      ],
      ['PATCH', '/api/vaults/local', { settings: {} }, 409, 'conflict'],
      ['DELETE', '/api/vaults/local', undefined, 409, 'conflict'],
      ['PATCH', `/api/vaults/nope-${uid()}`, { settings: {} }, 404, 'not_found'],
      ['DELETE', `/api/vaults/nope-${uid()}`, undefined, 404, 'not_found'],
      ['GET', `/api/vaults/nope-${uid()}`, undefined, 404, 'not_found'],
      ['POST', `/api/vaults/nope-${uid()}/items`, { name: 'x', fields: { value: 'y' } }, 404, 'not_found'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await w.api(method, path, body);
      expectError(r, status, code);
      expect(JSON.stringify(r.data)).not.toContain('SECRET');
    }
  });
});
