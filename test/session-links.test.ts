/**
 * What the personal session keeps in the store, on the project's engine (PGlite, and PostgreSQL in the
 * postgres project): the QR or pairing code shown to the operator (`store.sessionLinks`), and the two
 * message-log questions a session asks — did this chat ever write (the first-contact guard), and which of
 * these ids did the channel send (its own echoes are not inbound).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../lib/store/db.js';
import type { ChannelChange } from '../lib/store/change-feed.js';
import { migrate } from '../lib/store/migrations.js';
import { createStore, type Store } from '../lib/store/store.js';
import { openScratchStore } from './support/scratch-store.js';

let db: Db;
let store: Store;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, drop } = await openScratchStore('wharf-links-'));
  await migrate(db);
  store = createStore(db, randomBytes(32));
});

afterAll(async () => {
  await db?.close();
  await drop?.();
});

const channel = (): string => `ch_${randomUUID().slice(0, 8)}`;
const inSeconds = (s: number): Date => new Date(Date.now() + s * 1000);

/** Collects the change feed's events of one channel while `fn` runs. */
async function changesDuring(channelId: string, fn: () => Promise<void>): Promise<ChannelChange[]> {
  const seen: ChannelChange[] = [];
  const stop = store.changes.subscribe((c) => {
    if (c.channelId === channelId) seen.push(c);
  });
  try {
    await fn();
  } finally {
    stop();
  }
  return seen;
}

describe('session links', () => {
  it('a channel without a pending link has none', async () => {
    expect(await store.sessionLinks.get(channel())).toBeNull();
  });

  it('a QR is shown until it expires, stamped with the database clock, and the console hears of it', async () => {
    const id = channel();
    const before = await store.sessionLinks.now();
    const expiresAt = inSeconds(60);
    const seen = await changesDuring(id, () =>
      store.sessionLinks.set(id, { qr: 'qr-1', pairingCode: null, expiresAt }),
    );
    expect(seen).toEqual([{ channelId: id, what: 'link' }]);
    const link = await store.sessionLinks.get(id);
    expect(link).toMatchObject({ qr: 'qr-1', pairingCode: null });
    expect(link?.expiresAt?.getTime()).toBe(expiresAt.getTime());
    expect(link?.updatedAt).toBeInstanceOf(Date);
    expect(link!.updatedAt!.getTime()).toBeGreaterThanOrEqual(before.getTime());
  });

  it('a pairing code replaces the QR; extending it only ever moves its expiry later and keeps its issue time', async () => {
    const id = channel();
    await store.sessionLinks.set(id, { qr: 'qr-1', pairingCode: null, expiresAt: inSeconds(60) });
    const expiresAt = inSeconds(60);
    await store.sessionLinks.set(id, { qr: null, pairingCode: 'ABCD-1234', expiresAt });
    const issued = await store.sessionLinks.get(id);
    expect(issued).toMatchObject({ qr: null, pairingCode: 'ABCD-1234' });

    await store.sessionLinks.extendCode(id, inSeconds(20));
    expect((await store.sessionLinks.get(id))?.expiresAt?.getTime()).toBe(expiresAt.getTime());
    const later = inSeconds(120);
    await store.sessionLinks.extendCode(id, later);
    const extended = await store.sessionLinks.get(id);
    expect(extended?.expiresAt?.getTime()).toBe(later.getTime());
    expect(extended?.updatedAt?.getTime()).toBe(issued?.updatedAt?.getTime());
  });

  it('extending does nothing to a QR (no pairing code pending)', async () => {
    const id = channel();
    const expiresAt = inSeconds(20);
    await store.sessionLinks.set(id, { qr: 'qr-2', pairingCode: null, expiresAt });
    await store.sessionLinks.extendCode(id, inSeconds(300));
    expect((await store.sessionLinks.get(id))?.expiresAt?.getTime()).toBe(expiresAt.getTime());
  });

  it('clearing removes the link of that channel only, and the console hears of it', async () => {
    const [a, b] = [channel(), channel()];
    for (const id of [a, b])
      await store.sessionLinks.set(id, { qr: `qr-${id}`, pairingCode: null, expiresAt: inSeconds(60) });
    const seen = await changesDuring(a, () => store.sessionLinks.clear(a));
    expect(seen).toEqual([{ channelId: a, what: 'link' }]);
    expect(await store.sessionLinks.get(a)).toBeNull();
    expect((await store.sessionLinks.get(b))?.qr).toBe(`qr-${b}`);
  });
});

describe('message-log questions of a personal session', () => {
  it('a chat has written to a channel only once an inbound message of it is logged there', async () => {
    const [id, other] = [channel(), channel()];
    const chat = '+4915100000001';
    expect(await store.messages.hasInbound(id, chat)).toBe(false);
    // A reply Wharf sent to the chat is not the chat writing.
    await store.messages.recordOutbound({
      channelId: id,
      key: `k-${randomUUID()}`,
      chatId: chat,
      address: chat,
      text: 'hi',
      status: 'sent',
      providerId: 'out-1',
    });
    expect(await store.messages.hasInbound(id, chat)).toBe(false);
    await store.messages.recordInbound(id, randomUUID(), [
      { id: `in-${randomUUID()}`, chatId: chat, address: chat, text: 'hello' },
    ]);
    expect(await store.messages.hasInbound(id, chat)).toBe(true);
    expect(await store.messages.hasInbound(other, chat)).toBe(false);
    expect(await store.messages.hasInbound(id, '+4915100000002')).toBe(false);
  });

  it("the channel's sent ids are recognised among others; inbound ids and other channels' sends are not", async () => {
    const [id, other] = [channel(), channel()];
    const chat = '+4915100000003';
    await store.messages.recordOutbound({
      channelId: id,
      key: `k-${randomUUID()}`,
      chatId: chat,
      address: chat,
      text: 'a',
      status: 'sent',
      providerId: '3EB0AAA',
    });
    await store.messages.recordOutbound({
      channelId: other,
      key: `k-${randomUUID()}`,
      chatId: chat,
      address: chat,
      text: 'b',
      status: 'sent',
      providerId: '3EB0BBB',
    });
    await store.messages.recordInbound(id, randomUUID(), [{ id: '3EB0CCC', chatId: chat, address: chat, text: 'c' }]);
    const sent = await store.messages.sentProviderIds(id, ['3EB0AAA', '3EB0BBB', '3EB0CCC', 'unknown']);
    expect([...sent]).toEqual(['3EB0AAA']);
    expect((await store.messages.sentProviderIds(id, [])).size).toBe(0);
  });
});
