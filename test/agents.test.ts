/**
 * Agents end to end (SPEC §7): the agents API, the OpenAI-compatible agent against a fake chat-completions
 * server, a Temporal agent workflow on the operator's own worker, and the ordering of turns. Real Temporal
 * dev server, real PGlite store, real HTTP; Meta is the fake Graph API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WINDOW_TURNS } from '../workflows/chat-workflow.js';
import {
  startFakeCompletions,
  textOf,
  type ChatMessage,
  type FakeCompletions,
} from './fakes/chat-completions-server.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  cloudSecrets,
  connectedChannel,
  historyContains,
  newPhone,
  sentTo,
  startExamplesWorker,
  until,
  vaultRef,
  type CloudChannel,
  type CloudSecrets,
  type Ref,
} from './support/agent-helpers.js';
import { startWharf, type TestWharf } from './support/wharf.js';

const API_KEY = 'sk-test-' + 'a1b2c3d4e5f6a7b8c9d0e1f2';
const WRONG_KEY = 'sk-wrong-' + '0f9e8d7c6b5a4f3e2d1c0b9a';
const MODEL = 'gpt-test-mini';
const SYSTEM = 'You are a terse assistant. Answer in Markdown.';

let w: TestWharf;
let graph: FakeGraph;
let llm: FakeCompletions;
let secrets: CloudSecrets;
let keyRef: Ref;
let wrongKeyRef: Ref;
let examples: Awaited<ReturnType<typeof startExamplesWorker>>;
/** Numbered replies, so each request's answer is recognisable. */
let replyCount = 0;

const lastUserText = (messages: ChatMessage[]): string => textOf(messages[messages.length - 1].content);

beforeAll(async () => {
  graph = await startFakeGraph();
  llm = await startFakeCompletions({
    apiKeys: [API_KEY],
    reply: (r) => `**Reply ${++replyCount}** to _${lastUserText(r.messages)}_`,
  });
  [w, examples] = await Promise.all([startWharf({ graphUrl: graph.url }), startExamplesWorker()]);
  secrets = await cloudSecrets(w, graph);
  keyRef = await vaultRef(w, API_KEY);
  wrongKeyRef = await vaultRef(w, WRONG_KEY);
  // The agents the conversation tests use (the API tests add their own).
  for (const body of [
    { id: 'assistant', kind: 'openai', baseUrl: llm.baseUrl, model: MODEL, apiKey: keyRef, system: SYSTEM },
    { id: 'greeter', kind: 'temporal', workflowType: 'greeterAgent', taskQueue: examples.taskQueue },
    { id: 'parrot', kind: 'echo' },
  ]) {
    const r = await w.api('POST', '/api/agents', body);
    if (r.status !== 201) throw new Error(`agent ${body.id}: ${r.status} ${JSON.stringify(r.data)}`);
  }
});

afterAll(async () => {
  await Promise.allSettled([w?.close({ purge: true }), examples?.close()]);
  await Promise.allSettled([graph?.close(), llm?.close()]);
});

