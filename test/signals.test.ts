/**
 * Signal hand-off end to end (SPEC §5, §7): channels in `signal` mode hand the messages of paired phones to
 * tasks waiting on the space — HTTP long-polls (`POST /api/signals/wait`) and workflows using
 * `waitForChannelSignal` (the `twoFactorLogin` example on a worker of the operator's own) — oldest waiter
 * first, holding a message that finds no waiter. Real Temporal dev server, real PGlite, real HTTP.
 *
 * "Registered" is observed, not slept on: a waiter counts as registered once the channel workflow's history
 * shows its `waitForMessage` / `addWaiter` update accepted.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WharfChannelStatus, WharfProvider, WharfSpace } from '../lib/search-attributes.js';
import type { ChannelState } from '../lib/types.js';
import { returnMessage, state as channelStateQuery, type HandedOffMessage } from '../workflows/channel-messages.js';
import type { TwoFactorLoginInput, TwoFactorLoginResult } from '../examples/two-factor-login.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  acceptedUpdates,
  cloudSecrets,
  receivedSignals,
  connectedChannel,
  newPhone,
  sentTo,
  startExamplesWorker,
  until,
  type CloudChannel,
  type CloudSecrets,
} from './support/agent-helpers.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
let graph: FakeGraph;
let secrets: CloudSecrets;
let operator: Awaited<ReturnType<typeof startExamplesWorker>>;

beforeAll(async () => {
  graph = await startFakeGraph();
  [w, operator] = await Promise.all([startWharf({ graphUrl: graph.url }), startExamplesWorker()]);
  secrets = await cloudSecrets(w, graph);
});

afterAll(async () => {
  await Promise.allSettled([w?.close({ purge: true }), operator?.close()]);
  await graph?.close();
});

/** A connected channel in `signal` mode (echo agent) with one paired phone. */
async function signalChannel(): Promise<{ ch: CloudChannel; phone: string }> {
  const ch = await connectedChannel(w, graph, secrets, { agent: 'echo', inbound: 'signal' });
  const phone = newPhone();
  await ch.pair(phone, { name: 'Ada' });
  return { ch, phone };
}

interface WaitResult {
  status: number;
  message: HandedOffMessage | null;
  ms: number;
}

