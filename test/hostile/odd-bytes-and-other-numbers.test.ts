/**
 * Attacks: bytes databases reject (a NUL, lone surrogates, a huge id) in every field of a message, and events
 * for another phone number of the same Meta app posted to this channel's URL (the two numbers share the
 * app secret, so the signature is good). What holds: no content of any field stops a chat — the odd
 * message is processed or recorded with a reason, and the sender's next message is answered; another
 * number's events are recorded as ignored and never admitted or answered from this number.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundPayload, startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import {
  bare,
  cloudChannel,
  echoRoundTrip,
  messageLog,
  pairPhone,
  phone,
  postWebhook,
  waitFor,
  wamid,
  type CloudSetup,
} from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;
let ch: CloudSetup;
let friend: string;

beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
  ch = await cloudChannel(w, fake);
  friend = phone();
  await pairPhone(w, fake, ch, friend);
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

const post = (messages: Parameters<typeof inboundPayload>[1], target = ch.target) =>
  postWebhook(w, ch.id, inboundPayload(target, messages), { secret: ch.appSecret });

describe('bytes that databases reject', () => {
  it('a NUL in a text is answered (shown as U+FFFD) and the chat goes on', async () => {
    const id = wamid();
    expect((await post([{ from: friend, text: 'before\u0000after', id }])).status).toBe(200);
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === 'before\uFFFDafter', 20_000);
    await echoRoundTrip(w, fake, ch, friend, 'next message');
  });

  it('lone surrogates, a NUL in the message id and in the sender name: recorded, and the chat goes on', async () => {
    const id = `wamid.nul\u0000id`;
    expect((await post([{ from: friend, text: 'half \uD83D emoji', id, name: 'Eve\u0000\uDC00' }])).status).toBe(200);
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === 'half \uFFFD emoji', 20_000);
    const entry = (await messageLog(w, ch.id)).find((e) => e.key === 'wamid.nul\uFFFDid');
    expect(entry?.status).toBe('answered');
    await echoRoundTrip(w, fake, ch, friend, 'still answered');
  });

  it('a 100 kB message id is recorded as failed with the reason, and the next message is answered', async () => {
    const huge = `wamid.${'x'.repeat(100_000)}`;
    expect((await post([{ from: friend, text: 'huge id', id: huge }])).status).toBe(200);
    const entry = await waitFor('the huge id on the log', async () =>
      (await messageLog(w, ch.id)).find(
        (e) => e.type === 'text' && e.status === 'failed' && JSON.stringify(e.detail).includes('could not read'),
      ),
    );
    expect(entry.key.length).toBeLessThan(200);
    await echoRoundTrip(w, fake, ch, friend, 'after the huge id');
  });
});

describe("another number's events on this channel's URL", () => {
  it('are recorded as ignored with the reason, never admitted or answered, and the batch’s own messages still are', async () => {
    const stranger = phone();
    const theirs = { ...ch.target, phoneNumberId: '999999999999999' };
    const foreignId = wamid();
    const ownId = wamid();
    const body = inboundPayload(theirs, [{ from: friend, text: 'for the other number', id: foreignId }]) as {
      entry: Array<{ changes: unknown[] }>;
    };
    // One request: a change for the other number, then one for this channel.
    const own = inboundPayload(ch.target, [{ from: friend, text: 'for this number', id: ownId }]) as {
      entry: Array<{ changes: unknown[] }>;
    };
    body.entry[0].changes.push(...own.entry[0].changes);
    const r = await postWebhook(w, ch.id, body, { secret: ch.appSecret });
    expect(r.status).toBe(200);
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === 'for this number', 20_000);
    const entry = (await messageLog(w, ch.id)).find((e) => e.key === foreignId)!;
    expect(entry).toMatchObject({ status: 'ignored', type: 'text' });
    expect((entry.detail as { reason: string }).reason).toContain('999999999999999');
    expect(fake.sent.some((s) => s.text === 'for the other number')).toBe(false);
    expect(stranger).toBeTruthy();
  });
});
