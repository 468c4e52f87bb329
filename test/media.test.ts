/**
 * Inbound media on the Cloud API (issue #20): the file is looked up with the channel's token, downloaded
 * from the URL Meta returned, checked (type, size, SHA-256) and stored outside workflow history; the echo
 * agent answers with its one line, an OpenAI-compatible agent gets an image as a content part, and
 * `GET /api/media/:id` serves the file. A file that cannot be had leaves the message handled, with why.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeCompletions, type ContentPart, type FakeCompletions } from './fakes/chat-completions-server.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  bare,
  cloudChannel,
  historyText,
  messageLog,
  phone,
  vaultItem,
  waitFor,
  type CloudSetup,
} from './support/cloud.js';
import { openAiChannel, pngBytes, sendMedia, sha256Hex, storedMedia } from './support/media.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;
let llm: FakeCompletions;
let ch: CloudSetup;
let friend: string;

beforeAll(async () => {
  fake = await startFakeGraph();
  llm = await startFakeCompletions({ apiKeys: ['sk-media-test'], reply: () => 'I see it.' });
  w = await startWharf({ graphUrl: fake.url });
  friend = phone();
  ch = await cloudChannel(w, fake, { pair: [friend] });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
  await llm?.close();
});

/** The log entry of an inbound message once its outcome is in, with its media detail. */
async function mediaEntry(target: CloudSetup, id: string) {
  return waitFor('the media on the log', async () => {
    const e = (await messageLog(w, target.id)).find((x) => x.key === id && x.status !== 'received');
    return e && (e.detail as { media?: unknown } | null)?.media
      ? (e as typeof e & { detail: { media: Record<string, unknown> } })
      : undefined;
  });
}

