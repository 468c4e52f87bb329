/**
 * Attack: a message whose data the store refuses for good (here a 20 kB random message id from a personal
 * account's socket: PostgreSQL cannot index it, SQLSTATE 54000). Retrying the same input can never help, so
 * once the whole batch failed the chat retried it for ever and every later message of that sender waited
 * behind it. What holds: the batch is admitted message by message, the one that cannot be stored is
 * recorded as failed (under a digest of its id) with the reason, and the others — before and after it —
 * are answered.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeBaileys, waMessage, type FakeBaileys } from '../fakes/baileys-socket.js';
import { waitFor } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

let w: TestWharf;
let fake: FakeBaileys;

beforeAll(async () => {
  fake = createFakeBaileys();
  w = await startWharf({ makeSocket: (config) => fake.makeSocket(config) });
});
afterAll(async () => {
  await w?.close({ purge: true });
});

describe('a message the store refuses for good', () => {
  it('is recorded as failed with the reason, and the messages around it are answered', async () => {
    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_user',
      agent: 'echo',
      space: `refused-${Date.now()}`,
    });
    expect(created.status).toBe(201);
    const id: string = created.data.id;
    const socket = await fake.waitForSocket(0);
    socket.scan('15550002222');
    await waitFor('connected', async () => (await w.api('GET', `/api/channels/${id}`)).data.status === 'connected');
    const self = '15550002222@s.whatsapp.net';

    // One batch: a good message, one whose id the store cannot index, another good one.
    socket.receive([
      waMessage({ remoteJid: self, fromMe: true, text: 'before the bad one' }),
      waMessage({
        remoteJid: self,
        fromMe: true,
        id: `BAD${randomBytes(10_000).toString('hex')}`,
        text: 'the bad one',
      }),
      waMessage({ remoteJid: self, fromMe: true, text: 'after the bad one' }),
    ]);
    await waitFor('both good messages answered', () =>
      ['before the bad one', 'after the bad one'].every((t) => socket.sent.some((m) => m.content.text === t)),
    );
    const log = (await w.api('GET', `/api/channels/${id}/messages?limit=50`)).data as Array<{
      key: string;
      status: string;
      detail: { reason?: string } | null;
    }>;
    const bad = log.find((e) => e.key.startsWith('unprocessable:'));
    expect(bad?.status).toBe('failed');
    expect(bad?.detail?.reason).toMatch(/Could not be processed: .*SQLSTATE 54/);

    // The chat is not stuck: the next message is answered too.
    socket.receive([waMessage({ remoteJid: self, fromMe: true, text: 'and later still' })]);
    await waitFor('a later message answered', () => socket.sent.some((m) => m.content.text === 'and later still'));
    expect(socket.sent.some((m) => m.content.text === 'the bad one')).toBe(false);
  });
});
