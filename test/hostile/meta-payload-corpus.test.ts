/**
 * Attack: payloads copied from Meta's own webhook reference. Every message type, statuses (including
 * `failed` and `played`), value-level errors, other subscribed fields and a batch of several entries and
 * changes (test/fixtures/meta-webhooks/) is posted, signed, to a connected channel: each is acknowledged
 * with 200, and every message, status and account event in it is on the message log with its type and what
 * was done with it — nothing refused, nothing silently dropped.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOUD_MESSAGE_TYPES } from '../../lib/graph/webhook.js';
import type { MessageLogEntry } from '../../lib/store/store.js';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, echoRoundTrip, messageLog, postWebhook, waitFor, type CloudSetup } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'meta-webhooks');
/** The sender Meta's examples use. */
const SHEENA = '+16505551234';

let w: TestWharf;
let fake: FakeGraph;
let ch: CloudSetup;
/** Real outbound message ids (replies the echo agent sent), standing in for `wamid.OUT1`… in the fixtures. */
const outbound = new Map<string, string>();

beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
  ch = await cloudChannel(w, fake, { pair: [SHEENA] });
  for (const n of [1, 2, 3, 4, 5]) {
    const { reply } = await echoRoundTrip(w, fake, ch, SHEENA, `reply number ${n}`);
    outbound.set(`wamid.OUT${n}`, reply.wamid);
  }
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

interface Item {
  kind: 'message' | 'status' | 'event';
  id: string;
  type: string;
  status?: string;
}

/** What a fixture carries, read the way Meta documents it (not through Wharf's parser). */
function itemsOf(body: {
  entry: Array<{ changes: Array<{ field: string; value: Record<string, unknown> }> }>;
}): Item[] {
  const items: Item[] = [];
  for (const e of body.entry) {
    for (const c of e.changes) {
      if (c.field !== 'messages') {
        items.push({ kind: 'event', id: '', type: c.field });
        continue;
      }
      for (const m of (c.value.messages as Array<{ id: string; type: string }> | undefined) ?? [])
        items.push({ kind: 'message', id: m.id, type: m.type });
      for (const s of (c.value.statuses as Array<{ id: string; status: string }> | undefined) ?? [])
        items.push({ kind: 'status', id: s.id, type: 'status', status: s.status });
    }
  }
  return items;
}

const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort((a, b) => Number(a.startsWith('system')) - Number(b.startsWith('system')) || a.localeCompare(b));

describe("Meta's published webhook payloads", () => {
  it('the corpus covers every message type, statuses, errors and other fields', () => {
    const all = fixtures.flatMap((f) => itemsOf(JSON.parse(readFileSync(join(DIR, f), 'utf8'))));
    const types = new Set(all.filter((i) => i.kind === 'message').map((i) => i.type));
    // Every type the parser tells apart (lib/graph/webhook.ts): a type added there needs a payload here, and
    // the count keeps a type dropped there from leaving this check unnoticed.
    expect(CLOUD_MESSAGE_TYPES).toHaveLength(16);
    for (const t of CLOUD_MESSAGE_TYPES) expect(types, t).toContain(t);
    expect(new Set(all.filter((i) => i.kind === 'status').map((i) => i.status))).toEqual(
      new Set(['sent', 'delivered', 'read', 'played', 'failed']),
    );
    expect(all.filter((i) => i.kind === 'event').length).toBeGreaterThanOrEqual(3);
  });

  for (const file of fixtures) {
    it(`${file.replace(/\.json$/, '')}: acknowledged, and everything in it recorded`, async () => {
      let text = readFileSync(join(DIR, file), 'utf8').replaceAll('{{PHONE_NUMBER_ID}}', ch.phoneNumberId);
      for (const [placeholder, real] of outbound) text = text.replaceAll(`"${placeholder}"`, JSON.stringify(real));
      const items = itemsOf(JSON.parse(text));

      const r = await postWebhook(w, ch.id, text, { secret: ch.appSecret });
      expect(r.status, JSON.stringify(r.data)).toBe(200);

      const log = await waitFor(`every item of ${file} on the message log`, async () => {
        const entries = await messageLog(w, ch.id);
        const missing = items.filter((i) => {
          const e = findEntry(entries, i);
          return !e || (i.kind === 'message' && e.status === 'received');
        });
        return missing.length === 0 ? entries : undefined;
      });
      for (const item of items) {
        const entry = findEntry(log, item)!;
        if (item.kind === 'message') {
          expect(entry.type, `${file} ${item.id}`).toBe(item.type);
          expect(entry.status, `${file} ${item.id}`).not.toBe('received');
          if (['ignored', 'failed', 'denied'].includes(entry.status))
            expect(JSON.stringify(entry.detail), `${file} ${item.id}`).toMatch(/reason/);
        }
      }
    });
  }

  it("a user's number change moves their pairing to the new number", async () => {
    const channel = await waitFor('the pairing moved', async () => {
      const r = await w.api('GET', `/api/channels/${ch.id}`);
      const addresses = (r.data.pairedAddresses as Array<{ address: string }>).map((p) => p.address);
      return addresses.includes('+12195555358') && !addresses.includes(SHEENA) ? r.data : undefined;
    });
    expect(channel.pairedAddresses).toHaveLength(1);
    const entry = (await messageLog(w, ch.id)).find((e) => e.key === 'wamid.SYS1')!;
    expect(entry).toMatchObject({ type: 'system', status: 'applied' });
  });
});

/** The log entry that records `item` (inbound entry by id, outbound reply by provider id, account event by type). */
function findEntry(entries: MessageLogEntry[], item: Item): MessageLogEntry | undefined {
  // Statuses never move a reply backwards (a `sent` after `read` leaves it read).
  const rank: Record<string, number> = { sent: 2, delivered: 3, read: 4, played: 4, failed: 5 };
  if (item.kind === 'status')
    return entries.find(
      (e) => e.direction === 'out' && e.providerId === item.id && (rank[e.status] ?? 0) >= rank[item.status!],
    );
  if (item.kind === 'event') return entries.find((e) => e.direction === 'in' && e.type === item.type);
  return entries.find((e) => e.direction === 'in' && e.key === item.id);
}
