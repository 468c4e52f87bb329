/**
 * The WhatsApp Cloud API flow end to end: config checks against the (fake) Graph API, Meta's verification
 * handshake, signed events, pairing, the echo agent's formatted and split replies, dedupe of redeliveries
 * (also across continue-as-new and a restart), delivery statuses and send errors. Real Temporal dev server,
 * real PGlite, real HTTP; Meta is the fake Graph server of test/fakes.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboundDelivery, inboundDeliveryFor } from '../lib/inbound-delivery.js';
import { WharfChannelId } from '../lib/search-attributes.js';
import { inboundPayload, signPayload, startFakeGraph, statusPayload, type FakeGraph } from './fakes/graph-server.js';
import {
  bare,
  chatWorkflowIds,
  cloudChannel,
  countSent,
  describeOrNull,
  digits,
  echoRoundTrip,
  expectError,
  getChannel,
  historyText,
  localActivities,
  messageLog,
  PAIRED_TEXT,
  pairPhone,
  phone,
  postWebhook,
  sendBatch,
  sendText,
  startPairing,
  uid,
  vaultItem,
  verify,
  waitFor,
  waitForChannel,
  waitForLogEntry,
  waitForOutcome,
  WAIT_MS,
  wamid,
} from './support/cloud.js';
import { startWharf, type TestWharf } from './support/wharf.js';

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

const putConfig = (id: string, body: unknown) => w.api('PUT', `/api/channels/${id}/config`, body);
/** POST calls the fake saw on a phone number's messages edge (sends, and read receipts if any), as HTTP statuses in order. */
const messageCalls = (phoneNumberId: string): number[] =>
  fake.calls.filter((c) => c.method === 'POST' && c.path.endsWith(`/${phoneNumberId}/messages`)).map((c) => c.status);

describe('saving the Cloud API config', () => {
  it('accepts a good config: 200, a webhook URL built from the public URL, status still setup', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });

    const r = await putConfig(ch.id, ch.config);

    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({
      status: 'setup',
      webhookUrl: `${w.config.publicUrl}/webhooks/whatsapp/${ch.id}`,
      config: ch.config,
      selfAddress: ch.selfAddress,
    });
    expect(r.data.webhookUrl.startsWith(w.url)).toBe(true);
    expect((await getChannel(w, ch.id)).webhookUrl).toBe(r.data.webhookUrl);
  });

  it('fails a config whose access token Meta refuses, with a reason naming the token', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });
    const unknownToken = await vaultItem(w, `unknown-token-${uid()}`, `SECRET-unknown-${uid()}`);

    const r = await putConfig(ch.id, { ...ch.config, access_token: unknownToken });

    expect(r.status).toBe(200);
    expect(r.data.status).toBe('failed');
    expect(r.data.statusReason).toMatch(/access_token/);
    expect(r.data.webhookUrl).toBeNull();
  });

  it('fails a config with an unknown phone_number_id, with a reason naming it', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });
    const unknownPhone = digits(15);

    const r = await putConfig(ch.id, { ...ch.config, phone_number_id: unknownPhone });

    expect(r.status).toBe(200);
    expect(r.data.status).toBe('failed');
    expect(r.data.statusReason).toMatch(/phone_number_id/);
    expect(r.data.statusReason).toContain(unknownPhone);
  });

  it('fails a token without whatsapp_business_messaging, with a reason naming the scope', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created', token: { scopes: ['whatsapp_business_management'] } });

    const r = await putConfig(ch.id, ch.config);

    expect(r.status).toBe(200);
    expect(r.data.status).toBe('failed');
    expect(r.data.statusReason).toMatch(/whatsapp_business_messaging/);
  });

  it('leaves failed once the fixed config is saved again', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });
    const failed = await putConfig(ch.id, { ...ch.config, phone_number_id: digits(15) });
    expect(failed.data.status).toBe('failed');

    const fixed = await putConfig(ch.id, ch.config);

    expect(fixed.status).toBe(200);
    expect(fixed.data.status).toBe('setup');
    expect(fixed.data.webhookUrl).toBe(`${w.config.publicUrl}/webhooks/whatsapp/${ch.id}`);
    expect((await getChannel(w, ch.id)).status).toBe('setup');
  });

  it('refuses a dangling credential ref with 400 and keeps the channel as it was', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });

    const r = await putConfig(ch.id, {
      ...ch.config,
      app_secret: { vault: 'local', item: `missing-${uid()}`, field: 'value' },
    });

    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details).toEqual([expect.objectContaining({ path: ['app_secret'] })]);
    expect(await getChannel(w, ch.id)).toMatchObject({ status: 'setup', config: {}, webhookUrl: null });
  });

  it('refuses a plain string in a secret field with 400', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });

    const r = await putConfig(ch.id, { ...ch.config, access_token: ch.accessToken });

    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: ['access_token'] })]));
    expect(JSON.stringify(r.data)).not.toContain(ch.accessToken);
    expect((await getChannel(w, ch.id)).config).toEqual({});
  });

  it('refuses config on a personal-account channel with 400', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });
    const personal = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_user',
      agent: 'echo',
      space: `personal-${uid()}`,
    });

    expectError(await putConfig(personal.data.id, ch.config), 400, 'validation_failed');
  });
});