describe('agents API', () => {
  it('adds echo, openai and temporal agents and lists them with the built-in echo', async () => {
    const echo = await w.api('POST', '/api/agents', { id: 'api-echo', kind: 'echo' });
    expect(echo.status).toBe(201);
    expect(echo.data).toMatchObject({ id: 'api-echo', kind: 'echo' });
    const openai = await w.api('POST', '/api/agents', {
      id: 'api-openai',
      kind: 'openai',
      baseUrl: llm.baseUrl,
      model: MODEL,
      apiKey: keyRef,
      system: SYSTEM,
    });
    expect(openai.status).toBe(201);
    expect(openai.data).toMatchObject({
      id: 'api-openai',
      kind: 'openai',
      config: { baseUrl: llm.baseUrl, model: MODEL, apiKey: keyRef, system: SYSTEM },
    });
    const temporal = await w.api('POST', '/api/agents', {
      id: 'api-temporal',
      kind: 'temporal',
      workflowType: 'greeterAgent',
      taskQueue: examples.taskQueue,
    });
    expect(temporal.status).toBe(201);
    expect(temporal.data).toMatchObject({
      id: 'api-temporal',
      kind: 'temporal',
      config: { workflowType: 'greeterAgent', taskQueue: examples.taskQueue },
    });

    const list = await w.api('GET', '/api/agents');
    expect(list.status).toBe(200);
    const byId = Object.fromEntries((list.data as { id: string; kind: string }[]).map((a) => [a.id, a]));
    expect(byId.echo).toMatchObject({ kind: 'echo' });
    expect(byId['api-echo']).toMatchObject({ kind: 'echo' });
    expect(byId['api-openai']).toMatchObject({ kind: 'openai', config: { model: MODEL, apiKey: keyRef } });
    expect(byId['api-temporal']).toMatchObject({
      kind: 'temporal',
      config: { workflowType: 'greeterAgent', taskQueue: examples.taskQueue },
    });
    // Only the ref is stored and shown, never the key.
    expect(JSON.stringify(list.data)).not.toContain(API_KEY);
  });

  it('refuses an existing id (409) and bad bodies (400)', async () => {
    expect(
      (
        await w.api('POST', '/api/agents', {
          id: 'parrot',
          kind: 'openai',
          baseUrl: llm.baseUrl,
          model: MODEL,
          apiKey: keyRef,
        })
      ).status,
    ).toBe(409);
    expect((await w.api('POST', '/api/agents', { id: 'echo', kind: 'echo' })).status).toBe(409);
    const bad: [string, unknown][] = [
      ['no kind', { id: 'x1' }],
      ['unknown kind', { id: 'x2', kind: 'anthropic' }],
      ['bad id', { id: 'has spaces', kind: 'echo' }],
      ['openai without apiKey', { id: 'x3', kind: 'openai', baseUrl: llm.baseUrl, model: MODEL }],
      [
        'openai with a plain key instead of a ref',
        { id: 'x4', kind: 'openai', baseUrl: llm.baseUrl, model: MODEL, apiKey: API_KEY },
      ],
      [
        'openai with a non-URL baseUrl',
        { id: 'x5', kind: 'openai', baseUrl: 'not a url', model: MODEL, apiKey: keyRef },
      ],
      [
        'openai with a dangling ref',
        {
          id: 'x6',
          kind: 'openai',
          baseUrl: llm.baseUrl,
          model: MODEL,
          apiKey: { vault: 'local', item: 'itm_nope', field: 'value' },
        },
      ],
      ['openai without model', { id: 'x7', kind: 'openai', baseUrl: llm.baseUrl, apiKey: keyRef }],
      ['temporal without taskQueue', { id: 'x8', kind: 'temporal', workflowType: 'greeterAgent' }],
      ['unknown field', { id: 'x9', kind: 'echo', extra: true }],
    ];
    for (const [why, body] of bad) {
      const r = await w.api('POST', '/api/agents', body);
      expect(r.status, why).toBe(400);
      expect(r.data.error?.code, why).toEqual(expect.any(String));
      expect(JSON.stringify(r.data), why).not.toContain(API_KEY);
    }
    const ids = (await w.api('GET', '/api/agents')).data.map((a: { id: string }) => a.id);
    expect(ids.filter((id: string) => /^x\d$/.test(id))).toEqual([]);
  });

  it('refuses to delete an agent a channel uses (409), deletes it once unused', async () => {
    const created = await w.api('POST', '/api/agents', { id: 'doomed', kind: 'echo' });
    expect(created.status).toBe(201);
    const ch = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'doomed',
      space: 'doomed-space',
    });
    expect(ch.status).toBe(201);
    const refused = await w.api('DELETE', '/api/agents/doomed');
    expect(refused.status).toBe(409);
    expect(refused.data.error.code).toBe('conflict');
    expect(refused.data.error.message).toContain(ch.data.id);

    expect((await w.api('PATCH', `/api/channels/${ch.data.id}`, { agent: 'parrot' })).status).toBe(200);
    expect((await w.api('DELETE', '/api/agents/doomed')).status).toBe(204);
    expect((await w.api('GET', '/api/agents')).data.map((a: { id: string }) => a.id)).not.toContain('doomed');
    expect((await w.api('DELETE', '/api/agents/doomed')).status).toBe(404);
    expect(
      (await w.api('POST', '/api/channels', { provider: 'whatsapp_cloud', agent: 'doomed', space: 'other' })).status,
    ).toBe(400);
  });
});

