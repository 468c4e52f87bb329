/**
 * Attack: a message whose data the store refuses for good. Retrying the same input can never help, so once
 * the whole batch failed the chat retried it for ever and every later message of that sender waited behind
 * it. What holds: the batch is admitted message by message, the one that cannot be stored is recorded as
 * failed with the reason, and the others — before and after it — are answered.
 *
 * Two refusals: one every engine makes (a constraint of the database itself refuses the text: a trigger on
 * SQLite, PostgreSQL and PGlite alike), and a 20 kB random message id from a personal account's socket, which
 * PostgreSQL cannot index (SQLSTATE 54000; SQLite stores it), so that case runs on PGlite: its log entry is
 * recorded under a digest of the id.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeBaileys, waMessage, type FakeBaileys } from '../fakes/baileys-socket.js';
import { waitFor } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

import type { Db } from '../../lib/store/db.js';

/** A refusal of the database itself, on each dialect: an inbound text `poison` violates a check. */
async function refuseText(db: Db, text: string): Promise<void> {
  if (db.dialect === 'sqlite')
    await db.exec(`create trigger refuse_text before insert on messages when new.text = '${text}'
      begin select raise(abort, 'this text is refused'); end`);
  else
    await db.exec(`create function refuse_text() returns trigger language plpgsql as $f$ begin
        if new.text = '${text}' then raise exception 'this text is refused' using errcode = 'check_violation'; end if;
        return new; end $f$;
      create trigger refuse_text before insert on messages for each row execute function refuse_text()`);
}

/** A connected personal channel on `w`, its fake socket, and the account's own chat. */
async function connectedChannel(w: TestWharf, fake: FakeBaileys, index: number, number: string) {
  const created = await w.api('POST', '/api/channels', {
    provider: 'whatsapp_user',
    agent: 'echo',
    space: `refused-${Date.now()}-${index}`,
  });
  expect(created.status).toBe(201);
  const id: string = created.data.id;
  const socket = await fake.waitForSocket(index);
  socket.scan(number);
  await waitFor('connected', async () => (await w.api('GET', `/api/channels/${id}`)).data.status === 'connected');
  return { id, socket, self: `${number}@s.whatsapp.net` };
}

/** Sends good, bad, good in one batch and checks the bad one is failed with `reason` and the chat goes on. */
async function refusedInTheMiddle(
  w: TestWharf,
  ch: Awaited<ReturnType<typeof connectedChannel>>,
  bad: { id?: string; text: string },
  find: (e: { key: string }) => boolean,
  reason: RegExp,
): Promise<void> {
  const { id, socket, self } = ch;
  socket.receive([
    waMessage({ remoteJid: self, fromMe: true, text: 'before the bad one' }),
    waMessage({ remoteJid: self, fromMe: true, ...bad }),
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
  const refused = log.find(find);
  expect(refused?.status).toBe('failed');
  expect(refused?.detail?.reason).toMatch(reason);

  // The chat is not stuck: the next message is answered too.
  socket.receive([waMessage({ remoteJid: self, fromMe: true, text: 'and later still' })]);
  await waitFor('a later message answered', () => socket.sent.some((m) => m.content.text === 'and later still'));
  expect(socket.sent.some((m) => m.content.text === bad.text)).toBe(false);
}

describe('a message the store refuses for good', () => {
  let w: TestWharf | undefined;
  afterEach(async () => {
    await w?.close({ purge: true });
    w = undefined;
  });

  it('is recorded as failed with the reason, and the messages around it are answered (every engine)', async () => {
    const fake = createFakeBaileys();
    w = await startWharf({ makeSocket: (config) => fake.makeSocket(config) });
    await refuseText(w.db, 'the bad one');
    const ch = await connectedChannel(w, fake, 0, '15550002221');
    const badId = `BAD${randomBytes(8).toString('hex')}`;
    await refusedInTheMiddle(
      w,
      ch,
      { id: badId, text: 'the bad one' },
      (e) => e.key === badId,
      /Could not be processed: .*SQLSTATE 23514/,
    );
  });

  it('an id PostgreSQL cannot index is recorded under its digest (PGlite)', async () => {
    const fake = createFakeBaileys();
    w = await startWharf({ store: 'pglite', makeSocket: (config) => fake.makeSocket(config) });
    const ch = await connectedChannel(w, fake, 0, '15550002222');
    await refusedInTheMiddle(
      w,
      ch,
      { id: `BAD${randomBytes(10_000).toString('hex')}`, text: 'the bad one' },
      (e) => e.key.startsWith('unprocessable:'),
      /Could not be processed: .*SQLSTATE 54/,
    );
  });
});
