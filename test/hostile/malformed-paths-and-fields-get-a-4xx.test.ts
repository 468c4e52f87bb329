/**
 * Attack: malformed paths and fields — NUL bytes and control characters in ids and names, malformed
 * %-escapes, a `%` that a second decode would misread. Every one is answered with a 4xx and the usual
 * `{error:{code,message,details}}` body, never a 500 with a stack trace, and the process keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, expectError, uid, vaultItem, type CloudSetup } from '../support/cloud.js';
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

/** A raw request: the path goes on the wire exactly as written (fetch keeps %-escapes as they are). */
async function raw(method: string, path: string, body?: string, auth = true, contentType = 'application/json') {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = `Bearer ${w.token}`;
  if (body !== undefined) headers['content-type'] = contentType;
  const r = await fetch(w.url + path, { method, headers, body });
  const text = await r.text();
  let data: unknown = text;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: the assertions below say so
  }
  return { status: r.status, data };
}

describe('paths that cannot name anything', () => {
  it.each([
    ['GET', '/api/channels/ch_%00'],
    ['GET', '/api/channels/ch_%01%7f'],
    ['GET', '/api/channels/%20ch_x%20'],
    ['PATCH', '/api/channels/ch_%00'],
    ['POST', '/api/channels/ch_%00/pair'],
    ['GET', '/api/channels/ch_%00/messages'],
    ['GET', '/api/channels/ch_%00/qr'],
    ['DELETE', '/api/channels/ch_%00'],
    ['DELETE', '/api/agents/a%00b'],
  ])('%s %s → 404 not_found', async (method, path) => {
    expectError(await raw(method, path, method === 'PATCH' ? '{"inbound":"signal"}' : undefined), 404, 'not_found');
  });

  it.each([
    ['GET', '/webhooks/whatsapp/ch_%00?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1'],
    ['POST', '/webhooks/whatsapp/ch_%00'],
  ])('%s %s (no token needed) → 404 not_found', async (method, path) => {
    expectError(await raw(method, path, method === 'POST' ? '{}' : undefined, false), 404, 'not_found');
  });

  it.each([
    ['POST', '/webhooks/whatsapp/%E0%A4%A', false],
    ['GET', '/webhooks/whatsapp/%E0%A4%A', false],
    ['GET', '/api/channels/%E0%A4%A', true],
    ['DELETE', '/api/channels/ch_x/paired/%ZZ', true],
    ['GET', '/api/vaults/%C0%AF/items', true],
  ])('a malformed percent-escape: %s %s → 400 bad_request', async (method, path, auth) => {
    const r = await raw(method, path, method === 'POST' ? '{}' : undefined, auth);
    expectError(r, 400, 'bad_request');
    expect(JSON.stringify(r.data)).not.toMatch(/URIError|at \w+ \(/);
  });

  it('a request line over 16 KB → 431 with the error body (Node refuses it before Express; the socket is closed)', async () => {
    const r = await raw('GET', `/api/channels/${'a'.repeat(20_000)}`);
    expect(r.status).toBe(431);
    expect(r.data).toEqual({ error: { code: 'too_large', message: expect.any(String), details: [] } });
  });

  it('DELETE /api/channels/:id/paired/100%25 is decoded once: "100%" is simply not paired (404), not a 500', async () => {
    const r = await raw('DELETE', `/api/channels/${ch.id}/paired/100%25`);
    expectError(r, 404, 'not_found');
    expect((r.data as { error: { message: string } }).error.message).toContain('100%');
  });
});

describe('fields with NUL bytes or control characters are refused at the edge', () => {
  it.each([
    ['a space name', { provider: 'whatsapp_cloud', agent: 'echo', space: `bad\u0000space-${uid()}` }],
    [
      'a space name with an escape sequence',
      { provider: 'whatsapp_cloud', agent: 'echo', space: `bad\u001b[31mred-${uid()}` },
    ],
    ['a space name with a lone surrogate', { provider: 'whatsapp_cloud', agent: 'echo', space: `bad\ud800-${uid()}` }],
  ])('POST /api/channels with %s → 400 validation_failed', async (_what, body) => {
    const r = await w.api('POST', '/api/channels', body);
    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details[0].path).toEqual(['space']);
  });

  it.each([
    ['name', { name: `key\u0000${uid()}`, kind: 'api_key', fields: { value: 'v' } }],
    ['name', { name: `key\u0007${uid()}`, kind: 'api_key', fields: { value: 'v' } }],
    ['fields', { name: `key-${uid()}`, kind: 'api_key', fields: { 'va\u0000lue': 'v' } }],
  ])('POST /api/vaults/local/items with a control character in the %s → 400 validation_failed', async (field, body) => {
    const r = await w.api('POST', '/api/vaults/local/items', body);
    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details[0].path[0]).toBe(field);
  });

  it('a secret value may hold any bytes (it is encrypted, never shown): a NUL in a value is stored', async () => {
    const r = await w.api('POST', '/api/vaults/local/items', {
      name: `key-${uid()}`,
      kind: 'api_key',
      fields: { value: 'a\u0000b' },
    });
    expect(r.status, JSON.stringify(r.data)).toBe(201);
  });

  it.each([
    ['an agent id', { id: `agent\u0000${uid()}`, kind: 'echo' }, 'id'],
    [
      'a model name',
      {
        id: `agent-${uid()}`,
        kind: 'openai',
        baseUrl: 'http://127.0.0.1:9',
        model: 'gpt\u0000',
        apiKey: { vault: 'local', item: 'x', field: 'value' },
      },
      'model',
    ],
    [
      'a system prompt',
      {
        id: `agent-${uid()}`,
        kind: 'openai',
        baseUrl: 'http://127.0.0.1:9',
        model: 'm',
        system: 'be nice\u0000',
        apiKey: { vault: 'local', item: 'x', field: 'value' },
      },
      'system',
    ],
    [
      'a credential ref',
      {
        id: `agent-${uid()}`,
        kind: 'openai',
        baseUrl: 'http://127.0.0.1:9',
        model: 'm',
        apiKey: { vault: 'local', item: 'x\u0000', field: 'value' },
      },
      'apiKey',
    ],
    [
      'a workflow type',
      { id: `agent-${uid()}`, kind: 'temporal', workflowType: 'wf\u0000', taskQueue: 'q' },
      'workflowType',
    ],
  ])('POST /api/agents with a NUL in %s → 400 validation_failed', async (_what, body, field) => {
    const r = await w.api('POST', '/api/agents', body);
    expectError(r, 400, 'validation_failed');
    expect(JSON.stringify(r.data.error.details)).toContain(field);
  });

  it('a system prompt keeps its line breaks and tabs', async () => {
    const key = await vaultItem(w, `llm-${uid()}`, 'sk-test');
    const r = await w.api('POST', '/api/agents', {
      id: `agent-${uid()}`,
      kind: 'openai',
      baseUrl: 'http://127.0.0.1:9',
      model: 'm',
      system: 'line one\n\tline two\r\n',
      apiKey: key,
    });
    expect(r.status, JSON.stringify(r.data)).toBe(201);
  });

  it('PUT /api/channels/:id/config with a NUL in a credential ref → 400 validation_failed', async () => {
    const r = await w.api('PUT', `/api/channels/${ch.id}/config`, {
      ...ch.config,
      app_secret: { vault: 'local', item: 'a\u0000', field: 'value' },
    });
    expectError(r, 400, 'validation_failed');
  });

  it.each([
    ['channel', { channel: 'ch_\u0000', sender: '+15550001111', chat: { kind: 'direct', id: '+15550001111' } }],
    ['sender', { channel: 'ch_x', sender: '+1555\u0000', chat: { kind: 'direct', id: '+15550001111' } }],
    ['chat', { channel: 'ch_x', sender: '+15550001111', chat: { kind: 'direct', id: '\u0000' } }],
  ])('POST /api/policies/check with a NUL in %s → 400 validation_failed', async (field, body) => {
    const r = await w.api('POST', '/api/policies/check', body);
    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details[0].path[0]).toBe(field);
  });

  it('POST /api/signals/wait with a NUL in the space → 400 validation_failed', async () => {
    expectError(
      await w.api('POST', '/api/signals/wait', { space: 'a\u0000', timeoutSeconds: 0 }),
      400,
      'validation_failed',
    );
  });

  it('PUT /api/policies with a NUL in the text → 400, the previous policies stay', async () => {
    const r = await w.api('PUT', '/api/policies', { policies: 'permit(principal, action, resource);\u0000' });
    expect(r.status).toBe(400);
    expect(r.data.error.code).toMatch(/^(invalid_policy|validation_failed)$/);
  });
});

describe('after all of that', () => {
  it('the process still serves: /healthz is ok and the channel reads back', async () => {
    expect((await w.api('GET', '/healthz', undefined, { auth: false })).data.ok).toBe(true);
    expect((await w.api('GET', `/api/channels/${ch.id}`)).status).toBe(200);
  });
});
