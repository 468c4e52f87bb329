/**
 * Real-world shapes that used to be refused whole or dropped: a user who adopted a WhatsApp username
 * arrives with `"from": ""` and only a business-scoped user id (BSUID); edits, orders and reactions.
 * What holds: the BSUID user is a chat like any other (paired by code, matched by policy through
 * `sender.userId`, answered through Meta's `recipient` field); an edit reaches the agent as the new text;
 * an order's text reaches the agent; a reaction is on the log, not answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import {
  cloudChannel,
  messageLog,
  pairPhone,
  phone,
  postWebhook,
  startPairing,
  waitFor,
  wamid,
  type CloudSetup,
} from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;
let ch: CloudSetup;

beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
  ch = await cloudChannel(w, fake);
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

/** One `messages` change for this channel holding `messages` (and `contacts`). */
const change = (messages: unknown[], contacts: unknown[] = []) => ({
  object: 'whatsapp_business_account',
  entry: [
    {
      id: ch.wabaId,
      changes: [
        {
          field: 'messages',
          value: {
            messaging_product: 'whatsapp',
            metadata: { display_phone_number: ch.target.displayPhoneNumber, phone_number_id: ch.phoneNumberId },
            contacts,
            messages,
          },
        },
      ],
    },
  ],
});

const fromBsuid = (bsuid: string, body: string, id = wamid()) =>
  change(
    [
      {
        from: '',
        from_user_id: bsuid,
        id,
        timestamp: String(Math.floor(Date.now() / 1000)),
        type: 'text',
        text: { body },
      },
    ],
    [{ profile: { name: 'Maria', username: '@maria' }, user_id: bsuid }],
  );

describe('a user known only by a business-scoped user id', () => {
  it('pairs by code, is answered through `recipient`, and keeps one chat', async () => {
    const bsuid = `US.${Date.now()}${Math.floor(Math.random() * 1e6)}`;
    const { code } = await startPairing(w, ch.id);
    expect((await postWebhook(w, ch.id, fromBsuid(bsuid, code), { secret: ch.appSecret })).status).toBe(200);
    const confirmation = await fake.waitForSent((s) => s.to === bsuid && s.text.startsWith('Paired.'), 20_000);
    expect(confirmation.body).toMatchObject({ recipient: bsuid });
    expect(confirmation.body).not.toHaveProperty('to');

    await postWebhook(w, ch.id, fromBsuid(bsuid, 'hello by username'), { secret: ch.appSecret });
    await fake.waitForSent((s) => s.to === bsuid && s.text === 'hello by username', 20_000);
    const ids = new Set((await messageLog(w, ch.id)).filter((e) => e.address === bsuid).map((e) => e.chatId));
    expect(ids).toEqual(new Set([bsuid]));
  });

  it('an operator policy can let a BSUID user through by sender.userId', async () => {
    const bsuid = `BR.${Date.now()}7`;
    const policy = `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${ch.id}") when { resource.sender has userId && resource.sender.userId == "${bsuid}" };`;
    const put = await w.api('PUT', '/api/policies', { policies: policy });
    expect(put.status, JSON.stringify(put.data)).toBe(200);
    await postWebhook(w, ch.id, fromBsuid(bsuid, 'let in by policy'), { secret: ch.appSecret });
    await fake.waitForSent((s) => s.to === bsuid && s.text === 'let in by policy', 20_000);
    await w.api('PUT', '/api/policies', { policies: '' });
  });
});

describe('edits, orders and reactions', () => {
  it('an edit reaches the agent as the new text; an order as its text and items; a reaction only on the log', async () => {
    const friend = phone();
    await pairPhone(w, fake, ch, friend);
    const digits = friend.slice(1);
    const ts = String(Math.floor(Date.now() / 1000));
    const original = wamid();
    const reaction = wamid();
    await postWebhook(
      w,
      ch.id,
      change([
        { from: digits, id: original, timestamp: ts, type: 'text', text: { body: 'teh typo' } },
        {
          from: digits,
          id: wamid(),
          timestamp: ts,
          type: 'edit',
          edit: { original_message_id: original, message: { type: 'text', text: { body: 'the typo, fixed' } } },
        },
        {
          from: digits,
          id: wamid(),
          timestamp: ts,
          type: 'order',
          order: {
            catalog_id: '1',
            text: 'after 5pm',
            product_items: [{ product_retailer_id: 'sku-1', quantity: 2, item_price: 30, currency: 'USD' }],
          },
        },
        {
          from: digits,
          id: reaction,
          timestamp: ts,
          type: 'reaction',
          reaction: { message_id: original, emoji: '👍' },
        },
      ]),
      { secret: ch.appSecret },
    );
    await fake.waitForSent((s) => s.to === digits && s.text === 'the typo, fixed', 20_000);
    await fake.waitForSent(
      (s) => s.to === digits && s.text.includes('after 5pm') && s.text.includes('2 × sku-1 (30 USD)'),
      20_000,
    );
    const entry = await waitFor('the reaction on the log', async () =>
      (await messageLog(w, ch.id)).find((e) => e.key === reaction),
    );
    expect(entry).toMatchObject({ type: 'reaction', status: 'ignored' });
    expect(fake.sent.filter((s) => s.to === digits && s.text.includes('👍'))).toEqual([]);
  });
});