describe('openai agent', () => {
  let ch: CloudChannel;
  beforeAll(async () => {
    ch = await connectedChannel(w, graph, secrets, { agent: 'assistant' });
  });

  it('answers a paired phone with the system prompt, the chat so far and the new message; the Markdown reply arrives formatted', async () => {
    const phone = newPhone();
    await ch.pair(phone, { name: 'Ada' });

    await ch.send(phone, 'first question');
    const r1 = await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('first question'), 20_000);
    expect(r1.text).toMatch(/^\*Reply \d+\* to _first question_$/);

    const [secondId] = await ch.send(phone, 'second question');
    const r2 = await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('second question'), 20_000);
    expect(r2.text).toMatch(/^\*Reply \d+\* to _second question_$/);

    const [req1] = llm.requestsFor('first question');
    const [req2] = llm.requestsFor('second question');
    expect(req1.body?.model).toBe(MODEL);
    expect(req1.apiKey).toBe(API_KEY);
    expect(req1.path).toBe('/v1/chat/completions');
    const msgs = req2.body!.messages;
    expect(msgs[0]).toEqual({ role: 'system', content: SYSTEM });
    expect(msgs[msgs.length - 1]).toEqual({ role: 'user', content: 'second question' });
    // The earlier turn of this chat, as the agent wrote it (Markdown), directly before the new message.
    const reply1Markdown = r1.text.replace(/^\*(Reply \d+)\*/, '**$1**');
    expect(msgs.slice(-3, -1)).toEqual([
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: reply1Markdown },
    ]);
    expect(msgs.every((m) => ['system', 'user', 'assistant'].includes(m.role))).toBe(true);
    // Only the system prompt is a system message.
    expect(msgs.filter((m) => m.role === 'system')).toHaveLength(1);
    expect(llm.malformed).toEqual([]);
    // The key is read inside the activity only: not in the chat's workflow history.
    expect(await historyContains(w.client, `chat-${ch.id}-${phone}`, API_KEY)).toBe(false);
    expect((await ch.logEntry(secondId, (e) => e.status === 'answered')).status).toBe('answered');
  });

  it('shows the agent only the conversation, not Wharf’s own pairing confirmation', async () => {
    // The pairing confirmation ("Paired. This number now talks to the agent…") is Wharf speaking, not the
    // agent: fed back as an assistant turn it puts words in the agent's mouth and breaks the user/assistant
    // alternation that strict chat templates (e.g. Mistral/Llama on vLLM) require.
    const phone = newPhone();
    await ch.pair(phone);
    await ch.send(phone, 'just paired');
    await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('just paired'), 20_000);
    const msgs = llm.requestsFor('just paired')[0].body!.messages;
    expect(msgs).toEqual([
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'just paired' },
    ]);
  });

  it('rebuilds the window of a restarted chat from the message log', async () => {
    // An idle chat workflow completes and the next message starts a fresh run; terminating it here gives
    // the same starting point without waiting an hour.
    const phone = newPhone();
    await ch.pair(phone);
    await ch.send(phone, 'before restart');
    const sent = await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('before restart'), 20_000);
    const markdown = sent.text.replace(/^\*(Reply \d+)\*/, '**$1**'); // what the agent wrote
    await w.client.workflow.getHandle(`chat-${ch.id}-${phone}`).terminate('test: simulate an idle chat that completed');
    await ch.send(phone, 'after restart');
    await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('after restart'), 20_000);
    // (The pairing confirmation is left out here; the test above covers it.)
    const msgs = llm
      .requestsFor('after restart')[0]
      .body!.messages.filter((m) => !textOf(m.content).startsWith('Paired.'));
    expect(msgs.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(msgs[1].content).toBe('before restart');
    // The agent's own earlier answer as it wrote it (Markdown), exactly as an uninterrupted chat shows it —
    // not the WhatsApp-formatted text that went out (where `*x*` would read as Markdown italics).
    expect(msgs[2].content).toBe(markdown);
    expect(msgs[3].content).toBe('after restart');
  });

  it('works with a base URL without /v1 and with a trailing slash', async () => {
    const bare = await startFakeCompletions({ apiKeys: [API_KEY], basePath: '', reply: () => 'from the bare server' });
    try {
      expect(
        (
          await w.api('POST', '/api/agents', {
            id: 'bare',
            kind: 'openai',
            baseUrl: `${bare.baseUrl}/`,
            model: 'local-model',
            apiKey: keyRef,
          })
        ).status,
      ).toBe(201);
      const other = await connectedChannel(w, graph, secrets, { agent: 'bare' });
      const phone = newPhone();
      await other.pair(phone);
      await other.send(phone, 'hi bare');
      await graph.waitForSent((s) => s.to === phone.slice(1) && s.text === 'from the bare server', 20_000);
      expect(bare.requests.map((r) => [r.path, r.status])).toEqual([['/chat/completions', 200]]);
      expect(bare.requests[0].body?.model).toBe('local-model');
      expect(bare.requests[0].body?.messages.at(-1)).toEqual({ role: 'user', content: 'hi bare' });
      expect(bare.requests[0].body?.messages.some((m) => m.role === 'system')).toBe(false);
    } finally {
      await bare.close();
    }
  });

  it('keeps the conversation window bounded and in order', async () => {
    const phone = newPhone();
    await ch.pair(phone);
    const half = WINDOW_TURNS / 2;
    const texts = Array.from({ length: half + 3 }, (_, i) => `turn ${i + 1}`);
    const newest = texts[texts.length - 1];
    // One webhook with all of them: the chat answers them one after another.
    await ch.send(phone, texts);
    await until(() => sentTo(graph, phone).some((s) => s.text.includes(`_${newest}_`)), `the answer to ${newest}`);
    const last = llm.requestsFor(newest)[0].body!.messages;
    // system + the newest WINDOW_TURNS earlier turns + the new message.
    expect(last[0].role).toBe('system');
    expect(last.length).toBe(1 + WINDOW_TURNS + 1);
    const window = last.slice(1, -1);
    // Alternating user/assistant, oldest first: the turns before the newest one, with their answers.
    expect(window.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(texts.slice(-1 - half, -1));
    for (let i = 0; i < window.length; i += 2) {
      expect(window[i].role).toBe('user');
      expect(window[i + 1].role).toBe('assistant');
      expect(window[i + 1].content).toContain(`_${window[i].content}_`);
    }
    expect(last[last.length - 1]).toEqual({ role: 'user', content: newest });
  });

  it('retries a 429 and then answers', async () => {
    const phone = newPhone();
    await ch.pair(phone);
    llm.failNext(1, 429);
    const [id] = await ch.send(phone, 'rate limited once');
    await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('rate limited once'), 20_000);
    const reqs = llm.requestsFor('rate limited once');
    expect(reqs.map((r) => r.status)).toEqual([429, 200]);
    expect((await ch.logEntry(id, (e) => e.status === 'answered')).status).toBe('answered');
  });

  it('retries a 500 and then answers', async () => {
    const phone = newPhone();
    await ch.pair(phone);
    llm.failNext(2, 500);
    const [id] = await ch.send(phone, 'server trouble twice');
    await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('server trouble twice'), 20_000);
    expect(llm.requestsFor('server trouble twice').map((r) => r.status)).toEqual([500, 500, 200]);
    expect((await ch.logEntry(id, (e) => e.status === 'answered')).status).toBe('answered');
  });

  it('does not retry a 401: the message is marked failed with a reason about the API key, and the key shows nowhere', async () => {
    expect(
      (
        await w.api('POST', '/api/agents', {
          id: 'wrong-key',
          kind: 'openai',
          baseUrl: llm.baseUrl,
          model: MODEL,
          apiKey: wrongKeyRef,
        })
      ).status,
    ).toBe(201);
    const bad = await connectedChannel(w, graph, secrets, { agent: 'wrong-key' });
    const phone = newPhone();
    await bad.pair(phone);
    const [id] = await bad.send(phone, 'will you answer?');
    const entry = await bad.logEntry(id, (e) => e.status === 'failed');
    const reason = String(entry.detail?.reason ?? '');
    expect(reason).toMatch(/api key/i);
    expect(reason).toContain('401');
    // Terminal: exactly one call, no retries.
    const reqs = llm.requests.filter((r) => r.apiKey === WRONG_KEY);
    expect(reqs).toHaveLength(1);
    expect(reqs[0].status).toBe(401);
    expect(sentTo(graph, phone).filter((s) => !s.text.startsWith('Paired'))).toEqual([]);

    // The fake echoed the key in its error; Wharf must not keep it anywhere an operator (or Temporal) sees.
    const views = [
      await w.api('GET', `/api/channels/${bad.id}/messages?limit=500`),
      await w.api('GET', `/api/channels/${ch.id}/messages?limit=500`),
      await w.api('GET', `/api/channels/${bad.id}`),
      await w.api('GET', '/api/agents'),
      await w.api('GET', '/api/vaults/local/items'),
    ];
    for (const v of views) {
      const text = JSON.stringify(v.data);
      expect(text).not.toContain(WRONG_KEY);
      expect(text).not.toContain(API_KEY);
    }
    const chatId = `chat-${bad.id}-${phone}`;
    expect(await historyContains(w.client, chatId, WRONG_KEY)).toBe(false);
    expect(await historyContains(w.client, chatId, 'will you answer?')).toBe(true); // the check itself works
  });
});