describe("Meta's verification handshake", () => {
  it('refuses a wrong verify token with 403 and counts the refusal', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'configured' });

    const wrong = await verify(w, ch.id, `not-${ch.verifyToken}`, 'c1');
    const wrongMode = await verify(w, ch.id, ch.verifyToken, 'c2', 'unsubscribe');

    expectError(wrong, 403, 'forbidden');
    expectError(wrongMode, 403, 'forbidden');
    const after = await getChannel(w, ch.id);
    expect(after.diagnostics.verificationsRefused).toBe(2);
    expect(after.status).toBe('setup');
  });

  it('answers the challenge as text/plain and connects the channel', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'configured' });
    const challenge = `challenge-${uid()}`;

    const r = await verify(w, ch.id, ch.verifyToken, challenge);

    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(r.data).toBe(challenge);
    const connected = await waitForChannel(w, ch.id, 'connected', (c) => c.status === 'connected');
    expect(connected.diagnostics.lastVerificationAt).not.toBeNull();
    expect(connected.diagnostics.verificationsRefused).toBe(0);
  });

  it('answers 404 for an unknown channel', async () => {
    expectError(await verify(w, `ch_${uid()}`, 'x', 'y'), 404, 'not_found');
  });
});

describe('webhook events', () => {
  it('rejects a bad or missing signature with 401 and records nothing', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const sender = phone();
    const payload = inboundPayload(ch.target, [{ from: sender, text: 'forged', id: wamid() }]);
    const raw = JSON.stringify(payload);

    const wrongSecret = await postWebhook(w, ch.id, raw, { signature: signPayload(raw, `not-${ch.appSecret}`) });
    const missing = await postWebhook(w, ch.id, raw, { signature: null });
    const garbage = await postWebhook(w, ch.id, raw, { signature: 'sha256=zz' });
    const otherBytes = await postWebhook(w, ch.id, raw + ' ', { signature: signPayload(raw, ch.appSecret) });

    for (const r of [wrongSecret, missing, garbage, otherBytes]) expectError(r, 401, 'bad_signature');
    expect(await messageLog(w, ch.id)).toEqual([]);
    expect(await describeOrNull(w, `chat-${ch.id}-${sender}`)).toBeNull();
    expect(await chatWorkflowIds(w, ch.id)).toEqual([]);
    const after = await getChannel(w, ch.id);
    expect(after.diagnostics.badSignatureEvents).toBe(4);
    expect(after.diagnostics.lastWebhookAt).toBeNull();
  });

  it('refuses a signed body that is not a Meta webhook with 400', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });

    const notMeta = await postWebhook(w, ch.id, { hello: 'world' }, { secret: ch.appSecret });
    const otherObject = await postWebhook(w, ch.id, { object: 'page', entry: [] }, { secret: ch.appSecret });
    const notJson = await postWebhook(w, ch.id, 'not json at all', { secret: ch.appSecret });

    expectError(notMeta, 400, 'bad_request');
    expectError(otherObject, 400, 'bad_request');
    expectError(notJson, 400, 'invalid_json');
    expect(await messageLog(w, ch.id)).toEqual([]);
  });

  it("moves a configured setup channel to connected on Meta's first good signed event", async () => {
    const ch = await cloudChannel(w, fake, { stage: 'configured' });

    await sendText(w, ch, phone(), 'first event');

    const connected = await waitForChannel(w, ch.id, 'connected', (c) => c.status === 'connected');
    expect(connected.diagnostics.lastWebhookAt).not.toBeNull();
  });

  it("takes an event at every spelling of the channel's URL the router accepts, as at Meta's (the fast path's fallback)", async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const sender = phone();
    await pairPhone(w, fake, ch, sender);
    const escaped = [...ch.id].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
    const spellings = [ch.id, `${ch.id}?via=proxy`, `${ch.id}/`, escaped, `${ch.id}/?via=proxy`];

    const ids: string[] = [];
    for (const path of spellings) {
      const id = wamid();
      const payload = inboundPayload(ch.target, [{ from: sender, text: `via ${path}`, id }]);
      const r = await postWebhook(w, path, payload, { secret: ch.appSecret });
      expect(r.status, `${path}: ${JSON.stringify(r.data)}`).toBe(200);
      expect(r.data).toEqual({ ok: true, messages: 1, statuses: 0, recorded: 0 });
      expectError(await postWebhook(w, path, payload, { secret: `not-${ch.appSecret}` }), 401, 'bad_signature');
      ids.push(id);
    }

    for (const id of ids) expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
    expect((await getChannel(w, ch.id)).diagnostics.badSignatureEvents).toBe(spellings.length);
  });

  it('answers 404 for an unknown channel', async () => {
    const r = await postWebhook(
      w,
      `ch_${uid()}`,
      inboundPayload({ phoneNumberId: '123456789' }, [{ from: phone(), text: 'x' }]),
      { secret: 'whatever' },
    );

    expectError(r, 404, 'not_found');
  });

  it('delivers every event of a batched payload, and answers 200 only once they are in Temporal', async () => {
    const paired = phone();
    const stranger = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const confirmation = await pairPhone(w, fake, ch, paired);
    const [m1, m2, m3] = [wamid(), wamid(), wamid()];
    const payload = inboundPayload(ch.target, [
      { from: paired, text: `batch one ${uid()}`, id: m1 },
      { from: stranger, text: `batch two ${uid()}`, id: m2 },
      { from: paired, text: `batch three ${uid()}`, id: m3 },
    ]) as { entry: { changes: unknown[] }[] };
    const texts = (
      payload.entry[0].changes[0] as { value: { messages: { text: { body: string } }[] } }
    ).value.messages.map((m) => m.text.body);
    const status = statusPayload(ch.target, [{ id: confirmation.wamid, status: 'delivered', recipient: paired }]) as {
      entry: { changes: unknown[] }[];
    };
    payload.entry[0].changes.push(status.entry[0].changes[0]);

    const r = await postWebhook(w, ch.id, payload, { secret: ch.appSecret });

    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ messages: 3, statuses: 1 });
    // Durable before the answer: the paired sender's chat exists the moment the 200 arrives, and the
    // stranger's message is already on the log, denied at the webhook, without a chat workflow.
    const [pairedChat, strangerChat] = await Promise.all([
      describeOrNull(w, `chat-${ch.id}-${paired}`),
      describeOrNull(w, `chat-${ch.id}-${stranger}`),
    ]);
    expect(pairedChat).not.toBeNull();
    expect(pairedChat?.typedSearchAttributes.get(WharfChannelId)).toBe(ch.id);
    expect(strangerChat).toBeNull();
    expect((await messageLog(w, ch.id)).find((e) => e.key === m2)?.status).toBe('denied');
    expect((await waitForOutcome(w, ch.id, m1)).status).toBe('answered');
    expect((await waitForOutcome(w, ch.id, m3)).status).toBe('answered');
    const replies = fake.sent.filter((s) => s.to === bare(paired) && s.text !== PAIRED_TEXT).map((s) => s.text);
    expect(replies).toEqual([texts[0], texts[2]]);
    expect(fake.sent.filter((s) => s.to === bare(stranger))).toEqual([]);
    const delivered = await waitFor('the status on the confirmation', async () =>
      (await messageLog(w, ch.id)).find(
        (e) => e.direction === 'out' && e.providerId === confirmation.wamid && e.status === 'delivered',
      ),
    );
    expect(delivered.text).toBe(PAIRED_TEXT);
  });
});

