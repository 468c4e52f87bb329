/**
 * Agents answer with files (issue #20), on the Cloud API: a stored file is uploaded to Meta (multipart) and
 * sent by its media id, a URL goes to Meta as `link` (Wharf never fetches it), each as the right message type
 * with its caption and file name; retries and a crashed attempt's successor never send a file twice, and a
 * retried send reuses the upload. Bytes never enter workflow history.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatActivities } from '../activities/chat-activities.js';
import { createGraphClient } from '../lib/graph/graph-client.js';
import { createLogger } from '../lib/logger.js';
import { createPolicyService } from '../lib/policy/service.js';
import { startFakeCompletions, type FakeCompletions } from './fakes/chat-completions-server.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import { startExamplesWorker } from './support/agent-helpers.js';
import {
  bare,
  cloudChannel,
  historyText,
  messageLog,
  phone,
  sendText,
  vaultItem,
  waitFor,
  type CloudSetup,
} from './support/cloud.js';
import { addFileAgent, openAiChannel, pngBytes, sendMedia, sha256Hex } from './support/media.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;
let llm: FakeCompletions;
let examples: { taskQueue: string; close(): Promise<void> };
let ch: CloudSetup;
let friend: string;

beforeAll(async () => {
  fake = await startFakeGraph();
  llm = await startFakeCompletions({
    apiKeys: ['sk-outbound-test'],
    reply: () => 'Here is a cat.\n\n![a cat](https://cdn.example.com/cat.png)\n\nAnything else?',
  });
  examples = await startExamplesWorker();
  // A send attempt waits 1 s for an upload (20 s in the product): the slow-upload test below needs no minute.
  w = await startWharf({ graphUrl: fake.url, uploadWaitMs: 1000 });
  await addFileAgent(w, examples.taskQueue);
  friend = phone();
  ch = await cloudChannel(w, fake, { agent: 'files', pair: [friend] });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await examples?.close();
  await fake?.close();
  await llm?.close();
});

/**
 * The friend sends an image (`mediaId` at the fake) to the file agent, which sends it back: it is uploaded
 * once and sent once, and the message is answered.
 */
async function imageComesBackOnce(mediaId: string, bytes: Buffer, caption: string): Promise<void> {
  fake.addMedia(mediaId, { bytes, mime: 'image/png' });
  const id = await sendMedia(w, ch, friend, 'image', { id: mediaId, mime_type: 'image/png', caption });
  const image = await fake.waitForSent(
    (s) =>
      s.to === bare(friend) &&
      s.type === 'image' &&
      fake.uploads.some((u) => u.id === s.media?.id && u.bytes.equals(bytes)),
    30_000,
  );
  await waitFor('answered', async () =>
    (await messageLog(w, ch.id)).find((e) => e.direction === 'in' && e.key === id && e.status === 'answered'),
  );
  expect(fake.uploads.filter((u) => u.bytes.equals(bytes))).toHaveLength(1);
  expect(fake.sent.filter((s) => s.media?.id === image.media?.id)).toHaveLength(1);
}