describe('temporal agent', () => {
  let ch: CloudChannel;
  let phone: string;
  beforeAll(async () => {
    ch = await connectedChannel(w, graph, secrets, { agent: 'greeter' });
    phone = newPhone();
    await ch.pair(phone, { name: 'Ada' });
  });

  it('runs the operator’s agent workflow on its own task queue and sends its formatted reply', async () => {
    const [id] = await ch.send(phone, 'hello there', { name: 'Ada' });
    const reply = await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('hello there'), 20_000);
    expect(reply.text).toBe('Hello *Ada*, you said: _hello there_ (turn 1)');
    expect((await ch.logEntry(id, (e) => e.status === 'answered')).status).toBe('answered');
    const child = await w.client.workflow.getHandle(`agent-${ch.id}-${id}`).describe();
    expect(child.taskQueue).toBe(examples.taskQueue);
    expect(child.type).toBe('greeterAgent');
  });

  it('sends nothing for an empty reply ("quiet") and logs the message as answered with no reply', async () => {
    const before = sentTo(graph, phone).length;
    const [id] = await ch.send(phone, 'quiet', { name: 'Ada' });
    const entry = await ch.logEntry(id, (e) => e.status !== 'received' && e.status !== 'pending');
    expect(entry.status).toBe('answered');
    expect(entry.detail).toMatchObject({ reply: 'none' });
    // The chat has finished this turn; nothing went out for it.
    expect(sentTo(graph, phone).length).toBe(before);
    // The next turn is answered, and the agent saw the earlier user turns in its history.
    await ch.send(phone, 'still there?', { name: 'Ada' });
    const next = await graph.waitForSent((s) => s.to === phone.slice(1) && s.text.includes('still there?'), 20_000);
    expect(next.text).toBe('Hello *Ada*, you said: _still there?_ (turn 3)');
    expect(sentTo(graph, phone).length).toBe(before + 1);
  });
});

