/**
 * A personal-account channel end to end through the product: the API, the channel workflow's session
 * loop, the session activity on the shared queue, sends on the session worker's own queue — with Baileys'
 * socket replaced by the injected fake (WhatsApp cannot be reached from here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeBaileys, waMessage, type FakeBaileys } from './fakes/baileys-socket.js';
import { startWharf, type TestWharf } from './support/wharf.js';
import { waitFor as poll } from './support/cloud.js';

let w: TestWharf;
let fake: FakeBaileys;

beforeAll(async () => {
  fake = createFakeBaileys();
  w = await startWharf({ makeSocket: (config) => fake.makeSocket(config) });
});
afterAll(async () => {
  await w?.close({ purge: true });
});

/** Polls until `fn` gives a value (test/support/cloud.ts), with this file's default patience. */
const waitFor = <T>(
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  what: string,
  timeoutMs = 20_000,
): Promise<T> => poll(what, fn, timeoutMs);

describe('personal-account channel through the product', () => {
  it('shows a QR, connects on scan, answers the owner’s own chat formatted, ignores strangers, and disconnects cleanly on logout', async () => {
    // Arrange: a new personal channel starts its session and shows a QR.
    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_user',
      agent: 'echo',
      space: 'Personal e2e',
    });
    expect(created.status).toBe(201);
    const id: string = created.data.id;
    const socket = await fake.waitForSocket(0);
    const qr = await waitFor(async () => {
      const r = await w.api('GET', `/api/channels/${id}/qr`);
      return r.status === 200 ? r.data : null;
    }, 'a QR through the API');
    expect(qr.qr).toBe(socket.qrs.at(-1));
    expect(qr.dataUrl).toMatch(/^data:image\/png;base64,/);
    const png = await fetch(`${w.url}/api/channels/${id}/qr?format=png`, {
      headers: { authorization: `Bearer ${w.token}` },
    });
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(
      Buffer.from(await png.arrayBuffer())
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');

    // Act: the phone scans.
    socket.scan('15550001111');
    const connected = await waitFor(async () => {
      const ch = (await w.api('GET', `/api/channels/${id}`)).data;
      return ch.status === 'connected' ? ch : null;
    }, 'connected');
    expect(connected.selfAddress).toBe('+15550001111');
    expect((await w.api('GET', `/api/channels/${id}/qr`)).status).toBe(404);

    // The owner's "Message yourself" chat reaches the echo agent; the reply is WhatsApp-formatted.
    socket.receive([
      waMessage({ remoteJid: '15550001111@s.whatsapp.net', fromMe: true, text: 'hi **there** and ~~gone~~' }),
    ]);
    const reply = await waitFor(() => socket.sent.find((m) => m.content.text.includes('there')), 'the echo reply');
    expect(reply.content.text).toBe('hi *there* and ~gone~');
    expect(reply.jid).toBe('15550001111@s.whatsapp.net');

    // Our own reply coming back through the socket is not taken as a new message.
    socket.receive([
      waMessage({ remoteJid: '15550001111@s.whatsapp.net', fromMe: true, id: reply.id, text: reply.content.text }),
    ]);
    // A stranger gets nothing (default policy: paired senders only).
    socket.receive([waMessage({ remoteJid: '15559990000@s.whatsapp.net', text: 'hello?' })]);
    await waitFor(async () => {
      const log = (await w.api('GET', `/api/channels/${id}/messages?limit=20`)).data as Array<{
        address: string;
        status: string;
      }>;
      return log.some((m) => m.address === '+15559990000' && m.status === 'denied');
    }, 'the stranger denied on the message log');
    expect(socket.sent.filter((m) => m.content.text.includes('there'))).toHaveLength(1);
    expect(socket.sent.some((m) => m.jid.startsWith('15559990000'))).toBe(false);

    // Assert: a logout from the phone disconnects for good and clears the auth state.
    socket.close(401, 'Connection Failure');
    const gone = await waitFor(async () => {
      const ch = (await w.api('GET', `/api/channels/${id}`)).data;
      return ch.status === 'disconnected' ? ch : null;
    }, 'disconnected after logout');
    expect(gone.statusReason).toMatch(/revoked|logged out/i);
    // Only the session's ownership fence may remain: no creds, no signal keys.
    const rows = await w.store.db.query("select key from auth_state where channel_id = $1 and key <> '__owner'", [id]);
    expect(rows).toHaveLength(0);
  });
});