describe('a Temporal agent answers with files (Cloud API)', () => {
  it('a stored image is uploaded (multipart) and sent as an image message with its caption, after the text; no bytes in history', async () => {
    const bytes = pngBytes();
    fake.addMedia('out-img-1', { bytes, mime: 'image/png' });
    const id = await sendMedia(w, ch, friend, 'image', {
      id: 'out-img-1',
      mime_type: 'image/png',
      caption: 'mirror this',
    });

    const image = await fake.waitForSent((s) => s.to === bare(friend) && s.type === 'image', 20_000);
    const text = fake.sent.find((s) => s.to === bare(friend) && s.text === 'Here is your image back.');
    expect(text, 'the text went first').toBeDefined();
    expect(text!.at).toBeLessThanOrEqual(image.at);
    const upload = fake.uploads.find((u) => u.id === image.media?.id);
    expect(upload, 'sent by the id of an upload of this phone number').toBeDefined();
    expect(upload!.phoneNumberId).toBe(ch.phoneNumberId);
    expect(upload!.bytes.equals(bytes)).toBe(true);
    expect(upload!.mime).toBe('image/png');
    expect(upload!.type).toBe('image/png');
    expect(image.media).toEqual({ id: upload!.id, caption: 'back to you' });
    expect(image.body).toMatchObject({ messaging_product: 'whatsapp', recipient_type: 'individual', type: 'image' });
    const uploadCall = fake.calls.find((c) => c.method === 'POST' && c.path.endsWith(`/${ch.phoneNumberId}/media`));
    expect(uploadCall?.auth).toBe(ch.accessToken);

    // The log: the inbound message answered, the file's part an `image` entry linking the stored file.
    const out = await waitFor('the image on the log', async () =>
      (await messageLog(w, ch.id)).find(
        (e) => e.direction === 'out' && e.key === `reply:${id}#f1` && e.status === 'accepted',
      ),
    );
    expect(out.type).toBe('image');
    expect((out.detail as { attachment?: unknown }).attachment).toMatchObject({
      kind: 'image',
      mediaId: sha256Hex(bytes),
      url: `/api/media/${sha256Hex(bytes)}`,
      caption: 'back to you',
    });
    expect(out.providerId).toBe(image.wamid);
    await waitFor('answered', async () =>
      (await messageLog(w, ch.id)).find((e) => e.direction === 'in' && e.key === id && e.status === 'answered'),
    );

    const { events } = await w.client.workflow.getHandle(`chat-${ch.id}-${friend}`).fetchHistory();
    const history = historyText(events);
    expect(history).not.toContain(bytes.toString('base64').slice(0, 40));
    expect(history).toContain(sha256Hex(bytes));
    expect(JSON.stringify(events).length).toBeLessThan(200_000);
  });

  it('a stored document goes as a document message with caption and file name', async () => {
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(4096)]);
    fake.addMedia('out-doc-1', { bytes: pdf, mime: 'application/pdf' });
    await sendMedia(w, ch, friend, 'document', {
      id: 'out-doc-1',
      mime_type: 'application/pdf',
      filename: 'invoice.pdf',
      caption: 'Invoice',
    });
    const doc = await fake.waitForSent((s) => s.to === bare(friend) && s.type === 'document', 20_000);
    expect(doc.media).toMatchObject({ caption: 'back to you', filename: 'invoice.pdf' });
    const upload = fake.uploads.find((u) => u.id === doc.media?.id);
    expect(upload?.bytes.equals(pdf)).toBe(true);
    expect(upload?.filename).toBe('invoice.pdf');
    expect(upload?.mime).toBe('application/pdf');
  });

  it('a URL goes to Meta as `link` (nothing uploaded, nothing fetched by Wharf)', async () => {
    const url = `https://files.example.com/${randomBytes(4).toString('hex')}/report.pdf`;
    const before = fake.uploads.length;
    await sendText(w, ch, friend, `link document ${url}`);
    const doc = await fake.waitForSent((s) => s.to === bare(friend) && s.media?.link === url, 20_000);
    expect(doc.type).toBe('document');
    expect(doc.media).toEqual({ link: url, caption: 'linked' });
    expect(fake.uploads.length).toBe(before);
  });

  it('Meta unavailable twice (text, then file after its upload): each part goes out once and the upload is reused', async () => {
    fake.failNext(2, { status: 503, code: 131000, title: 'Something went wrong' });
    const t0 = Date.now();
    await imageComesBackOnce('out-retry-1', pngBytes(1024), 'flaky');
    expect(
      fake.sent.filter((s) => s.to === bare(friend) && s.text === 'Here is your image back.' && s.at >= t0),
    ).toHaveLength(1);
  });

  it('an upload slower than an attempt waits goes on: the retries join it, the file is uploaded and sent once', async () => {
    fake.setUploadLatency(4000);
    try {
      await imageComesBackOnce('out-slow-1', pngBytes(2048), 'slow');
    } finally {
      fake.setUploadLatency(0);
    }
  });

  it('an attempt waits for an upload only so long, then fails to be retried; the retry joins the same upload', async () => {
    const bytes = pngBytes(4096);
    const stored = await w.store.media.put(bytes, 'image/png');
    const acts = createChatActivities({
      store: w.store,
      graph: createGraphClient({ baseUrl: fake.url, version: 'v23.0', timeoutMs: 3000 }),
      policy: createPolicyService(w.store),
      client: w.client,
      log: createLogger('silent'),
      uploadWaitMs: 300,
    });
    const replies = [
      {
        to: friend,
        replyKey: `slow-${randomBytes(4).toString('hex')}`,
        markdown: '',
        attachments: [{ kind: 'image' as const, mediaId: stored.id }],
      },
    ];
    fake.setUploadLatency(1500);
    try {
      const t0 = Date.now();
      await expect(acts.deliverReplies({ channelId: ch.id, chatId: friend, replies })).rejects.toMatchObject({
        type: 'WharfSendInProgress',
        message: expect.stringMatching(/still uploading/),
      });
      expect(Date.now() - t0).toBeLessThan(1500);
      // Temporal tries again while the upload runs: the claim was given back, and the attempt waits on the
      // upload already running — it starts no second one.
      await expect(acts.deliverReplies({ channelId: ch.id, chatId: friend, replies })).rejects.toMatchObject({
        type: 'WharfSendInProgress',
      });
      await new Promise((resolve) => setTimeout(resolve, 2500)); // past the end of any upload begun so far
      const again = await acts.deliverReplies({ channelId: ch.id, chatId: friend, replies });
      expect(again).toEqual([{ ok: true, ids: [expect.any(String)] }]);
      const uploaded = fake.uploads.filter((u) => u.bytes.equals(bytes));
      expect(uploaded).toHaveLength(1);
      expect(fake.sent.filter((s) => s.media?.id === uploaded[0].id)).toHaveLength(1);
    } finally {
      fake.setUploadLatency(0);
    }
  });

  it('a retried delivery after a crash (parts recorded) sends nothing again; a file WhatsApp cannot take fails that reply only', async () => {
    const bytes = pngBytes(512);
    const stored = await w.store.media.put(bytes, 'image/png');
    const graph = createGraphClient({ baseUrl: fake.url, version: 'v23.0', timeoutMs: 3000 });
    const acts = createChatActivities({
      store: w.store,
      graph,
      policy: createPolicyService(w.store),
      client: w.client,
      log: createLogger('silent'),
    });
    const key = `crash-${randomBytes(4).toString('hex')}`;
    const replies = [
      {
        to: friend,
        replyKey: key,
        markdown: 'one file',
        attachments: [{ kind: 'image' as const, mediaId: stored.id, caption: 'once' }],
      },
    ];

    const first = await acts.deliverReplies({ channelId: ch.id, chatId: friend, replies });
    expect(first).toEqual([{ ok: true, ids: [expect.any(String), expect.any(String)] }]);
    const sentBefore = fake.sent.length;
    const uploadsBefore = fake.uploads.length;
    // The worker died after Meta accepted and the store recorded it; Temporal runs the activity again.
    const again = await acts.deliverReplies({ channelId: ch.id, chatId: friend, replies });
    expect(again).toEqual(first);
    expect(fake.sent.length).toBe(sentBefore);
    expect(fake.uploads.length).toBe(uploadsBefore);

    // A text file is no image: refused for good, recorded, and the other reply still goes.
    const txt = await w.store.media.put(Buffer.from(`plain ${randomBytes(8).toString('hex')}`), 'text/plain');
    const mixed = await acts.deliverReplies({
      channelId: ch.id,
      chatId: friend,
      replies: [
        { to: friend, replyKey: `${key}-bad`, markdown: '', attachments: [{ kind: 'image', mediaId: txt.id }] },
        { to: friend, replyKey: `${key}-good`, markdown: 'still here' },
      ],
    });
    expect(mixed[0]).toMatchObject({
      ok: false,
      type: 'WharfSendRejected',
      message: expect.stringMatching(/text\/plain/),
    });
    expect(mixed[1]).toMatchObject({ ok: true });
    const failed = (await messageLog(w, ch.id)).find((e) => e.direction === 'out' && e.key === `${key}-bad#f1`);
    expect(failed).toMatchObject({ status: 'failed', type: 'image' });
  });
});