describe('turn order and parallel chats', () => {
  let ch: CloudChannel;
  beforeAll(async () => {
    ch = await connectedChannel(w, graph, secrets, { agent: 'assistant' });
  });

  it('answers the turns of one chat in order, even when an early turn is slow', async () => {
    const phone = newPhone();
    await ch.pair(phone);
    llm.setLatency((r) => (lastUserText(r.messages) === 'order 1' ? 1500 : 0));
    try {
      const texts = ['order 1', 'order 2', 'order 3', 'order 4', 'order 5'];
      for (const t of texts) await ch.send(phone, t); // five webhooks, back to back
      await until(() => sentTo(graph, phone).filter((s) => s.text.includes('_order ')).length >= 5, 'five answers');
      const answered = sentTo(graph, phone)
        .filter((s) => s.text.includes('_order '))
        .map((s) => /_(order \d)_/.exec(s.text)?.[1]);
      expect(answered).toEqual(texts);
      // Each turn's request was made after the previous one was answered, and saw it.
      const fifth = llm.requestsFor('order 5')[0].body!.messages;
      expect(
        fifth
          .filter((m) => m.role === 'user')
          .map((m) => m.content)
          .slice(-5),
      ).toEqual(texts);
    } finally {
      llm.setLatency(0);
    }
  });

  it('answers another chat while one chat waits for a slow agent', async () => {
    const slowPhone = newPhone();
    const fastPhone = newPhone();
    await ch.pair(slowPhone);
    await ch.pair(fastPhone);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const base = (r: { messages: ChatMessage[] }): string =>
      `**Reply ${++replyCount}** to _${lastUserText(r.messages)}_`;
    llm.setReply(async (r) => {
      if (lastUserText(r.messages) === 'slow question') await gate;
      return base(r);
    });
    try {
      await ch.send(slowPhone, 'slow question');
      await llm.waitForRequest((r) => r.body !== undefined && lastUserText(r.body.messages) === 'slow question');
      // The slow chat's agent call is in flight and held; the other chat must not wait for it.
      await ch.send(fastPhone, 'fast question');
      const fast = await graph.waitForSent(
        (s) => s.to === fastPhone.slice(1) && s.text.includes('fast question'),
        20_000,
      );
      expect(fast.text).toMatch(/_fast question_/);
      expect(sentTo(graph, slowPhone).filter((s) => s.text.includes('slow question'))).toEqual([]);
      release();
      const slow = await graph.waitForSent(
        (s) => s.to === slowPhone.slice(1) && s.text.includes('slow question'),
        20_000,
      );
      expect(slow.at).toBeGreaterThan(fast.at);
    } finally {
      release();
      llm.setReply(base);
    }
  });
});
