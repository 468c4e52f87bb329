/**
 * The personal adapter on the real WhatsApp Web protocol: the real Baileys client (no injected socket)
 * inside the real Wharf, against the WhatsApp Web simulator (test/fakes/wa-simulator) — Noise handshake with
 * a test certificate root, QR link, the 515 restart, login with saved creds, Signal-encrypted messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertAuthority } from './fakes/wa-simulator/noise.js';
import { startWaSimulator, type WaSimulator } from './fakes/wa-simulator/server.js';
import { startWharf, type TestWharf } from './support/wharf.js';
import { channelOf, linkChannel, pairContact, pollWith, SIM_WAIT_MS } from './support/simulator.js';

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

/** Polls until `fn` gives a value, with this file's default patience. */
const waitFor = pollWith(SIM_WAIT_MS);

const channel = (id: string) => channelOf(w, id);
const inbound = async (id: string, on = w): Promise<Array<{ chatId: string; address: string; text: string }>> =>
  (
    (await on.api('GET', `/api/channels/${id}/messages?limit=50`)).data as Array<{
      direction: string;
      chatId: string;
      address: string;
      text: string;
    }>
  ).filter((m) => m.direction === 'in');

describe('personal account against the WhatsApp Web simulator', () => {
  it('links by QR (JSON and PNG through the API) and connects as the phone’s number', async () => {
    const owner = sim.addUser('15550001111', 'Owner');
    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_user',
      agent: 'echo',
      space: 'Sim link',
    });
    const id: string = created.data.id;
    const qr = await waitFor(async () => {
      const r = await w.api('GET', `/api/channels/${id}/qr`);
      return r.status === 200 ? r.data : null;
    }, 'a QR through the API');
    expect(qr.qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#2@/);
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
    // A made-up ref is refused: the simulator links only refs it issued.
    expect(() => sim.scan(qr.qr.replace('#2@', '#2@forged'), owner)).toThrow(/not issued/);

    const device = await sim.scan(qr.qr, owner);
    const ch = await waitFor(async () => {
      const c = await channel(id);
      return c.status === 'connected' ? c : null;
    }, 'connected');
    expect(ch.selfAddress).toBe('+15550001111');
    expect((await w.api('GET', `/api/channels/${id}/qr`)).status).toBe(404);
    // Linked, restarted (515) and logged in with the new creds: one device, one login so far.
    expect(sim.linkedDevices(owner)).toEqual([device]);
    expect(device.logins).toBe(1);
  });

  it('pairs a contact by code from the contact’s own phone; the echo reply reaches the contact decrypted and formatted', async () => {
    const owner = sim.addUser('15550002222', 'Owner Two');
    const contact = sim.addUser('15557770001', 'Alice');
    const id = await linkChannel(sim, w, owner, 'Sim echo');

    await pairContact(sim, w, id, owner, contact);

    sim.sendText(contact, owner, 'hello **world** and ~~gone~~');
    const reply = await sim.waitForInbox(contact, (m) => m.text.includes('world'));
    expect(reply.text).toBe('hello *world* and ~gone~');
    expect(reply.from).toBe(owner.pn);
  });

  it('restarts without a new QR, delivers what was sent while it was down, and a logout from the phone ends the session for good', async () => {
    const owner = sim.addUser('15550003333', 'Owner Three');
    const contact = sim.addUser('15557770002', 'Bob');
    const id = await linkChannel(sim, w, owner, 'Sim restart');
    await pairContact(sim, w, id, owner, contact);
    const [device] = sim.linkedDevices(owner);
    const refsBefore = sim.stats.refsIssued;

    // Wharf goes down; the contact writes meanwhile (WhatsApp keeps it for the device).
    const { dataDir } = w.config;
    const taskQueue = w.taskQueue;
    await w.close();
    sim.sendText(contact, owner, 'sent while **down**');
    w = await startWharf({ dataDir, taskQueue, waUrl: sim.url, waCertRoot: sim.certRoot });

    // (Generous: the new worker takes the session over once Temporal sees the old attempt end — its
    // cancellation, or at worst its 30 s heartbeat timeout — and a loaded machine adds to that.)
    const reply = await sim.waitForInbox(contact, (m) => m.text.includes('down'), 100_000);
    expect(reply.text).toBe('sent while *down*');
    expect(sim.stats.refsIssued).toBe(refsBefore);
    expect(device.logins).toBeGreaterThanOrEqual(2);
    expect(device.pending.size).toBe(0);
    await waitFor(async () => ((await channel(id)).status === 'connected' ? true : null), 'connected again');

    // The owner logs the device out from the phone.
    const failuresBefore = sim.stats.failures;
    const loginsBefore = device.logins;
    sim.removeDevice(device);
    const gone = await waitFor(async () => {
      const c = await channel(id);
      return c.status === 'disconnected' ? c : null;
    }, 'disconnected after logout');
    expect(gone.statusReason).toMatch(/revoked|logged out/i);
    const rows = await w.store.db.query("select key from auth_state where channel_id = $1 and key <> '__owner'", [id]);
    expect(rows).toHaveLength(0);
    // Those creds are never tried again.
    await new Promise((r) => setTimeout(r, 2000));
    expect(device.logins).toBe(loginsBefore);
    expect(sim.stats.failures).toBe(failuresBefore);
  }, 180_000);

  it('a contact writing by phone number and by LID lands in one chat; a login elsewhere replaces the session', async () => {
    const owner = sim.addUser('15550004444', 'Owner Four');
    const contact = sim.addUser('15557770003', 'Carol');
    const id = await linkChannel(sim, w, owner, 'Sim lid');
    await pairContact(sim, w, id, owner, contact);
    sim.sendText(contact, owner, 'by lid with its number', { addressing: 'lid' });
    sim.sendText(contact, owner, 'by lid alone', { addressing: 'lid-only' });
    sim.sendText(contact, owner, 'as plaintext', { addressing: 'lid-only', plaintext: true });
    await waitFor(async () => (await inbound(id)).length >= 4, 'four inbound messages');
    const log = await inbound(id);
    expect(new Set(log.map((m) => m.chatId))).toEqual(new Set([`+${contact.pn}`]));
    await sim.waitForInbox(contact, (m) => m.text === 'by lid alone');
    await sim.waitForInbox(contact, (m) => m.text === 'as plaintext');

    // The same linked device logs in elsewhere: WhatsApp replaces this connection; the channel says so.
    const [device] = sim.linkedDevices(owner);
    sim.loginElsewhere(device);
    const replaced = await waitFor(async () => {
      const c = await channel(id);
      return c.status === 'disconnected' ? c : null;
    }, 'disconnected after conflict');
    expect(replaced.statusReason).toMatch(/took over/);
  });

  it('refuses a server whose certificate chain is not signed by the trusted root: no handshake, no QR, the channel says why', async () => {
    const rogue = await startWaSimulator({ ca, forgeChain: true });
    const w2 = await startWharf({ waUrl: rogue.url, waCertRoot: sim.certRoot });
    try {
      const created = await w2.api('POST', '/api/channels', {
        provider: 'whatsapp_user',
        agent: 'echo',
        space: 'Sim rogue',
      });
      const id: string = created.data.id;
      const ch = await waitFor(async () => {
        const c = (await w2.api('GET', `/api/channels/${id}`)).data;
        return /certificate/.test(c.statusReason ?? '') ? c : null;
      }, 'the certificate failure on the channel');
      expect(ch.statusReason).toMatch(/WHARF_WA_CERT_ROOT/);
      expect(ch.status).not.toBe('connected');
      expect(rogue.stats.connections).toBeGreaterThanOrEqual(1);
      expect(rogue.stats.handshakes).toBe(0);
      expect(rogue.stats.refsIssued).toBe(0);
      expect((await w2.api('GET', `/api/channels/${id}/qr`)).status).toBe(404);
    } finally {
      await w2.close({ purge: true });
      await rogue.stop();
    }
  }, 180_000);

  it('tells WhatsApp a message arrived only once it is durable: messages caught by a worker death are redelivered, none lost', async () => {
    // Deliveries to Temporal wait while `hold.on`: the moment between "the socket has it" and "Temporal has it".
    const hold = { on: false };
    const never = new Promise<void>(() => undefined);
    const sessionHooks = { beforeDeliver: async () => (hold.on ? never : undefined) };
    let w3 = await startWharf({ waUrl: sim.url, waCertRoot: sim.certRoot, sessionHooks });
    try {
      const owner = sim.addUser('15550005555', 'Owner Five');
      const contact = sim.addUser('15557770005', 'Dan');
      const id = await linkChannel(sim, w3, owner, 'Sim durable');
      await pairContact(sim, w3, id, owner, contact);
      const [device] = sim.linkedDevices(owner);

      hold.on = true;
      const texts = ['one', 'two', 'three', 'four', 'five'].map((n) => `durable ${n}`);
      const ids = texts.map((t) => sim.sendText(contact, owner, t));
      await waitFor(() => ids.every((i) => device.pending.get(i)?.sentOn), 'the messages on the wire');
      await new Promise((r) => setTimeout(r, 1500));
      // The socket has them, Temporal does not: WhatsApp has not been told they arrived.
      expect(ids.filter((i) => device.pending.has(i))).toEqual(ids);

      // The worker dies with them in flight (its connection drops, its process goes away).
      sim.dropConnection(device);
      const { dataDir } = w3.config;
      const taskQueue = w3.taskQueue;
      await w3.close();
      expect(ids.filter((i) => device.pending.has(i))).toEqual(ids);

      // Another worker takes the session over with the same creds; WhatsApp redelivers; nothing is lost.
      hold.on = false;
      w3 = await startWharf({ dataDir, taskQueue, waUrl: sim.url, waCertRoot: sim.certRoot, sessionHooks });
      await waitFor(
        async () => {
          const got = (await inbound(id, w3)).map((m) => m.text);
          return texts.every((t) => got.includes(t));
        },
        'every message in the log',
        100_000,
      );
      await waitFor(() => device.pending.size === 0, 'every message acknowledged');
      const log = (await inbound(id, w3)).filter((m) => m.text.startsWith('durable'));
      expect(log.map((m) => m.text).sort()).toEqual([...texts].sort());
    } finally {
      await w3.close({ purge: true });
    }
  }, 180_000);
});
