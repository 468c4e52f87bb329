/**
 * Group messages on a personal account, on the real WhatsApp Web protocol: the real Baileys client inside
 * the real Wharf against the simulator (test/fakes/wa-simulator). Members' phones write with Signal sender
 * keys (a SenderKeyDistributionMessage pairwise, then `skmsg`); the echo reply goes out as Baileys sends a
 * group message (metadata query, device lists, sender key to every member's device, one `skmsg`) and is
 * read by the members' simulated phones. Policy gates it: the default lets no group message through.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertAuthority } from './fakes/wa-simulator/noise.js';
import { startWaSimulator, type SimGroup, type SimUser, type WaSimulator } from './fakes/wa-simulator/server.js';
import { startWharf, type TestWharf } from './support/wharf.js';
import { linkChannel, pairContact, pollWith, SIM_WAIT_MS } from './support/simulator.js';

// Baileys reads one certificate root per process: the simulator of this file is issued by this authority.
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

const GROUP_POLICY =
  'permit(principal, action == Policy::Action::"receive_message", resource) when { resource.chat.kind == "group" };\n';

/** Polls until `fn` gives a value, with this file's default patience. */
const waitFor = pollWith(SIM_WAIT_MS);

interface LogEntry {
  direction: 'in' | 'out';
  chatId: string;
  address: string;
  text: string;
  status: string;
  reason?: string;
}
const log = async (id: string): Promise<LogEntry[]> =>
  (await w.api('GET', `/api/channels/${id}/messages?limit=100`)).data as LogEntry[];

/** The reply the account's linked device sent to the group, as `member`'s phone decrypted it. */
const groupReply = (member: SimUser, owner: SimUser, group: SimGroup, text: string, timeoutMs = 30_000) =>
  sim.waitForInbox(member, (m) => m.group === group.jid && m.from === owner.pn && m.text === text, timeoutMs);

