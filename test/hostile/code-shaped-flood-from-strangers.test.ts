/**
 * Attack: with a pairing code live, dozens of strangers send texts shaped like pairing codes ("KQZ-481",
 * "abc 123", "msg 15-3"). Once this took every update slot of the channel workflow and stalled every
 * channel. What holds now: a text that is not the live code costs the channel workflow nothing (no update,
 * no event), the strangers are all denied, another channel's paired sender is answered throughout, and the
 * real code still pairs afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundPayload, startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import {
  bare,
  cloudChannel,
  describeOrNull,
  echoRoundTrip,
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

beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

const historyLength = async (workflowId: string): Promise<number> =>
  (await w.client.workflow.getHandle(workflowId).fetchHistory()).events?.length ?? 0;

/** Texts that normalise to three letters and three digits, none of them the live code. */
const codeShaped = (i: number): string[] => [
  `KQZ-${String(100 + i).slice(-3)}`,
  `abc ${String(200 + i).slice(-3)}`,
  `msg 1${i % 10}-${i % 10}`,
];

describe('a flood of code-shaped texts from strangers', () => {
  it('costs the channel workflow nothing, denies every stranger, and never slows another channel', async () => {
    const target = await cloudChannel(w, fake);
    const other = await cloudChannel(w, fake);
    const friend = phone();
    await pairPhone(w, fake, other, friend);
    // An earlier completed pairing on the target too: that once made every code-shaped text reach the workflow.
    await pairPhone(w, fake, target, phone());
    const { code } = await startPairing(w, target.id);
    const before = await historyLength(`channel-${target.id}`);

    const strangers = Array.from({ length: 60 }, () => phone());
    const ids: string[] = [];
    // Every stranger sends their texts in separate webhooks, all at once, interleaved with the friend's chat.
    const posts = strangers.flatMap((from, i) =>
      codeShaped(i).map((text) => {
        const id = wamid();
        ids.push(id);
        return postWebhook(w, target.id, inboundPayload(target.target, [{ from, text, id }]), {
          secret: target.appSecret,
        });
      }),
    );
    const friendAnswered = echoRoundTrip(w, fake, other, friend, 'still here during the flood');
    const answers = await Promise.all(posts);
    expect(answers.every((r) => r.status === 200)).toBe(true);
    await friendAnswered;

    const log = await waitFor(
      'every stranger’s text has an outcome',
      async () => {
        const entries = await messageLog(w, target.id);
        const done = entries.filter((e) => ids.includes(e.key) && e.status !== 'received');
        return done.length === ids.length ? done : undefined;
      },
      60_000,
    );
    expect(new Set(log.map((e) => e.status))).toEqual(new Set(['denied']));
    expect(await historyLength(`channel-${target.id}`)).toBe(before);
    // Denied at the webhook: not one stranger got a chat workflow.
    const started = await Promise.all(strangers.slice(0, 10).map((s) => describeOrNull(w, `chat-${target.id}-${s}`)));
    expect(started.filter(Boolean)).toEqual([]);

    // The live code still works for the one who was given it.
    const owner = phone();
    await postWebhook(
      w,
      target.id,
      inboundPayload(target.target, [{ from: owner, text: code.toLowerCase().replace('-', ' ') }]),
      { secret: target.appSecret },
    );
    await waitFor('the owner paired', async () => {
      const r = await w.api('GET', `/api/channels/${target.id}`);
      return r.data.pairedAddresses.some((p: { address: string }) => p.address === owner);
    });
    await echoRoundTrip(w, fake, other, friend, 'and after it');
  });

  it('an expired code: code-shaped texts never reach the channel workflow', async () => {
    const target = await cloudChannel(w, fake);
    await pairPhone(w, fake, target, phone());
    const before = await historyLength(`channel-${target.id}`);
    const ids = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const id = wamid();
        await postWebhook(
          w,
          target.id,
          inboundPayload(target.target, [{ from: phone(), text: codeShaped(i)[0], id }]),
          { secret: target.appSecret },
        );
        return id;
      }),
    );
    await waitFor('outcomes', async () => {
      const entries = await messageLog(w, target.id);
      return ids.every((id) => entries.some((e) => e.key === id && e.status === 'denied'));
    });
    expect(await historyLength(`channel-${target.id}`)).toBe(before);
  });
});

