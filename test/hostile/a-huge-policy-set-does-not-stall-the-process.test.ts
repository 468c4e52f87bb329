/**
 * Attack: an enormous policy set (an operator's script gone wrong, or a stolen admin token). The size limit
 * (256 KiB) holds for every content type PUT /api/policies accepts, and compiling a text at the limit runs
 * off the event loop: the process keeps answering (webhooks, `/healthz`) while it is being saved.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLICY_MAX_BYTES } from '../../lib/policy/service.js';
import { expectError } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

let w: TestWharf;
beforeAll(async () => {
  w = await startWharf();
});
afterAll(async () => {
  await w?.close({ purge: true });
});

/** Valid policies, one number each, filling `bytes` (UTF-8) as closely as whole policies allow. */
function policiesOf(bytes: number): string {
  let text = '';
  for (let i = 0; ; i++) {
    const next = `@id("p${i}")\npermit(principal, action == Policy::Action::"receive_message", resource) when { resource.sender.address == "+1555${String(i).padStart(7, '0')}" };\n`;
    if (Buffer.byteLength(text + next) > bytes) return text;
    text += next;
  }
}

describe('the policy size limit holds for every content type', () => {
  const tooBig = policiesOf(POLICY_MAX_BYTES + 2000);

  it.each([
    ['application/json', JSON.stringify({ policies: tooBig })],
    ['text/plain', tooBig],
    ['application/cedar', tooBig],
    ['text/plain; charset=utf-8', tooBig],
  ])('%s just over the limit → 413 too_large, the previous policies stay', async (type, body) => {
    const r = await w.api('PUT', '/api/policies', body, { headers: { 'content-type': type } });
    expectError(r, 413, 'too_large');
    expect(r.data.error.message).toContain(String(POLICY_MAX_BYTES));
    expect((await w.api('GET', '/api/policies')).data.policies).toBe('');
  });

  it('a body over the parser limit (3 MB) → 413 too_large', async () => {
    const r = await w.api('PUT', '/api/policies', 'x'.repeat(3_000_000), { headers: { 'content-type': 'text/plain' } });
    expectError(r, 413, 'too_large');
  });

  it('a multi-byte text is measured in bytes, not characters', async () => {
    const text = `// ${'é'.repeat(POLICY_MAX_BYTES / 2 + 10)}\n`;
    expect(text.length).toBeLessThan(POLICY_MAX_BYTES);
    expectError(
      await w.api('PUT', '/api/policies', text, { headers: { 'content-type': 'text/plain' } }),
      413,
      'too_large',
    );
  });

  it.each(['application/octet-stream', 'application/x-www-form-urlencoded', 'image/png'])(
    '%s → 400 bad_request naming the accepted types',
    async (type) => {
      const r = await w.api('PUT', '/api/policies', 'permit(principal, action, resource);', {
        headers: { 'content-type': type },
      });
      expectError(r, 400, 'bad_request');
      expect(r.data.error.message).toContain('text/plain');
    },
  );
});

describe('saving a policy set at the limit', () => {
  it('is accepted, and the process answers /healthz while it compiles', async () => {
    const text = policiesOf(POLICY_MAX_BYTES);
    expect(Buffer.byteLength(text)).toBeGreaterThan(POLICY_MAX_BYTES - 300);

    let saved = false;
    const put = w
      .api('PUT', '/api/policies', text, { headers: { 'content-type': 'text/plain' } })
      .finally(() => (saved = true));
    // Health checks sent while the save runs: with the compile on the event loop none was answered before the
    // PUT returned; off the loop they are answered in between.
    const latencies: number[] = [];
    let answeredDuringSave = 0;
    while (!saved) {
      const t0 = performance.now();
      const h = await w.api('GET', '/healthz', undefined, { auth: false });
      latencies.push(performance.now() - t0);
      expect(h.status).toBe(200);
      if (!saved) answeredDuringSave++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = await put;
    if (process.env.WHARF_TEST_REPORT)
      console.log(
        `healthz during a ${Buffer.byteLength(text)}-byte save: n=${latencies.length} max=${Math.max(...latencies).toFixed(0)} ms`,
      );
    expect(r.status, JSON.stringify(r.data).slice(0, 500)).toBe(200);
    expect(answeredDuringSave).toBeGreaterThan(3);

    // In force: the last policy lets its number through.
    const last = /"\+1555(\d{7})"[^"]*$/.exec(text)![1];
    const ch = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'echo',
      space: `policy-${Date.now()}`,
    });
    const check = await w.api('POST', '/api/policies/check', {
      channel: ch.data.id,
      sender: `+1555${last}`,
      chat: { kind: 'direct', id: `+1555${last}` },
    });
    expect(check.data.decision).toBe('allow');
  }, 60_000);

  it("an invalid text at the limit is refused 400 with Cedar's messages (at most 100), the previous set stays", async () => {
    const before = (await w.api('GET', '/api/policies')).data.policies;
    const broken = policiesOf(POLICY_MAX_BYTES).replaceAll('resource.sender.address', 'resource.sender.nope');
    const r = await w.api('PUT', '/api/policies', broken, { headers: { 'content-type': 'application/cedar' } });
    expectError(r, 400, 'invalid_policy');
    expect(r.data.error.details.length).toBeLessThanOrEqual(100);
    expect((await w.api('GET', '/api/policies')).data.policies).toBe(before);
  }, 60_000);
});