/** A long-poll on `space`; resolves with the answer (or status 0 when aborted). */
function httpWait(space: string, timeoutSeconds: number, signal?: AbortSignal): Promise<WaitResult> {
  const t0 = Date.now();
  return fetch(`${w.url}/api/signals/wait`, {
    method: 'POST',
    headers: { authorization: `Bearer ${w.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ space, timeoutSeconds }),
    signal,
  }).then(
    async (r) => {
      const text = await r.text();
      return { status: r.status, message: text ? (JSON.parse(text) as HandedOffMessage) : null, ms: Date.now() - t0 };
    },
    () => ({ status: 0, message: null, ms: Date.now() - t0 }),
  );
}

/**
 * Starts a long-poll and resolves once the channel has registered it, with the pending answer in `result`
 * (wrapped: an async function returning a promise would wait for it).
 */
async function registeredHttpWait(
  ch: CloudChannel,
  timeoutSeconds: number,
  signal?: AbortSignal,
): Promise<{ result: Promise<WaitResult> }> {
  const before = await acceptedUpdates(w.client, `channel-${ch.id}`, 'waitForMessage');
  const result = httpWait(ch.space, timeoutSeconds, signal);
  await until(
    async () => (await acceptedUpdates(w.client, `channel-${ch.id}`, 'waitForMessage')) > before,
    `long-poll registered on ${ch.id}`,
  );
  return { result };
}

/**
 * Sends `text` from `phone` while no task waits, and resolves once the channel workflow has the message
 * (its `handOff` signal is in the history) — i.e. the message is in the hold.
 */
async function sendToHold(ch: CloudChannel, phone: string, text: string): Promise<string> {
  const before = await receivedSignals(w.client, `channel-${ch.id}`, 'handOff');
  const [id] = await ch.send(phone, text);
  expect((await ch.logEntry(id, (e) => e.status !== 'received')).status).toMatch(/^(held|handed_off)$/);
  await until(
    async () => (await receivedSignals(w.client, `channel-${ch.id}`, 'handOff')) > before,
    `hand-off of ${id} to channel-${ch.id}`,
  );
  return id;
}

/** Starts the `twoFactorLogin` example on the operator's worker. */
async function startLogin(space: string, timeoutMs: number) {
  const input: TwoFactorLoginInput = { user: 'ada', space, timeoutMs, wharfTaskQueue: w.taskQueue };
  return w.client.workflow.start('twoFactorLogin', {
    workflowId: `2fa-${randomBytes(6).toString('hex')}`,
    taskQueue: operator.taskQueue,
    args: [input],
    workflowExecutionTimeout: '2 minutes',
  });
}

/** Starts `twoFactorLogin` and resolves once the channel has registered its wait. */
async function registeredLogin(ch: CloudChannel, timeoutMs: number) {
  const before = await acceptedUpdates(w.client, `channel-${ch.id}`, 'addWaiter');
  const handle = await startLogin(ch.space, timeoutMs);
  await until(
    async () => (await acceptedUpdates(w.client, `channel-${ch.id}`, 'addWaiter')) > before,
    `workflow waiter registered on ${ch.id}`,
  );
  return handle;
}

describe('HTTP long-poll waiters', () => {
  it('hands a message to a task already waiting, and sends nothing back to the phone', async () => {
    const { ch, phone } = await signalChannel();
    const waiting = await registeredHttpWait(ch, 20);
    const [id] = await ch.send(phone, 'approve order 42', { name: 'Ada' });
    const r = await waiting.result;
    expect(r.status).toBe(200);
    expect(r.message).toMatchObject({
      id,
      channelId: ch.id,
      space: ch.space,
      text: 'approve order 42',
      sender: { address: phone, name: 'Ada' },
      chat: { kind: 'direct', id: phone },
    });
    expect((await ch.logEntry(id, (e) => e.status === 'handed_off')).status).toBe('handed_off');
    // The agent did not run: the only text the phone ever got is the pairing confirmation.
    expect(sentTo(graph, phone).map((s) => s.text)).toEqual([expect.stringMatching(/^Paired/)]);
  });

  it('keeps a message that arrives before any waiter and hands it to the next one', async () => {
    const { ch, phone } = await signalChannel();
    const id = await sendToHold(ch, phone, 'early bird');
    const r = await httpWait(ch.space, 20);
    expect(r.status).toBe(200);
    expect(r.message).toMatchObject({ id, text: 'early bird' });
    expect(r.ms).toBeLessThan(10_000); // answered from the hold, not at the timeout
    await ch.logEntry(id, (e) => e.status === 'handed_off');
    // Taken once: the next waiter finds nothing.
    expect((await httpWait(ch.space, 1)).status).toBe(204);
  });

  it('serves waiters oldest first', async () => {
    const { ch, phone } = await signalChannel();
    const first = await registeredHttpWait(ch, 30);
    const second = await registeredHttpWait(ch, 30);
    const third = await registeredHttpWait(ch, 30);
    await ch.send(phone, ['one', 'two', 'three']);
    const got = await Promise.all([first.result, second.result, third.result]);
    expect(got.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(got.map((r) => r.message?.text)).toEqual(['one', 'two', 'three']);
  });

  it('answers 204 at the timeout when nothing arrives', async () => {
    const { ch, phone } = await signalChannel();
    const r = await httpWait(ch.space, 2);
    expect(r.status).toBe(204);
    expect(r.message).toBeNull();
    expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(r.ms).toBeLessThan(15_000);
    // timeoutSeconds 0 is a poll: 204 at once, or a held message.
    const empty = await httpWait(ch.space, 0);
    expect(empty.status).toBe(204);
    expect(empty.ms).toBeLessThan(10_000);
    const id = await sendToHold(ch, phone, 'polled');
    const polled = await until(async () => {
      const got = await httpWait(ch.space, 0);
      return got.status === 200 ? got : undefined;
    }, 'the held message by a zero-timeout poll');
    expect(polled.message).toMatchObject({ id, text: 'polled' });
  });

  it('answers 404 for an unknown space and for a space whose channel was deleted; 400 for a bad body', async () => {
    const unknown = await w.api('POST', '/api/signals/wait', {
      space: `nope-${randomBytes(4).toString('hex')}`,
      timeoutSeconds: 1,
    });
    expect(unknown.status).toBe(404);
    expect(unknown.data.error.code).toBe('not_found');

    const { ch } = await signalChannel();
    expect((await w.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    const spaces = (await w.api('GET', '/api/spaces')).data as { name: string; channelId: string | null }[];
    expect(spaces.find((s) => s.name === ch.space)).toMatchObject({ channelId: null });
    const orphan = await w.api('POST', '/api/signals/wait', { space: ch.space, timeoutSeconds: 1 });
    expect(orphan.status).toBe(404);
    expect(orphan.data.error.code).toBe('not_found');

    for (const body of [
      {},
      { space: ch.space, timeoutSeconds: -1 },
      { space: ch.space, timeoutSeconds: 3601 },
      { space: ch.space, timeoutSeconds: 'soon' },
    ]) {
      const r = await w.api('POST', '/api/signals/wait', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
  });

  it('does not hand off a stranger’s message (denied by policy)', async () => {
    const { ch } = await signalChannel();
    const stranger = newPhone();
    const waiting = await registeredHttpWait(ch, 3);
    const [id] = await ch.send(stranger, 'let me in');
    expect((await ch.logEntry(id, (e) => e.status !== 'received')).status).toBe('denied');
    const r = await waiting.result;
    expect(r.status).toBe(204);
    // Not held either.
    expect((await httpWait(ch.space, 1)).status).toBe(204);
    expect(sentTo(graph, stranger)).toEqual([]);
  });
});

describe('waiters that go away', () => {
  it('skips a waiter whose client disconnected: the next message goes to the next waiter', async () => {
    const { ch, phone } = await signalChannel();
    const abort = new AbortController();
    const gone = await registeredHttpWait(ch, 10, abort.signal);
    const next = await registeredHttpWait(ch, 30);
    const cancels = await acceptedUpdates(w.client, `channel-${ch.id}`, 'cancelWaiter');
    abort.abort();
    expect((await gone.result).status).toBe(0);
    await until(
      async () => (await acceptedUpdates(w.client, `channel-${ch.id}`, 'cancelWaiter')) > cancels,
      'the withdrawn waiter',
    );
    const [id] = await ch.send(phone, 'for the one still here');
    const r = await next.result;
    expect(r.status).toBe(200);
    expect(r.message).toMatchObject({ id, text: 'for the one still here' });
  });

  it('keeps the message for a later waiter when the only waiter disconnected', async () => {
    const { ch, phone } = await signalChannel();
    const abort = new AbortController();
    const gone = await registeredHttpWait(ch, 10, abort.signal);
    const cancels = await acceptedUpdates(w.client, `channel-${ch.id}`, 'cancelWaiter');
    abort.abort();
    await gone.result;
    await until(
      async () => (await acceptedUpdates(w.client, `channel-${ch.id}`, 'cancelWaiter')) > cancels,
      'the withdrawn waiter',
    );
    const id = await sendToHold(ch, phone, 'do not lose me');
    const r = await httpWait(ch.space, 20);
    expect(r.status).toBe(200);
    expect(r.message).toMatchObject({ id, text: 'do not lose me' });
  });

  it('does not lose a message that races with the waiter disconnecting', async () => {
    const { ch, phone } = await signalChannel();
    const abort = new AbortController();
    const gone = await registeredHttpWait(ch, 10, abort.signal);
    // The message and the disconnect reach the channel in either order.
    const [[id]] = await Promise.all([ch.send(phone, 'racing'), Promise.resolve().then(() => abort.abort())]);
    await gone.result;
    const r = await until(async () => {
      const got = await httpWait(ch.space, 2);
      return got.status === 200 ? got : undefined;
    }, 'the raced message for a later waiter');
    expect(r.message).toMatchObject({ id, text: 'racing' });
  });
});

describe('waiters whose side ends', () => {
  it('hands a message put back by a waiter that went away to a waiter already waiting', async () => {
    // When a long-poll client disconnects just as a message is given to it, the API puts the message back
    // with the channel's `returnMessage` signal (api/signals.router.ts). Sending that signal directly makes
    // the race deterministic: a waiter that is already waiting must get the message, not time out while it
    // sits in the hold.
    const { ch, phone } = await signalChannel();
    const waiting = await registeredHttpWait(ch, 5);
    const message: HandedOffMessage = {
      id: `wamid.returned${randomBytes(6).toString('hex')}`,
      channelId: ch.id,
      space: ch.space,
      chat: { kind: 'direct', id: phone },
      sender: { address: phone },
      text: 'put back',
      timestamp: Date.now(),
    };
    await w.client.workflow.getHandle(`channel-${ch.id}`).signal(returnMessage, { message });
    const r = await waiting.result;
    expect(r.status).toBe(200);
    expect(r.message).toMatchObject({ id: message.id, text: 'put back' });
  });

  it('skips a waiting workflow that has ended: the message goes to the next waiter', async () => {
    const { ch, phone } = await signalChannel();
    const login = await registeredLogin(ch, 30_000);
    await login.terminate('test: the task was cancelled by its owner');
    const waiting = await registeredHttpWait(ch, 20);
    const [id] = await ch.send(phone, 'for the living');
    const r = await waiting.result;
    expect(r.status).toBe(200);
    expect(r.message).toMatchObject({ id, text: 'for the living' });
  });

  it('answers a long-poll promptly when its channel is deleted', async () => {
    const { ch } = await signalChannel();
    const waiting = await registeredHttpWait(ch, 30);
    expect((await w.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    const r = await waiting.result;
    expect([204, 404]).toContain(r.status);
    expect(r.ms).toBeLessThan(20_000);
  });

  it('gives a waiting workflow a clear result when its channel is deleted', async () => {
    const { ch } = await signalChannel();
    // A 2-second wait: its result is due about two seconds after the delete.
    const login = await registeredLogin(ch, 2000);
    expect((await w.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    // Either outcome is clear; what must not happen is a long hang or a failed workflow.
    const result = await Promise.race([
      login.result(),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 12_000)),
    ]);
    if (result === 'hung') await login.terminate('test: still waiting 12 s after its 2 s timeout');
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(/^(timeout|unknown_space)$/) });
  });
});

describe('inbound mode switch', () => {
  it('answers with the agent in message mode and hands off again in signal mode', async () => {
    const { ch, phone } = await signalChannel();
    const toMessage = await w.api('PATCH', `/api/channels/${ch.id}`, { inbound: 'message' });
    expect(toMessage.status).toBe(200);
    expect(toMessage.data.inbound).toBe('message');
    const [echoId] = await ch.send(phone, 'echo me');
    const echoed = await graph.waitForSent((s) => s.to === phone.slice(1) && s.text === 'echo me', 20_000);
    expect(echoed.text).toBe('echo me');
    await ch.logEntry(echoId, (e) => e.status === 'answered');

    const toSignal = await w.api('PATCH', `/api/channels/${ch.id}`, { inbound: 'signal' });
    expect(toSignal.data.inbound).toBe('signal');
    const waiting = await registeredHttpWait(ch, 20);
    const [id] = await ch.send(phone, 'signal again');
    const r = await waiting.result;
    expect(r.message).toMatchObject({ id, text: 'signal again' });
    await ch.logEntry(id, (e) => e.status === 'handed_off');
    expect(sentTo(graph, phone).filter((s) => s.text === 'signal again')).toEqual([]);
  });
});

describe('waitForChannelSignal from a workflow (twoFactorLogin example)', () => {
  it('receives the code a paired phone texts', async () => {
    const { ch, phone } = await signalChannel();
    const login = await registeredLogin(ch, 30_000);
    const [id] = await ch.send(phone, '483 920');
    const result: TwoFactorLoginResult = await login.result();
    expect(result).toEqual({ ok: true, code: '483920', from: phone });
    await ch.logEntry(id, (e) => e.status === 'handed_off');
    expect(sentTo(graph, phone).map((s) => s.text)).toEqual([expect.stringMatching(/^Paired/)]);
  });

  it('times out cleanly, and a later message is kept for the next waiter rather than sent to the expired one', async () => {
    const { ch, phone } = await signalChannel();
    const login = await startLogin(ch.space, 1500);
    const t0 = Date.now();
    expect(await login.result()).toEqual({ ok: false, reason: 'timeout' });
    expect(Date.now() - t0).toBeLessThan(20_000);
    const id = await sendToHold(ch, phone, 'too late');
    const r = await httpWait(ch.space, 20);
    expect(r.message).toMatchObject({ id, text: 'too late' });
  });

  it('reports an unknown space, and a space without a channel, as unknown_space', async () => {
    const login = await startLogin(`nope-${randomBytes(4).toString('hex')}`, 5000);
    expect(await login.result()).toEqual({ ok: false, reason: 'unknown_space' });

    const ch = await connectedChannel(w, graph, secrets, { agent: 'echo', inbound: 'signal' });
    expect((await w.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    const orphan = await startLogin(ch.space, 5000);
    expect(await orphan.result()).toEqual({ ok: false, reason: 'unknown_space' });
  });

  it('receives a message that arrived before it started waiting (held)', async () => {
    const { ch, phone } = await signalChannel();
    const id = await sendToHold(ch, phone, '111 222');
    const login = await startLogin(ch.space, 20_000);
    expect(await login.result()).toEqual({ ok: true, code: '111222', from: phone });
    await ch.logEntry(id, (e) => e.status === 'handed_off');
  });

  it('shares one FIFO with HTTP waiters', async () => {
    const { ch, phone } = await signalChannel();
    const wf1 = await registeredLogin(ch, 30_000);
    const http = await registeredHttpWait(ch, 30);
    const wf2 = await registeredLogin(ch, 30_000);
    await ch.send(phone, ['first', 'second', 'third']);
    expect(await wf1.result()).toEqual({ ok: true, code: 'first', from: phone });
    expect((await http.result).message?.text).toBe('second');
    expect(await wf2.result()).toEqual({ ok: true, code: 'third', from: phone });
  });
});

describe('held messages', () => {
  // The real hold is 5 minutes (HOLD_MS) and the dev server cannot skip time, so waiting for it is out of
  // reach here. Instead the channel workflow is restarted the way continue-as-new restarts it — same state,
  // with the held message carried over — but with that message's hold ending in a second. This runs the real
  // expiry path (timer → `dropped` on the message log) on a shortened deadline; the 5-minute value itself
  // is not covered.
  it('drops a held message nobody took once its hold ends, with a "dropped" log entry', async () => {
    const { ch, phone } = await signalChannel();
    const id = await sendToHold(ch, phone, 'nobody wants me');
    const handle = w.client.workflow.getHandle(`channel-${ch.id}`);
    const s: ChannelState = await handle.query(channelStateQuery);
    const entry = (await ch.log()).find((e) => e.key === id)!;
    const message: HandedOffMessage = {
      id,
      channelId: ch.id,
      space: ch.space,
      chat: { kind: 'direct', id: phone, name: 'Ada' },
      sender: { address: phone, name: 'Ada' },
      text: entry.text,
      timestamp: Date.now(),
    };
    await handle.terminate('test: restart with a shortened hold');
    await w.client.workflow.start('channelWorkflow', {
      workflowId: `channel-${ch.id}`,
      taskQueue: w.taskQueue,
      args: [{ state: s, held: [{ message, expiresAt: new Date(Date.now() + 1000).toISOString() }] }],
      typedSearchAttributes: [
        { key: WharfChannelStatus, value: s.status },
        { key: WharfProvider, value: s.provider },
        { key: WharfSpace, value: s.space },
      ],
    });
    const dropped = await ch.logEntry(id, (e) => e.status === 'dropped');
    expect(String(dropped.detail?.reason)).toMatch(/5 minutes|no task/i);
    expect((await httpWait(ch.space, 1)).status).toBe(204);
  });
});