describe('pairing abuse', () => {
  let ch: CloudSetup;
  beforeAll(async () => {
    ch = await cloudChannel(w, fake);
  });

  it('un-pairing revokes: the used code does not pair again, and the next message in the same batch is denied', async () => {
    const x = phone();
    const { code } = await startPairing(w, ch.id);
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: x, text: code }]), { secret: ch.appSecret });
    await waitFor('paired', async () =>
      (await w.api('GET', `/api/channels/${ch.id}`)).data.pairedAddresses.some(
        (p: { address: string }) => p.address === x,
      ),
    );
    const confirmations = () => fake.sent.filter((s) => s.to === x.slice(1) && s.text.startsWith('Paired.')).length;
    await waitFor('first confirmation', () => confirmations() === 1);

    const del = await w.api('DELETE', `/api/channels/${ch.id}/paired/${encodeURIComponent(x)}`);
    expect(del.status).toBe(200);

    const again = wamid();
    const after = wamid();
    await postWebhook(
      w,
      ch.id,
      inboundPayload(ch.target, [
        { from: x, text: code, id: again },
        { from: x, text: 'sneaking in after it', id: after },
      ]),
      { secret: ch.appSecret },
    );
    const entries = await waitFor('both admitted', async () => {
      const log = await messageLog(w, ch.id);
      const both = [again, after].map((id) => log.find((e) => e.key === id && e.status !== 'received'));
      return both.every(Boolean) ? both : undefined;
    });
    expect(entries.map((e) => e!.status)).toEqual(['denied', 'denied']);
    expect(confirmations()).toBe(1);
    expect(fake.sent.some((s) => s.text === 'sneaking in after it')).toBe(false);
    expect((await w.api('GET', `/api/channels/${ch.id}`)).data.pairedAddresses).toEqual([]);
  });

  it('a replaced code is dead: Re-pair makes the earlier code worthless', async () => {
    const first = await startPairing(w, ch.id);
    const second = await startPairing(w, ch.id);
    expect(second.code).not.toBe(first.code);
    const y = phone();
    const id = wamid();
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: y, text: first.code, id }]), {
      secret: ch.appSecret,
    });
    const entry = await waitFor('outcome', async () =>
      (await messageLog(w, ch.id)).find((e) => e.key === id && e.status !== 'received'),
    );
    expect(entry.status).toBe('denied');
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: y, text: second.code }]), { secret: ch.appSecret });
    await waitFor('y paired with the new code', async () =>
      (await w.api('GET', `/api/channels/${ch.id}`)).data.pairedAddresses.some(
        (p: { address: string }) => p.address === y,
      ),
    );
  });

  it('"code, then hello" in two quick webhooks: the hello waits behind the code in its chat and is answered', async () => {
    const z = phone();
    const { code } = await startPairing(w, ch.id);
    const hello = `hello right after the code ${Date.now()}`;
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: z, text: code }]), { secret: ch.appSecret });
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: z, text: hello }]), { secret: ch.appSecret });
    await fake.waitForSent((s) => s.to === bare(z) && s.text === hello, 20_000);
  });

  it('a code used by one sender is dead for every other sender', async () => {
    const { code } = await startPairing(w, ch.id);
    const [a, b] = [phone(), phone()];
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: a, text: code }]), { secret: ch.appSecret });
    await waitFor('a paired', async () =>
      (await w.api('GET', `/api/channels/${ch.id}`)).data.pairedAddresses.some(
        (p: { address: string }) => p.address === a,
      ),
    );
    const id = wamid();
    await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from: b, text: code, id }]), { secret: ch.appSecret });
    const entry = await waitFor('outcome', async () =>
      (await messageLog(w, ch.id)).find((e) => e.key === id && e.status !== 'received'),
    );
    expect(entry.status).toBe('denied');
  });
});