describe('pairing', () => {
  it('starts pairing on a connected channel: an XYZ-123 code valid for 10 minutes', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const t0 = Date.now();

    const { code, expiresAt } = await startPairing(w, ch.id);

    expect(code).toMatch(/^[A-Z]{3}-\d{3}$/);
    const ttl = Date.parse(expiresAt) - t0;
    expect(ttl).toBeGreaterThan(10 * 60_000 - 5_000);
    expect(ttl).toBeLessThan(10 * 60_000 + 5_000);
    expect((await getChannel(w, ch.id)).pairing).toEqual({ code, expiresAt });
  });

  it('pairs whoever sends the code — also in lower case, with spaces or without the dash — and confirms to that sender only', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const variants: ((code: string) => string)[] = [
      (c) => c,
      (c) => c.toLowerCase(),
      (c) => ` ${c.replace('-', ' - ')} `,
      (c) => `${c.slice(0, 3)} ${c.slice(4)}`,
      (c) => c.replace('-', ''),
    ];
    const phones: string[] = [];

    for (const variant of variants) {
      const p = phone();
      phones.push(p);
      const before = fake.sent.length;
      const confirmation = await pairPhone(w, fake, ch, p, variant);
      expect(fake.sent.slice(before)).toEqual([confirmation]);
      expect(confirmation.to).toBe(bare(p));
    }

    const after = await getChannel(w, ch.id);
    expect(after.pairedAddresses.map((a: { address: string }) => a.address)).toEqual(phones);
    expect(after.pairing).toBeNull();
    const log = await messageLog(w, ch.id);
    expect(log.filter((e) => e.direction === 'in' && e.status === 'paired')).toHaveLength(variants.length);
  });

  it('treats a wrong code as an ordinary message: an unpaired sender is denied and the live code stays', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const { code } = await startPairing(w, ch.id);
    const wrong = code === 'ZZZ-000' ? 'ZZZ-001' : 'ZZZ-000';
    const p = phone();

    const id = await sendText(w, ch, p, wrong);

    expect((await waitForOutcome(w, ch.id, id)).status).toBe('denied');
    const after = await getChannel(w, ch.id);
    expect(after.pairedAddresses).toEqual([]);
    expect(after.pairing?.code).toBe(code);
    expect(fake.sent.filter((s) => s.to === bare(p))).toEqual([]);
  });

  it('replaces the old code on re-pair, and uses each code once', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const first = await startPairing(w, ch.id);
    const second = await startPairing(w, ch.id);
    const [a, b] = [phone(), phone()];

    const oldCode = await sendText(w, ch, a, first.code);
    expect((await waitForOutcome(w, ch.id, oldCode)).status).toBe(first.code === second.code ? 'paired' : 'denied');
    const newCode = await sendText(w, ch, a, second.code);
    expect((await waitForOutcome(w, ch.id, newCode)).status).toBe('paired');
    const reused = await sendText(w, ch, b, second.code);

    expect((await waitForOutcome(w, ch.id, reused)).status).toBe('denied');
    const after = await getChannel(w, ch.id);
    expect(after.pairedAddresses.map((p: { address: string }) => p.address)).toEqual([a]);
    expect(countSent(fake, a, PAIRED_TEXT)).toBe(1);
    expect(countSent(fake, b, PAIRED_TEXT)).toBe(0);
  });

  it('refuses to pair a channel that is not connected with 422', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'configured' });

    expectError(await w.api('POST', `/api/channels/${ch.id}/pair`), 422, 'not_possible_now');
    expect((await getChannel(w, ch.id)).pairing).toBeNull();
  });

  it('un-pairs an address (its messages are denied again) and answers 404 for an address that is not paired', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    await echoRoundTrip(w, fake, ch, p, `before un-pairing ${uid()}`);

    const r = await w.api('DELETE', `/api/channels/${ch.id}/paired/${encodeURIComponent(p)}`);

    expect(r.status).toBe(200);
    expect(r.data.pairedAddresses).toEqual([]);
    const text = `after un-pairing ${uid()}`;
    const id = await sendText(w, ch, p, text);
    expect((await waitForOutcome(w, ch.id, id)).status).toBe('denied');
    expect(countSent(fake, p, text)).toBe(0);
    expectError(await w.api('DELETE', `/api/channels/${ch.id}/paired/${encodeURIComponent(p)}`), 404, 'not_found');
    expectError(
      await w.api('DELETE', `/api/channels/${ch.id}/paired/${encodeURIComponent(phone())}`),
      404,
      'not_found',
    );
  });
});

