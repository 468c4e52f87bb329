/**
 * Media on a personal account (issue #20), through the product with Baileys' socket replaced by the injected
 * fake: an inbound file is downloaded by Baileys' real `downloadMediaMessage` (encrypted with Baileys' own
 * `encryptedStream`, served over local HTTP), checked and stored, and reaches the echo agent as its line; a
 * file from a host that is not WhatsApp's is never fetched; an agent's file goes out through `sendMessage` as
 * bytes.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encryptedStream, type WAMessage } from '@whiskeysockets/baileys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeBaileys, waMessage, type FakeBaileys, type FakeSocket } from './fakes/baileys-socket.js';
import { startExamplesWorker } from './support/agent-helpers.js';
import { historyText, messageLog, waitFor } from './support/cloud.js';
import { addFileAgent, sha256Hex, storedMedia } from './support/media.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
let fake: FakeBaileys;
let examples: { taskQueue: string; close(): Promise<void> };
let cdn: Server;
let cdnHost: string;
const files = new Map<string, Buffer>();
let downloads = 0;

beforeAll(async () => {
  // WhatsApp's media CDN, as far as a download needs it: encrypted files by path.
  cdn = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    downloads++;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }).end(body);
  });
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
  cdnHost = `127.0.0.1:${(cdn.address() as AddressInfo).port}`;
  fake = createFakeBaileys();
  examples = await startExamplesWorker();
  w = await startWharf({
    makeSocket: (config) => fake.makeSocket(config),
    sessionHooks: { mediaHostAllowed: (host) => host === cdnHost },
  });
  await addFileAgent(w, examples.taskQueue);
});
afterAll(async () => {
  await w?.close({ purge: true });
  await examples?.close();
  await new Promise<void>((resolve) => (cdn ? cdn.close(() => resolve()) : resolve()));
});

/** A connected personal channel: its id, its socket, and the owner's own chat (where the agent answers). */
interface PersonalChannel {
  id: string;
  socket: FakeSocket;
  /** The owner's own chat jid. */
  self: string;
  /** The owner writes `message` in that chat from the phone; returns its id. */
  ownerSends(message: WAMessage['message']): string;
}

/** A connected personal channel bound to `agent`. */
async function personalChannel(agent: string): Promise<PersonalChannel> {
  const index = fake.sockets.length;
  const created = await w.api('POST', '/api/channels', {
    provider: 'whatsapp_user',
    agent,
    space: `Personal media ${randomBytes(3).toString('hex')}`,
  });
  expect(created.status, JSON.stringify(created.data)).toBe(201);
  const socket = await fake.waitForSocket(index);
  await waitFor('a QR', async () => (await w.api('GET', `/api/channels/${created.data.id}/qr`)).status === 200);
  const number = `1555${String(Date.now()).slice(-7)}`;
  socket.scan(number);
  await waitFor(
    'connected',
    async () => (await w.api('GET', `/api/channels/${created.data.id}`)).data.status === 'connected',
  );
  const self = `${number}@s.whatsapp.net`;
  const ownerSends = (message: WAMessage['message']): string => {
    const id = `WA${randomBytes(8).toString('hex').toUpperCase()}`;
    socket.receive([waMessage({ remoteJid: self, fromMe: true, id, message })]);
    return id;
  };
  return { id: created.data.id, socket, self, ownerSends };
}

/** Encrypts `bytes` as WhatsApp does for `type`, puts the ciphertext on the CDN; returns the message fields. */
async function upload(bytes: Buffer, type: 'image' | 'document' | 'audio') {
  const enc = await encryptedStream(bytes, type);
  const path = `/v/t62.${randomBytes(6).toString('hex')}.enc`;
  files.set(path, readFileSync(enc.encFilePath));
  rmSync(enc.encFilePath, { force: true });
  return {
    url: `http://${cdnHost}${path}`,
    mediaKey: enc.mediaKey,
    fileSha256: enc.fileSha256,
    fileEncSha256: enc.fileEncSha256,
    fileLength: enc.fileLength,
  };
}

/** The inbound log entry `id` once its media outcome is recorded. */
async function mediaEntry(channelId: string, id: string) {
  return waitFor('the media on the log', async () => {
    const e = (await messageLog(w, channelId)).find(
      (x) => x.direction === 'in' && x.key === id && (x.detail as { media?: unknown } | null)?.media,
    );
    return e as (typeof e & { detail: { media: Record<string, unknown> } }) | undefined;
  });
}

