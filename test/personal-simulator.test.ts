/**
 * The personal adapter on the real WhatsApp Web protocol: the real Baileys client (no injected socket)
 * inside the real Wharf, against the WhatsApp Web simulator (test/fakes/wa-simulator) — Noise handshake with
 * a test certificate root, QR link, the 515 restart, login with saved creds, Signal-encrypted messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertAuthority } from './fakes/wa-simulator/noise.js';
import { startWaSimulator, type SimUser, type WaSimulator } from './fakes/wa-simulator/server.js';
import { startWharf, type TestWharf } from './support/wharf.js';

// Baileys reads one certificate root per process: every simulator of this file is issued by this authority.
const ca = createCertAuthority();
let sim: WaSimulator;
let w: TestWharf;

beforeAll(async () => {
  sim = await startWaSimulator({ ca });
  w = await startWharf({ waUrl: sim.url, waCertRoot: sim.certRoot });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await sim?.stop();
});

async function waitFor<T>(
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const channel = async (id: string) => (await w.api('GET', `/api/channels/${id}`)).data;

async function linkChannel(space: string, owner: SimUser): Promise<string> {
  const created = await w.api('POST', '/api/channels', { provider: 'whatsapp_user', agent: 'echo', space });
  expect(created.status).toBe(201);
  const id: string = created.data.id;
  const qr = await waitFor(async () => {
    const r = await w.api('GET', `/api/channels/${id}/qr`);
    return r.status === 200 ? r.data : null;
  }, 'a QR through the API');
  await sim.scan(qr.qr, owner);
  await waitFor(async () => ((await channel(id)).status === 'connected' ? true : null), 'connected');
  return id;
}

describe('personal account against the WhatsApp Web simulator', () => {
  it('links by QR and connects as the phone’s number', async () => {
    const owner = sim.addUser('15550001111', 'Owner');
    const id = await linkChannel('Sim link', owner);
    const ch = await channel(id);
    expect(ch.selfAddress).toBe('+15550001111');
  });

  it('pairs a contact by code from the contact’s own phone; the echo reply reaches the contact decrypted and formatted', async () => {
    const owner = sim.addUser('15550002222', 'Owner Two');
    const contact = sim.addUser('15557770001', 'Alice');
    const id = await linkChannel('Sim echo', owner);

    const pairing = await w.api('POST', `/api/channels/${id}/pair`);
    expect(pairing.status).toBe(200);
    sim.sendText(contact, owner, pairing.data.code);
    await waitFor(
      async () => ((await channel(id)).pairedAddresses as Array<{ address: string }>).some((p) => p.address === '+15557770001'),
      'the contact paired',
    );

    sim.sendText(contact, owner, 'hello **world** and ~~gone~~');
    const reply = await sim.waitForInbox(contact, (m) => m.text.includes('world'));
    expect(reply.text).toBe('hello *world* and ~gone~');
    expect(reply.from).toBe(owner.pn);
  });
});