describe('echo replies', () => {
  it("sends a paired phone's Markdown back in WhatsApp formatting", async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });

    const { id, reply } = await echoRoundTrip(w, fake, ch, p, 'ping **bold** and ~~gone~~', 'ping *bold* and ~gone~');

    expect(reply.phoneNumberId).toBe(ch.phoneNumberId);
    expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
    const out = await waitForLogEntry(w, ch.id, 'out', `reply:${id}#1`, (e) => e.status === 'accepted');
    expect(out).toMatchObject({ providerId: reply.wamid, text: 'ping *bold* and ~gone~', chatId: p });
  });

  it('admits and answers a batch of echo messages in one local activity, as it does a pairing confirmation', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const texts = [0, 1, 2].map((i) => `one activity ${i} ${uid()}`);

    const ids = await sendBatch(w, ch, p, texts);

    for (const id of ids) expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
    expect(fake.sent.filter((s) => s.to === bare(p) && s.text !== PAIRED_TEXT).map((s) => s.text)).toEqual(texts);
    // The pairing message's task, then the batch's: each completes with all of its markers at once.
    const chat = `chat-${ch.id}-${p}`;
    const ran = await waitFor('both tasks in the history', async () =>
      (await localActivities(w, chat)).length >= 2 ? localActivities(w, chat) : undefined,
    );
    expect(ran).toEqual(['admitInbound', 'admitInbound']);
  });

  it('splits a 9,000-character reply into ordered parts of at most 4096 characters, keeping the code block whole', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const para = (i: number): string =>
      `P${String(i).padStart(2, '0')} ` + Array.from({ length: 110 }, (_, k) => `word${k % 10}`).join(' ');
    const codeLines = [
      '// CODE-START',
      ...Array.from({ length: 40 }, (_, i) => `let value${String(i).padStart(2, '0')} = ${i} + ${i} + ${i} + ${i};`),
      '// CODE-END',
    ];
    const markdown =
      [1, 2, 3, 4, 5].map(para).join('\n\n') +
      '\n\n```\n' +
      codeLines.join('\n') +
      '\n```\n\n' +
      [6, 7, 8, 9, 10, 11, 12].map(para).join('\n\n');
    expect(markdown.length).toBeGreaterThan(9000);
    const before = fake.sent.length;

    const id = await sendText(w, ch, p, markdown);

    expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
    const parts = fake.sent
      .slice(before)
      .filter((s) => s.to === bare(p))
      .map((s) => s.text);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(4096);
    for (let i = 1; i <= 12; i++)
      expect(
        parts.filter((part) => part.includes(para(i))),
        `paragraph ${i} whole in one part`,
      ).toHaveLength(1);
    const all = parts.join('\n\n');
    const positions = [1, 2, 3, 4, 5]
      .map((i) => all.indexOf(para(i)))
      .concat(
        all.indexOf('```\n// CODE-START'),
        [6, 7, 8, 9, 10, 11, 12].map((i) => all.indexOf(para(i))),
      );
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    const withCode = parts.filter(
      (part) => part.includes('CODE-START') || part.includes('CODE-END') || part.includes('let value'),
    );
    expect(withCode).toHaveLength(1);
    expect(withCode[0]).toContain(['```', ...codeLines, '```'].join('\n'));
    const outKeys = (await messageLog(w, ch.id)).filter(
      (e) => e.direction === 'out' && e.key.startsWith(`reply:${id}#`),
    );
    expect(outKeys.map((e) => e.key).sort()).toEqual(parts.map((_, i) => `reply:${id}#${i + 1}`).sort());
  });
});