describe('POST /api/media', () => {
  it('stores a file an agent can send (201 with its id); a type WhatsApp does not send, an empty body or no token is refused', async () => {
    const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(256)]);
    const post = (body: Buffer, type: string, auth = true) =>
      fetch(`${w.url}/api/media`, {
        method: 'POST',
        headers: { 'content-type': type, ...(auth ? { authorization: `Bearer ${w.token}` } : {}) },
        body: new Uint8Array(body),
      });
    const r = await post(pdf, 'application/pdf');
    expect(r.status).toBe(201);
    expect(await r.json()).toEqual({
      id: sha256Hex(pdf),
      mime: 'application/pdf',
      size: pdf.length,
      sha256: sha256Hex(pdf),
      url: `/api/media/${sha256Hex(pdf)}`,
    });
    const back = await fetch(`${w.url}/api/media/${sha256Hex(pdf)}`, {
      headers: { authorization: `Bearer ${w.token}` },
    });
    expect(Buffer.from(await back.arrayBuffer()).equals(pdf)).toBe(true);

    const html = await post(Buffer.from('<script>alert(1)</script>'), 'text/html');
    expect(html.status).toBe(400);
    expect(((await html.json()) as { error: { code: string } }).error.code).toBe('validation_failed');
    expect((await post(Buffer.alloc(0), 'image/png')).status).toBe(400);
    expect((await post(pdf, 'application/pdf', false)).status).toBe(401);
  });
});

