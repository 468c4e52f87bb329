/** The ack gate holds a socket's writes (receipts among them) until inbound messages are durable. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AckGate } from '../lib/baileys/ack-gate.js';

function fakeClient() {
  const written: string[] = [];
  const client = Object.assign(new EventEmitter(), {
    socket: { send: (data: unknown, cb?: (err?: Error) => void) => (written.push(String(data)), cb?.()) },
  });
  return { client, written };
}

describe('ack gate', () => {
  it('queues writes while a message is held, reports them done, and sends them in order once it is released', () => {
    const { client, written } = fakeClient();
    const gate = new AckGate();
    expect(gate.attach(client)).toBe(true);
    client.socket.send('before');
    client.emit('frame', { tag: 'message', attrs: { id: 'M1', from: '1555@s.whatsapp.net' } });
    let reported = 0;
    client.socket.send('receipt M1', () => reported++);
    client.socket.send('ping');
    expect(written).toEqual(['before']);
    expect(reported).toBe(1);
    gate.release(['M1']);
    expect(written).toEqual(['before', 'receipt M1', 'ping']);
    expect(gate.holding).toBe(0);
  });

  it('waits for every held message; ignored senders and other stanzas hold nothing', () => {
    const { client, written } = fakeClient();
    const gate = new AckGate({ ignore: (jid) => jid.endsWith('@broadcast') });
    gate.attach(client);
    client.emit('frame', { tag: 'message', attrs: { id: 'S', from: 'status@broadcast' } });
    client.emit('frame', { tag: 'receipt', attrs: { id: 'R' } });
    client.socket.send('a');
    expect(written).toEqual(['a']);
    client.emit('frame', { tag: 'message', attrs: { id: 'M1', from: 'x@lid' } });
    client.emit('frame', { tag: 'message', attrs: { id: 'M2', from: 'x@lid' } });
    client.socket.send('b');
    gate.release(['M1']);
    expect(written).toEqual(['a']);
    gate.release(['M2']);
    expect(written).toEqual(['a', 'b']);
  });

  it('asks Baileys to flush its event buffer while a message waits, and gives up after maxHoldMs', async () => {
    const { client, written } = fakeClient();
    let unstuck = 0;
    const expired: string[] = [];
    const gate = new AckGate({
      unstick: () => unstuck++,
      unstickAfterMs: 10,
      maxHoldMs: 60,
      onExpired: (id) => expired.push(id),
    });
    gate.attach(client);
    client.emit('frame', { tag: 'message', attrs: { id: 'M1', from: 'x@lid' } });
    client.socket.send('receipt');
    await new Promise((r) => setTimeout(r, 120));
    expect(unstuck).toBeGreaterThanOrEqual(2);
    expect(expired).toEqual(['M1']);
    expect(written).toEqual(['receipt']);
  });

  it('discards what it queued when the socket is gone (WhatsApp redelivers), and does nothing on a fake socket', () => {
    const { client, written } = fakeClient();
    const gate = new AckGate();
    gate.attach(client);
    client.emit('frame', { tag: 'message', attrs: { id: 'M1', from: 'x@lid' } });
    client.socket.send('receipt');
    gate.discard();
    gate.release(['M1']);
    expect(written).toEqual([]);
    expect(new AckGate().attach({})).toBe(false);
    expect(new AckGate().attach(undefined)).toBe(false);
  });
});