describe('dedupe of redelivered messages', () => {
  it('answers a message id posted twice only once', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const text = `twice ${uid()}`;
    const id = wamid();

    await sendText(w, ch, p, text, id);
    await sendText(w, ch, p, text, id);
    const both = await postWebhook(
      w,
      ch.id,
      inboundPayload(ch.target, [
        { from: p, text, id },
        { from: p, text, id },
      ]),
      { secret: ch.appSecret },
    );
    expect(both.status).toBe(200);
    await echoRoundTrip(w, fake, ch, p, `barrier ${uid()}`); // the chat handles messages in order: all copies are done

    expect(countSent(fake, p, text)).toBe(1);
    expect((await messageLog(w, ch.id)).filter((e) => e.direction === 'in' && e.key === id)).toHaveLength(1);
  });

  it('drops a redelivery that arrives after the chat workflow continued-as-new', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const chatId = `chat-${ch.id}-${p}`;
    const started = await w.client.workflow.start('chatWorkflow', {
      workflowId: chatId,
      taskQueue: w.taskQueue,
      args: [{ channelId: ch.id, chatId: p, historyLimit: 30 }],
      typedSearchAttributes: [{ key: WharfChannelId, value: ch.id }],
    });
    await pairPhone(w, fake, ch, p);
    const early = await echoRoundTrip(w, fake, ch, p, `early ${uid()}`);
    const handle = w.client.workflow.getHandle(chatId);
    for (let i = 0; i < 10 && (await handle.describe()).runId === started.firstExecutionRunId; i++) {
      await echoRoundTrip(w, fake, ch, p, `filler ${i} ${uid()}`);
    }
    expect((await handle.describe()).runId).not.toBe(started.firstExecutionRunId);

    await sendText(w, ch, p, early.reply.text, early.id);
    await echoRoundTrip(w, fake, ch, p, `barrier ${uid()}`);

    expect(countSent(fake, p, early.reply.text)).toBe(1);
  });
});