describe('inbound media to the echo agent', () => {
  it('an image: stored by its SHA-256, served by GET /api/media/:id, answered "[image] <caption>", bytes never in history', async () => {
    const bytes = pngBytes();
    const mediaId = String(Date.now());
    fake.addMedia(mediaId, { bytes, mime: 'image/png' });
    const id = await sendMedia(w, ch, friend, 'image', {
      id: mediaId,
      mime_type: 'image/png',
      caption: 'look at this',
      sha256: createHash('sha256').update(bytes).digest('base64'),
    });
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === '[image] look at this', 20_000);

    const entry = await mediaEntry(ch, id);
    const sha = sha256Hex(bytes);
    expect(entry.type).toBe('image');
    expect(entry.detail.media).toMatchObject(storedMedia(bytes, 'image', 'image/png'));

    const got = await fetch(`${w.url}/api/media/${sha}`, { headers: { authorization: `Bearer ${w.token}` } });
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('image/png');
    expect(got.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    expect((await fetch(`${w.url}/api/media/${sha}`)).status).toBe(401);
    expect((await w.api('GET', `/api/media/${'0'.repeat(64)}`)).status).toBe(404);

    // The download carried the channel's token, to the URL Meta's lookup returned.
    const download = fake.calls.find((c) => c.path === `/media-download/${mediaId}`);
    expect(download?.auth).toBe(ch.accessToken);

    const { events } = await w.client.workflow.getHandle(`chat-${ch.id}-${friend}`).fetchHistory();
    const text = historyText(events);
    expect(text).not.toContain(bytes.toString('base64').slice(0, 40));
    expect(text).toContain(sha);
  });

  it('a voice note answers "[voice note]", a document "[document <name>] <caption>", a sticker "[sticker]"', async () => {
    const voice = pngBytes(512);
    fake.addMedia('voice-1', { bytes: voice, mime: 'audio/ogg; codecs=opus' });
    await sendMedia(w, ch, friend, 'audio', { id: 'voice-1', mime_type: 'audio/ogg; codecs=opus', voice: true });
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === '[voice note]', 20_000);

    fake.addMedia('doc-1', { bytes: pngBytes(), mime: 'application/pdf' });
    await sendMedia(w, ch, friend, 'document', {
      id: 'doc-1',
      mime_type: 'application/pdf',
      filename: 'invoice.pdf',
      caption: 'Invoice',
    });
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === '[document invoice.pdf] Invoice', 20_000);

    fake.addMedia('stk-1', { bytes: pngBytes(300), mime: 'image/webp' });
    await sendMedia(w, ch, friend, 'sticker', { id: 'stk-1', mime_type: 'image/webp', animated: false });
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === '[sticker]', 20_000);
  });

  it('an expired download URL is looked up again and the file still arrives', async () => {
    const bytes = pngBytes();
    fake.addMedia('late-1', { bytes, mime: 'image/jpeg', expiredUrls: 2 });
    const id = await sendMedia(w, ch, friend, 'image', { id: 'late-1', mime_type: 'image/jpeg', caption: 'late' });
    await fake.waitForSent((s) => s.to === bare(friend) && s.text === '[image] late', 20_000);
    const entry = await mediaEntry(ch, id);
    expect(entry.detail.media).toMatchObject({ sha256: sha256Hex(bytes) });
    // Three lookups (two URLs had expired), three downloads.
    expect(fake.calls.filter((c) => c.path.endsWith('/late-1') && !c.path.startsWith('/media-download')).length).toBe(
      3,
    );
  });

  it('a hash mismatch, a file over the limit and a wrong type: the message is still answered, the log says why', async () => {
    fake.addMedia('bad-hash', { bytes: pngBytes(), mime: 'image/png', sha256: 'f'.repeat(64) });
    const a = await sendMedia(w, ch, friend, 'image', { id: 'bad-hash', mime_type: 'image/png', caption: 'tampered' });
    fake.addMedia('too-big', { bytes: pngBytes(), mime: 'image/png', fileSize: 6 * 1024 * 1024 });
    const b = await sendMedia(w, ch, friend, 'image', { id: 'too-big', mime_type: 'image/png', caption: 'huge' });
    fake.addMedia('wrong-type', { bytes: pngBytes(), mime: 'text/html' });
    const c = await sendMedia(w, ch, friend, 'image', { id: 'wrong-type', mime_type: 'text/html', caption: 'sneaky' });
    for (const text of ['[image] tampered', '[image] huge', '[image] sneaky'])
      await fake.waitForSent((s) => s.to === bare(friend) && s.text === text, 20_000);
    expect((await mediaEntry(ch, a)).detail.media.missing).toMatch(/SHA-256/);
    expect((await mediaEntry(ch, b)).detail.media.missing).toMatch(/over the .* limit/);
    expect((await mediaEntry(ch, c)).detail.media.missing).toMatch(/text\/html/);
    expect((await mediaEntry(ch, a)).detail.media.id).toBeUndefined();
  });
});

describe('inbound media to an OpenAI-compatible agent', () => {
  it('an image reaches the model as an image content part (data URL), with the caption as text', async () => {
    const { ch: vision, from: seer } = await openAiChannel(w, fake, {
      id: `vision-${Date.now()}`,
      baseUrl: llm.baseUrl,
      model: 'gpt-vision',
      apiKey: await vaultItem(w, `llm-key-${Date.now()}`, 'sk-media-test'),
    });
    const bytes = pngBytes();
    fake.addMedia('vision-1', { bytes, mime: 'image/jpeg' });
    await sendMedia(w, vision, seer, 'image', { id: 'vision-1', mime_type: 'image/jpeg', caption: 'what is this?' });
    const req = await llm.waitForRequest((r) => Array.isArray(r.body?.messages.at(-1)?.content), 20_000);
    const parts = req.body!.messages.at(-1)!.content as ContentPart[];
    expect(parts[0]).toEqual({ type: 'text', text: 'what is this?' });
    expect(parts[1]).toEqual({
      type: 'image_url',
      image_url: { url: `data:image/jpeg;base64,${bytes.toString('base64')}` },
    });
    await fake.waitForSent((s) => s.to === bare(seer) && s.text === 'I see it.', 20_000);
  });
});
