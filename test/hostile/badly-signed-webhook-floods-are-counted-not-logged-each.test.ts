/**
 * Attack: anyone on the internet posting to a channel's webhook URL with a bad signature (or trying
 * verify tokens), thousands of times. Each is still refused 401/403 and counted in the channel's
 * diagnostics, but the store gets one summary write per channel every few seconds instead of a row per
 * request, and the log one warning per channel a minute saying how many more there were.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRefusalCounter } from '../../api/refusal-counter.js';
import type { Store } from '../../lib/store/store.js';
import { inboundPayload, startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import {
  cloudChannel,
  expectError,
  getChannel,
  phone,
  postWebhook,
  verify,
  waitFor,
  type CloudSetup,
} from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';

/** A logger that keeps its lines. */
function capturingLogger() {
  const lines: Array<{ msg: string; channelId?: string; suppressed?: number }> = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

/** A store whose diagnostics writes are counted (and kept). */
function countingStore() {
  const writes: Array<{ channelId: string; event: string; count: number }> = [];
  const store = {
    diagnostics: {
      record: async (channelId: string, event: string, count = 1) => void writes.push({ channelId, event, count }),
    },
  } as unknown as Store;
  return { store, writes };
}

describe('the refusal counter', () => {
  it('2,000 bad signatures: no write until the flush, then one summary; one warning line', async () => {
    const { log, lines } = capturingLogger();
    const { store, writes } = countingStore();
    const counter = createRefusalCounter({ store, log, flushMs: 3_600_000, logEveryMs: 3_600_000 });
    for (let i = 0; i < 2000; i++) counter.note('ch_a', 'bad_signature');
    expect(writes).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(
      counter.withPending('ch_a', {
        lastWebhookAt: null,
        lastVerificationAt: null,
        verificationsRefused: 0,
        badSignatureEvents: 5,
        lastSendError: null,
      }).badSignatureEvents,
    ).toBe(2005);
    await counter.close();
    expect(writes).toEqual([{ channelId: 'ch_a', event: 'bad_signature', count: 2000 }]);
  });

  it('the next warning after the interval says how many were left out; channels and kinds are apart', async () => {
    const { log, lines } = capturingLogger();
    const { store, writes } = countingStore();
    const counter = createRefusalCounter({ store, log, flushMs: 3_600_000, logEveryMs: 50 });
    for (let i = 0; i < 10; i++) counter.note('ch_a', 'bad_signature');
    counter.note('ch_b', 'bad_signature');
    counter.note('ch_a', 'verification_refused');
    expect(lines.map((l) => [l.channelId, l.suppressed])).toEqual([
      ['ch_a', undefined],
      ['ch_b', undefined],
      ['ch_a', undefined],
    ]);
    await new Promise((r) => setTimeout(r, 80));
    counter.note('ch_a', 'bad_signature');
    expect(lines[3]).toMatchObject({ channelId: 'ch_a', suppressed: 9 });
    expect(lines[3].msg).toContain('9 more');
    // The tail of a burst still gets its line, from the flush once the interval is over (the first of these
    // two is logged at once: ch_b's last line is older than the interval).
    counter.note('ch_b', 'bad_signature');
    counter.note('ch_b', 'bad_signature');
    await new Promise((r) => setTimeout(r, 80));
    await counter.close();
    expect(lines.at(-1)).toMatchObject({ channelId: 'ch_b', suppressed: 1 });
    expect(writes).toEqual(
      expect.arrayContaining([
        { channelId: 'ch_a', event: 'bad_signature', count: 11 },
        { channelId: 'ch_b', event: 'bad_signature', count: 3 },
        { channelId: 'ch_a', event: 'verification_refused', count: 1 },
      ]),
    );
  });

  it('a failed write keeps the count for the next flush', async () => {
    const { log } = capturingLogger();
    let fail = true;
    const writes: number[] = [];
    const store = {
      diagnostics: {
        record: async (_c: string, _e: string, n: number) =>
          fail ? Promise.reject(new Error('store down')) : void writes.push(n),
      },
    } as unknown as Store;
    const counter = createRefusalCounter({ store, log, flushMs: 3_600_000 });
    counter.note('ch_a', 'bad_signature');
    counter.note('ch_a', 'bad_signature');
    await counter.flush();
    fail = false;
    await counter.close();
    expect(writes).toEqual([2]);
  });
});

describe('through HTTP', () => {
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

  it('300 badly signed events and 50 wrong verify tokens: each refused and counted, the store written in summaries', async () => {
    const payload = inboundPayload(ch.target, [{ from: phone(), text: 'hi' }]);
    const stored = async () => (await w.store.diagnostics.get(ch.id)).badSignatureEvents;
    for (let i = 0; i < 300; i += 30) {
      const batch = await Promise.all(
        Array.from({ length: 30 }, () => postWebhook(w, ch.id, payload, { signature: `sha256=${'0'.repeat(64)}` })),
      );
      for (const r of batch) expectError(r, 401, 'bad_signature');
    }
    for (let i = 0; i < 50; i++) expectError(await verify(w, ch.id, 'wrong-token', 'c'), 403, 'forbidden');
    const seen = await getChannel(w, ch.id);
    expect(seen.diagnostics).toMatchObject({ badSignatureEvents: 300, verificationsRefused: 50 });
    // The summary reaches the store within a flush interval (5 s), in a handful of writes, not 300.
    await waitFor('the summary in the store', async () => (await stored()) === 300, 15_000);
    expect((await getChannel(w, ch.id)).diagnostics).toMatchObject({
      badSignatureEvents: 300,
      verificationsRefused: 50,
    });
  });
});