describe('idle chats', () => {
  it('a chat completes once it was idle for its timeout, keeps one timer rather than one per message, and the next message starts it again', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const chatId = `chat-${ch.id}-${p}`;
    const idleTimeoutMs = 5_000;
    await w.client.workflow.start('chatWorkflow', {
      workflowId: chatId,
      taskQueue: w.taskQueue,
      args: [{ channelId: ch.id, chatId: p, idleTimeoutMs }],
      typedSearchAttributes: [{ key: WharfChannelId, value: ch.id }],
    });
    await pairPhone(w, fake, ch, p);
    const handle = w.client.workflow.getHandle(chatId);
    // Messages 1.5 s apart: the chat is never idle for 5 s, so it is still running after all of them.
    for (let i = 0; i < 4; i++) {
      await echoRoundTrip(w, fake, ch, p, `keep alive ${i} ${uid()}`);
      await new Promise((r) => setTimeout(r, 1_500));
    }
    const last = Date.now();
    expect((await handle.describe()).status.name).toBe('RUNNING');

    await expect
      .poll(async () => (await handle.describe()).status.name, { timeout: 20_000, interval: 250 })
      .toBe('COMPLETED');
    expect(Date.now() - last).toBeGreaterThanOrEqual(idleTimeoutMs - 1_500);
    const events = (await handle.fetchHistory()).events ?? [];
    const timers = events.filter((e) => e.timerStartedEventAttributes).length;
    // Messages come by signal, or to a run this process knows by the deliver update.
    const arrivals = events.filter(
      (e) => e.workflowExecutionSignaledEventAttributes || e.workflowExecutionUpdateAcceptedEventAttributes,
    ).length;
    expect(arrivals).toBeGreaterThanOrEqual(5); // the pairing code and four messages
    expect(timers).toBeLessThanOrEqual(3); // the first timer, and re-arms for the time left when it fired early

    // The next message starts a new run, which answers it.
    await echoRoundTrip(w, fake, ch, p, `after idle ${uid()}`);
    expect((await handle.describe()).status.name).toBe('RUNNING');
  }, 60_000);

  it('starts the chats webhooks bring with the idle timeout of WHARF_CHAT_IDLE_MINUTES (10 minutes by default)', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    await pairPhone(w, fake, ch, p);
    const history = await w.client.workflow.getHandle(`chat-${ch.id}-${p}`).fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const [input] = (started?.input?.payloads ?? []).map((x) => defaultPayloadConverter.fromPayload(x));
    expect(input).toMatchObject({ channelId: ch.id, chatId: p, idleTimeoutMs: 10 * 60_000 });
    expect(w.config.temporal.chatIdleMs).toBe(10 * 60_000);
  });
});

describe('delivery statuses', () => {
  it('applies delivered and then read to the reply on the message log', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const { id, reply } = await echoRoundTrip(w, fake, ch, p, `status me ${uid()}`);
    const key = `reply:${id}#1`;
    await waitForLogEntry(w, ch.id, 'out', key, (e) => e.status === 'accepted');

    const delivered = await postWebhook(
      w,
      ch.id,
      statusPayload(ch.target, [{ id: reply.wamid, status: 'delivered', recipient: p }]),
      { secret: ch.appSecret },
    );
    expect(delivered.status).toBe(200);
    await waitForLogEntry(w, ch.id, 'out', key, (e) => e.status === 'delivered', 'delivered');
    const read = await postWebhook(
      w,
      ch.id,
      statusPayload(ch.target, [{ id: reply.wamid, status: 'read', recipient: p }]),
      { secret: ch.appSecret },
    );

    expect(read.status).toBe(200);
    const entry = await waitForLogEntry(w, ch.id, 'out', key, (e) => e.status === 'read', 'read');
    expect(entry.providerId).toBe(reply.wamid);
  });

  it('shows a failed status with its error code on the message log and in diagnostics', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const { id, reply } = await echoRoundTrip(w, fake, ch, p, `fail me ${uid()}`);
    const key = `reply:${id}#1`;
    await waitForLogEntry(w, ch.id, 'out', key, (e) => e.status === 'accepted');

    const r = await postWebhook(
      w,
      ch.id,
      statusPayload(ch.target, [
        { id: reply.wamid, status: 'failed', recipient: p, error: { code: 131047, title: 'Re-engagement message' } },
      ]),
      { secret: ch.appSecret },
    );

    expect(r.status).toBe(200);
    const entry = await waitForLogEntry(w, ch.id, 'out', key, (e) => e.status === 'failed', 'failed');
    expect(entry.detail).toMatchObject({ error: { code: 131047, title: 'Re-engagement message' } });
    const after = await waitForChannel(w, ch.id, 'lastSendError', (c) => c.diagnostics.lastSendError !== null);
    expect(after.diagnostics.lastSendError).toMatchObject({ code: 131047 });
  });
});

