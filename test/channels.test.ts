/** Channels, spaces, agents and the local vault over the real API, with real workflows on the dev server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
beforeAll(async () => {
  w = await startWharf();
});
afterAll(async () => {
  await w?.close({ purge: true });
});

describe('channels', () => {
  it('creates a Cloud API channel with the default space and inbound mode', async () => {
    const r = await w.api('POST', '/api/channels', { provider: 'whatsapp_cloud', agent: 'echo' });
    expect(r.status).toBe(201);
    expect(r.data).toMatchObject({
      provider: 'whatsapp_cloud',
      status: 'setup',
      space: 'WhatsApp (Meta Cloud API)',
      inbound: 'message',
      webhookUrl: null,
    });
    const desc = await w.client.workflow.getHandle(`channel-${r.data.id}`).describe();
    expect(desc.status.name).toBe('RUNNING');
  });

  it('refuses a second channel in a bound space with 409', async () => {
    const r = await w.api('POST', '/api/channels', { provider: 'whatsapp_cloud', agent: 'echo' });
    expect(r.status).toBe(409);
    expect(r.data.error.code).toBe('conflict');
  });

  it('answers malformed JSON with 400 and the error shape', async () => {
    const r = await w.api('POST', '/api/channels', '{"provider":');
    expect(r.status).toBe(400);
    expect(r.data.error).toMatchObject({ code: 'invalid_json' });
  });

  it('requires the bearer token', async () => {
    const r = await w.api('GET', '/api/channels', undefined, { auth: false });
    expect(r.status).toBe(401);
    expect(r.data.error.code).toBe('unauthorized');
  });
});