describe('group messages on a personal account (sender keys) against the WhatsApp Web simulator', () => {
  it('the default policy lets no group message through, even from a paired sender; a group policy does, and the echo reply reaches every member decrypted', async () => {
    const owner = sim.addUser('15550101111', 'Owner');
    const alice = sim.addUser('15557771001', 'Alice');
    const bob = sim.addUser('15557771002', 'Bob');
    const id = await linkChannel(sim, w, owner, 'Sim groups');
    await pairContact(sim, w, id, owner, alice);
    const [device] = sim.linkedDevices(owner);
    const group = sim.createGroup('Hiking', alice, [owner, bob]);

    // Default policy: the message arrives (the device decrypts it with Alice's sender key) and is denied.
    const skdmBefore = sim.stats.senderKeysDistributed;
    const deniedId = await sim.sendGroupText(alice, group, 'group **one**');
    const denied = await waitFor(
      async () =>
        (await log(id)).find((m) => m.direction === 'in' && m.text === 'group **one**' && m.status !== 'received'),
      'the group message in the log, decided',
    );
    expect(denied).toMatchObject({ chatId: group.jid, address: `+${alice.pn}`, status: 'denied' });
    expect(sim.stats.senderKeysDistributed).toBe(skdmBefore + 1);
    // It was taken in (acknowledged to WhatsApp), and nothing was answered.
    await waitFor(() => !device.pending.has(deniedId), 'the denied message acknowledged');
    await new Promise((r) => setTimeout(r, 2000));
    expect((await log(id)).filter((m) => m.direction === 'out' && m.chatId === group.jid)).toEqual([]);
    expect(alice.inbox.filter((m) => m.group === group.jid)).toEqual([]);
    const check = { channel: id, sender: `+${alice.pn}`, chat: { kind: 'group', id: group.jid } };
    expect((await w.api('POST', '/api/policies/check', check)).data.decision).toBe('deny');

    // A policy that lets group chats through.
    expect((await w.api('PUT', '/api/policies', { policies: GROUP_POLICY })).status).toBe(200);
    expect((await w.api('POST', '/api/policies/check', check)).data.decision).toBe('allow');

    // Alice writes again: the device holds her key now, so the envelope carries the `skmsg` alone.
    await sim.sendGroupText(alice, group, 'group **two**');
    for (const member of [alice, bob]) {
      const reply = await groupReply(member, owner, group, 'group *two*');
      expect(reply.to).toBe(group.jid);
    }
    expect(sim.stats.senderKeysDistributed).toBe(skdmBefore + 1);
    // The owner's own phone is a member too: it reads what its linked device sent.
    await groupReply(owner, owner, group, 'group *two*');
    const inbound = (await log(id)).find((m) => m.direction === 'in' && m.text === 'group **two**');
    expect(inbound).toMatchObject({ chatId: group.jid, address: `+${alice.pn}` });
    expect(inbound?.status).not.toBe('denied');

    // Bob (not paired: the group policy does not ask) writes: his own sender key reaches the device first.
    await sim.sendGroupText(bob, group, 'from _bob_');
    // The second reply goes out with the sender key the members already hold (`skmsg` only).
    for (const member of [alice, bob]) await groupReply(member, owner, group, 'from _bob_');
    expect(sim.stats.senderKeysDistributed).toBe(skdmBefore + 2);
    // Baileys sent its sender key once, to every member's phone, with the first reply; later replies carry
    // the `skmsg` alone and every member still reads them.
    const replies = group.sent.filter((m) => m.from === owner.pn);
    expect(replies).toHaveLength(2);
    expect(replies[0].keysTo.sort()).toEqual([owner.pn, alice.pn, bob.pn].sort());
    expect(replies[1].keysTo).toEqual([]);
    expect([alice, bob, owner].flatMap((u) => u.inbox).filter((m) => m.text.startsWith('<undecryptable'))).toEqual([]);

    // The normalised message (inbound mode `signal` hands it out as it is): a group chat, the sender's number.
    expect((await w.api('PATCH', `/api/channels/${id}`, { inbound: 'signal' })).status).toBe(200);
    await sim.sendGroupText(alice, group, 'hand this off');
    const handed = await w.api('POST', '/api/signals/wait', { space: 'Sim groups', timeoutSeconds: 30 });
    expect(handed.status).toBe(200);
    expect(handed.data).toMatchObject({
      channelId: id,
      text: 'hand this off',
      // The subject: the simulator told the device its groups changed and Baileys fetched them.
      chat: { kind: 'group', id: group.jid, name: 'Hiking' },
      sender: { address: `+${alice.pn}`, name: 'Alice' },
    });
  }, 180_000);

  it('a LID-addressed group (members named by LID, numbers as alt) works the same way; the sender is known by number', async () => {
    const owner = sim.addUser('15550102222', 'Owner Two');
    const carol = sim.addUser('15557771003', 'Carol');
    const dan = sim.addUser('15557771004', 'Dan');
    const id = await linkChannel(sim, w, owner, 'Sim lid groups');
    expect((await w.api('PUT', '/api/policies', { policies: GROUP_POLICY })).status).toBe(200);
    const group = sim.createGroup('Book club', owner, [carol, dan], { addressing: 'lid' });

    await sim.sendGroupText(carol, group, 'lid **group**');
    for (const member of [carol, dan]) await groupReply(member, owner, group, 'lid *group*');
    const inbound = (await log(id)).find((m) => m.direction === 'in' && m.text === 'lid **group**');
    expect(inbound).toMatchObject({ chatId: group.jid, address: `+${carol.pn}` });

    // Wharf goes down; Carol writes meanwhile. WhatsApp keeps it for the device; at the next login it comes
    // with the `skmsg` alone (the device acknowledged Carol's key): the key Baileys stored must still decrypt it.
    const [device] = sim.linkedDevices(owner);
    const skdmBefore = sim.stats.senderKeysDistributed;
    const { dataDir } = w.config;
    const taskQueue = w.taskQueue;
    await w.close();
    await sim.sendGroupText(carol, group, 'while **down**');
    w = await startWharf({ dataDir, taskQueue, waUrl: sim.url, waCertRoot: sim.certRoot });
    // (Generous: the new worker takes the session over once Temporal sees the old attempt end.)
    for (const member of [carol, dan]) await groupReply(member, owner, group, 'while *down*', 150_000);
    expect(sim.stats.senderKeysDistributed).toBe(skdmBefore);
    expect(device.pending.size).toBe(0);
    // Baileys remembers which members have its key across the restart too: the reply is `skmsg` alone.
    const replies = group.sent.filter((m) => m.from === owner.pn);
    expect(replies.map((m) => m.keysTo.length)).toEqual([3, 0]);
    expect([carol, dan].flatMap((u) => u.inbox).filter((m) => m.text.startsWith('<undecryptable'))).toEqual([]);
  }, 300_000);
});