describe('send errors', () => {
  it('records a send Meta refuses (131047) on the message log, without retrying', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const callsBefore = messageCalls(ch.phoneNumberId).length;
    fake.failNext(1, { code: 131047 });
    const text = `refused ${uid()}`;

    const id = await sendText(w, ch, p, text);

    const inbound = await waitForOutcome(w, ch.id, id);
    expect(inbound.status).toBe('failed');
    expect(String(inbound.detail?.reason)).toMatch(/131047/);
    const out = await waitForLogEntry(w, ch.id, 'out', `reply:${id}#1`, (e) => e.status === 'failed');
    expect(out.detail).toMatchObject({ code: 131047 });
    await echoRoundTrip(w, fake, ch, p, `barrier ${uid()}`); // in order: any retry of the refused send would come first
    expect(
      messageCalls(ch.phoneNumberId)
        .slice(callsBefore)
        .filter((status) => status !== 200),
    ).toEqual([400]);
    expect(countSent(fake, p, text)).toBe(0);
    const after = await getChannel(w, ch.id);
    expect(after.diagnostics.lastSendError).toMatchObject({ code: 131047 });
    expect(after.status).toBe('connected');
  });

  it('answers a batch of one chat in order, and a reply Meta refuses for good fails alone', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const texts = [0, 1, 2].map((i) => `batched ${i} ${uid()}`);
    fake.failNext(1, { code: 131047 });

    // One webhook, three messages of one chat: one signal, admitted and answered as one batch.
    const ids = await sendBatch(w, ch, p, texts);

    expect((await waitForOutcome(w, ch.id, ids[0])).status).toBe('failed');
    expect((await waitForOutcome(w, ch.id, ids[1])).status).toBe('answered');
    expect((await waitForOutcome(w, ch.id, ids[2])).status).toBe('answered');
    expect(fake.sent.filter((s) => s.to === bare(p) && s.text !== PAIRED_TEXT).map((s) => s.text)).toEqual([
      texts[1],
      texts[2],
    ]);
    expect(
      (await waitForLogEntry(w, ch.id, 'out', `reply:${ids[0]}#1`, (e) => e.status === 'failed')).detail,
    ).toMatchObject({ code: 131047 });
  });

  it('retries a send Meta could not take (HTTP 500) and delivers it', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const callsBefore = messageCalls(ch.phoneNumberId).length;
    fake.failNext(1, { status: 500 });
    const text = `retried ${uid()}`;

    const { id } = await echoRoundTrip(w, fake, ch, p, text);

    expect(
      messageCalls(ch.phoneNumberId)
        .slice(callsBefore)
        .filter((status) => status !== 200),
    ).toEqual([500]);
    expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
    expect((await waitForLogEntry(w, ch.id, 'out', `reply:${id}#1`, (e) => e.status === 'accepted')).text).toBe(text);
    expect(countSent(fake, p, text)).toBe(1);
    // Admission's own send met the 500 and left the reply to the workflow's send activity, which retries.
    const chat = `chat-${ch.id}-${p}`;
    const ran = await waitFor('the task in the history', async () =>
      (await localActivities(w, chat)).length >= 3 ? localActivities(w, chat) : undefined,
    );
    expect(ran).toEqual(['admitInbound', 'admitInbound', 'deliverReplies']);
  });

  it('moves the channel to failed, naming the token, when Meta refuses the access token on send', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    fake.revokeToken(ch.accessToken);

    const id = await sendText(w, ch, p, `after revocation ${uid()}`);

    const failed = await waitForChannel(w, ch.id, 'failed', (c) => c.status === 'failed');
    expect(failed.statusReason).toMatch(/token/i);
    expect(failed.statusReason).not.toContain(ch.accessToken);
    expect((await waitForOutcome(w, ch.id, id)).status).toBe('failed');
    const out = await waitForLogEntry(w, ch.id, 'out', `reply:${id}#1`, (e) => e.status === 'failed');
    expect(out.detail).toMatchObject({ code: 190 });
  });
});

describe('new chats', () => {
  it("starts a new chat with its first message as the run's input, its first workflow task handed straight to this worker", async () => {
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    // The business number itself counts as paired: its first message starts its chat.
    const self = ch.selfAddress;
    const delivery = inboundDeliveryFor(w.client, w.taskQueue);
    const before = { ...delivery.counts };

    const id = await sendText(w, ch, self, `first words ${uid()}`);

    expect(delivery.counts.starts - before.starts).toBe(1);
    // Eager start: Temporal answered the start with the run's first workflow task for this worker.
    expect(delivery.counts.eagerStarts - before.eagerStarts).toBe(1);
    expect(delivery.counts.signalsWithStart - before.signalsWithStart).toBe(0);
    const { events } = await w.client.workflow.getHandle(`chat-${ch.id}-${self}`).fetchHistory();
    expect(historyText(events?.[0])).toContain(id);
    expect(events?.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(false);
    expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
  });

  it('delivers to a running chat whose run this process does not know (another instance started it) in that same run', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const handle = w.client.workflow.getHandle(`chat-${ch.id}-${p}`);
    const { runId } = await handle.describe();
    const elsewhere = new InboundDelivery(w.client, w.taskQueue);
    const text = `from elsewhere ${uid()}`;

    await elsewhere.deliver(ch.id, [
      {
        id: wamid(),
        channelId: ch.id,
        chat: { kind: 'direct', id: p },
        sender: { address: p },
        text,
        timestamp: Date.now(),
      },
    ]);

    // The start is refused (the chat runs), and signal-with-start finds the running chat.
    expect(elsewhere.counts).toEqual({
      updates: 0,
      signals: 0,
      starts: 0,
      eagerStarts: 0,
      signalsWithStart: 1,
      updatesNotTaken: 0,
    });
    expect((await handle.describe()).runId).toBe(runId);
    await fake.waitForSent((s) => s.to === bare(p) && s.text === text, WAIT_MS);
  });
});