describe('an OpenAI-compatible agent answers with an image', () => {
  it('a Markdown image with an https URL becomes an image message (link, alt text as caption); the text goes without it', async () => {
    const { ch: painter, from: asker } = await openAiChannel(w, fake, {
      id: `painter-${Date.now()}`,
      baseUrl: llm.baseUrl,
      model: 'gpt-test',
      apiKey: await vaultItem(w, `llm-key-${Date.now()}`, 'sk-outbound-test'),
    });
    await sendText(w, painter, asker, 'show me a cat');
    const image = await fake.waitForSent((s) => s.to === bare(asker) && s.type === 'image', 20_000);
    expect(image.media).toEqual({ link: 'https://cdn.example.com/cat.png', caption: 'a cat' });
    const text = await fake.waitForSent((s) => s.to === bare(asker) && s.text.startsWith('Here is'), 20_000);
    expect(text.text).toBe('Here is a cat.\n\nAnything else?');
  });
});

describe('an OpenAI-compatible agent hears voice notes', () => {
  it('with a transcription model the audio is transcribed first (OpenAI multipart shape) and the agent gets the text; without, it is described', async () => {
    const keyRef = await vaultItem(w, `llm-key-t-${Date.now()}`, 'sk-outbound-test');
    const listener = `listener-${Date.now()}`;
    const bad = await w.api('POST', '/api/agents', {
      id: `${listener}-bad`,
      kind: 'openai',
      baseUrl: llm.baseUrl,
      model: 'm',
      apiKey: keyRef,
      transcription: { model: '', url: 'x' },
    });
    expect(bad.status).toBe(400);
    const { ch: heard, from: speaker } = await openAiChannel(w, fake, {
      id: listener,
      baseUrl: llm.baseUrl,
      model: 'gpt-test',
      apiKey: keyRef,
      transcription: { model: 'whisper-1' },
    });
    const voice = Buffer.concat([Buffer.from('OggS'), randomBytes(1200)]);
    fake.addMedia('voice-t-1', { bytes: voice, mime: 'audio/ogg; codecs=opus' });
    await sendMedia(w, heard, speaker, 'audio', { id: 'voice-t-1', mime_type: 'audio/ogg; codecs=opus', voice: true });
    const req = await llm.waitForRequest(
      (r) => JSON.stringify(r.body?.messages.at(-1) ?? '').includes('Transcript'),
      20_000,
    );
    expect(req.body!.messages.at(-1)!.content).toBe(
      `(The sender sent a voice note.)\n(Transcript: transcript of ${voice.length} bytes)`,
    );
    const t = llm.transcriptions.find((x) => x.bytes.equals(voice));
    expect(t).toMatchObject({
      model: 'whisper-1',
      mime: 'audio/ogg',
      filename: 'audio.ogg',
      apiKey: 'sk-outbound-test',
      status: 200,
    });

    // The same voice note to an agent without transcription: described, not sent anywhere.
    const { ch: described, from: other } = await openAiChannel(w, fake, {
      id: `plain-${Date.now()}`,
      baseUrl: llm.baseUrl,
      model: 'gpt-test',
      apiKey: keyRef,
    });
    const count = llm.transcriptions.length;
    const before = llm.requests.length;
    await sendMedia(w, described, other, 'audio', {
      id: 'voice-t-1',
      mime_type: 'audio/ogg; codecs=opus',
      voice: true,
    });
    await llm.waitForRequest(
      (r) =>
        llm.requests.indexOf(r) >= before && r.body?.messages.at(-1)?.content === '(The sender sent a voice note.)',
      20_000,
    );
    expect(llm.transcriptions.length).toBe(count);
  });
});