describe('personal account: inbound media', () => {
  it('an image is downloaded (decrypted by Baileys), checked and stored; echo answers "[image] <caption>"; bytes never in history', async () => {
    const { id: channelId, socket, self, ownerSends } = await personalChannel('echo');
    const bytes = Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), randomBytes(3000)]);
    const media = await upload(bytes, 'image');
    const msgId = ownerSends({ imageMessage: { ...media, mimetype: 'image/jpeg', caption: 'from my phone' } });
    const reply = await waitFor('the echo line', () =>
      socket.sent.find((m) => m.content.text === '[image] from my phone'),
    );
    expect(reply.jid).toBe(self);

    const sha = sha256Hex(bytes);
    const entry = await mediaEntry(channelId, msgId);
    expect(entry.detail.media).toMatchObject(storedMedia(bytes, 'image', 'image/jpeg'));
    const got = await fetch(`${w.url}/api/media/${sha}`, { headers: { authorization: `Bearer ${w.token}` } });
    expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);

    const chatId = entry.chatId;
    const { events } = await w.client.workflow.getHandle(`chat-${channelId}-${chatId}`).fetchHistory();
    const text = historyText(events);
    expect(text).toContain(sha);
    expect(text).not.toContain(bytes.toString('base64').slice(0, 40));
    expect(text).not.toContain(media.mediaKey.toString('base64'));
  });

  it('a voice note answers "[voice note 0:07]"; a file from a host that is not WhatsApp\'s is never fetched; a hash mismatch is reported', async () => {
    const { id: channelId, socket, ownerSends } = await personalChannel('echo');
    const voice = await upload(randomBytes(900), 'audio');
    ownerSends({ audioMessage: { ...voice, mimetype: 'audio/ogg; codecs=opus', ptt: true, seconds: 7 } });
    await waitFor('the voice line', () => socket.sent.find((m) => m.content.text === '[voice note 0:07]'));

    const before = downloads;
    const doc = await upload(randomBytes(500), 'document');
    const evilId = ownerSends({
      documentMessage: {
        ...doc,
        url: 'http://169.254.169.254/latest/meta-data',
        mimetype: 'application/pdf',
        fileName: 'x.pdf',
        caption: 'internal',
      },
    });
    await waitFor('the document line', () => socket.sent.find((m) => m.content.text === '[document x.pdf] internal'));
    expect(downloads).toBe(before);
    expect((await mediaEntry(channelId, evilId)).detail.media.missing).toMatch(/169\.254\.169\.254.* not WhatsApp's/);

    const img = await upload(randomBytes(700), 'image');
    const badId = ownerSends({
      imageMessage: { ...img, fileSha256: randomBytes(32), mimetype: 'image/jpeg', caption: 'tampered' },
    });
    await waitFor('the tampered line', () => socket.sent.find((m) => m.content.text === '[image] tampered'));
    expect((await mediaEntry(channelId, badId)).detail.media.missing).toMatch(/SHA-256/);
  });
});

describe('personal account: an agent answers with files', () => {
  it('a stored image and a document go out through sendMessage as bytes with caption, type and file name', async () => {
    const { socket, self, ownerSends } = await personalChannel('files');
    const jpeg = Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), randomBytes(2000)]);
    ownerSends({ imageMessage: { ...(await upload(jpeg, 'image')), mimetype: 'image/jpeg', caption: 'mirror' } });
    const image = await waitFor('the image back', () => socket.sent.find((m) => m.content.image));
    expect(image.jid).toBe(self);
    expect(image.content.image!.equals(jpeg)).toBe(true);
    expect(image.content).toMatchObject({ caption: 'back to you', mimetype: 'image/jpeg' });
    const text = socket.sent.find((m) => m.content.text === 'Here is your image back.');
    expect(text, 'the text went first').toBeDefined();
    expect(socket.sent.indexOf(text!)).toBeLessThan(socket.sent.indexOf(image));

    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(1500)]);
    ownerSends({
      documentMessage: {
        ...(await upload(pdf, 'document')),
        mimetype: 'application/pdf',
        fileName: 'invoice.pdf',
        caption: 'Invoice',
      },
    });
    const doc = await waitFor('the document back', () => socket.sent.find((m) => m.content.document));
    expect(doc.content.document!.equals(pdf)).toBe(true);
    expect(doc.content).toMatchObject({ mimetype: 'application/pdf', fileName: 'invoice.pdf', caption: 'back to you' });
    // A URL is never fetched by Wharf: it goes as a link in a text.
    const url = `https://files.example.com/${randomBytes(4).toString('hex')}.png`;
    socket.receive([waMessage({ remoteJid: self, fromMe: true, text: `link image ${url}` })]);
    await waitFor('the link as text', () => socket.sent.find((m) => m.content.text === `linked\n${url}`));

    // Each went out once, and the echoes of Wharf's own sends were not taken as new messages.
    await new Promise((r) => setTimeout(r, 1000));
    expect(socket.sent.filter((m) => m.content.image)).toHaveLength(1);
    expect(socket.sent.filter((m) => m.content.document)).toHaveLength(1);
  });
});