describe('running chats', () => {
  /** A paired phone whose chat runs (its first message answered), and the delivery counts from then on. */
  const runningChat = async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const delivery = inboundDeliveryFor(w.client, w.taskQueue);
    const first = await sendText(w, ch, p, `first ${uid()}`);
    expect((await waitForOutcome(w, ch.id, first)).status).toBe('answered');
    return { p, ch, delivery, before: { ...delivery.counts } };
  };

  it("take their next messages as the deliver update: accepted into the chat's history, no signal, answered", async () => {
    const { p, ch, delivery, before } = await runningChat();

    const text = `by update ${uid()}`;
    const id = await sendText(w, ch, p, text);

    expect(delivery.counts.updates - before.updates).toBe(1);
    expect(delivery.counts.signals - before.signals).toBe(0);
    expect(delivery.counts.updatesNotTaken - before.updatesNotTaken).toBe(0);
    const { events } = await w.client.workflow.getHandle(`chat-${ch.id}-${p}`).fetchHistory();
    const accepted = events?.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes) ?? [];
    expect(accepted.some((e) => historyText(e).includes(id))).toBe(true);
    expect(events?.some((e) => e.workflowExecutionSignaledEventAttributes && historyText(e).includes(id))).toBe(false);
    expect((await waitForOutcome(w, ch.id, id)).status).toBe('answered');
    await fake.waitForSent((s) => s.to === bare(p) && s.text === text, WAIT_MS);
  });

  it('that are busy past the wait get the message by signal; the copy the update brings later is dropped, one reply goes out', async () => {
    const { p, ch, delivery, before } = await runningChat();
    // Meta answers sends slowly (within the harness's 3 s client timeout): the chat's workflow task, which sends
    // the echo, runs longer than an update waits.
    fake.setLatency(2500);
    try {
      const text = `slow ${uid()}`;
      const t0 = Date.now();
      const id = await sendText(w, ch, p, text);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
      expect(delivery.counts.updatesNotTaken - before.updatesNotTaken).toBe(1);
      expect(delivery.counts.signals - before.signals).toBe(1);

      // The chat stays on signals for a while: the next message does not wait.
      const next = `next ${uid()}`;
      const t1 = Date.now();
      const nextId = await sendText(w, ch, p, next);
      expect(Date.now() - t1).toBeLessThan(1900);
      expect(delivery.counts.signals - before.signals).toBe(2);
      expect(delivery.counts.updates - before.updates).toBe(0);

      for (const m of [id, nextId]) expect((await waitForOutcome(w, ch.id, m)).status).toBe('answered');
      // Both copies of the slow message reached the chat (the update's, and the signal's); one reply went out.
      const { events } = await w.client.workflow.getHandle(`chat-${ch.id}-${p}`).fetchHistory();
      expect(events?.some((e) => e.workflowExecutionUpdateAcceptedEventAttributes && historyText(e).includes(id))).toBe(
        true,
      );
      expect(events?.some((e) => e.workflowExecutionSignaledEventAttributes && historyText(e).includes(id))).toBe(true);
      await new Promise((r) => setTimeout(r, 1000));
      expect(fake.sent.filter((s) => s.to === bare(p) && s.text === text)).toHaveLength(1);
      expect(fake.sent.filter((s) => s.to === bare(p) && s.text === next)).toHaveLength(1);
    } finally {
      fake.setLatency(0);
    }
  });
});

// Last: restarts the shared instance on the same data dir and task queue.
describe('dedupe across a restart', () => {
  it('drops a redelivery that arrives after the instance restarted', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected', pair: [p] });
    const early = await echoRoundTrip(w, fake, ch, p, `before restart ${uid()}`);
    const { dataDir } = w.config;
    const { taskQueue } = w;

    await w.close();
    w = await startWharf({ graphUrl: fake.url, dataDir, taskQueue });
    await sendText(w, ch, p, early.reply.text, early.id);
    await echoRoundTrip(w, fake, ch, p, `after restart ${uid()}`);

    expect(countSent(fake, p, early.reply.text)).toBe(1);
  }, 90_000);
});
