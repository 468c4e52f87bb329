/**
 * Attack (or just an ordinary deploy): SIGTERM while a flood of signed webhooks is arriving. The built
 * product stops taking requests, lets those in flight finish or answers them 503, and only then closes its
 * Temporal connection: it exits 0 with nothing uncaught on stderr, and no request got a 500.
 */
import { createServer, Socket, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { connectClient } from '../../workers/client-connection.js';
import { inboundPayload, signPayload, startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, phone, wamid, type CloudSetup } from '../support/cloud.js';
import { spawnWharf, type SpawnedWharf } from '../support/spawned-wharf.js';

let fake: FakeGraph;
let wharf: SpawnedWharf | undefined;

describe('SIGTERM during a webhook flood', () => {
  beforeAll(async () => {
    fake = await startFakeGraph();
    wharf = await spawnWharf({ META_GRAPH_URL: fake.url, TEMPORAL_ADDRESS: inject('temporalAddress') });
  }, 120_000);
  afterAll(async () => {
    await wharf?.stop('SIGKILL');
    wharf?.purge();
    await fake?.close();
  });

  it('exits 0, nothing uncaught, every answer 200 or 503 until the port closes', async () => {
    const w = wharf!;
    const sender = phone();
    const ch: CloudSetup = await cloudChannel(w.asTestWharf(), fake, { pair: [sender] });

    const statuses = new Map<number, number>();
    let refused = 0;
    let stop = false;
    // 24 senders posting as fast as they are answered, each message from a new chat (a new chat workflow).
    const flooder = async (): Promise<void> => {
      while (!stop) {
        const raw = JSON.stringify(inboundPayload(ch.target, [{ from: phone(), text: 'flood', id: wamid() }]));
        try {
          const r = await fetch(`${w.url}/webhooks/whatsapp/${ch.id}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-hub-signature-256': signPayload(raw, ch.appSecret) },
            body: raw,
          });
          await r.arrayBuffer();
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        } catch {
          refused++; // the port closed: the process is going away
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const flooders = Array.from({ length: 24 }, flooder);
    await new Promise((r) => setTimeout(r, 2500));
    const exit = w.stop('SIGTERM', 55_000);
    const { code, signal } = await exit;
    stop = true;
    await Promise.all(flooders);

    const stderr = w.stderr();
    expect(signal).toBeNull();
    expect(code, `stderr:\n${stderr.slice(-3000)}`).toBe(0);
    expect(stderr).not.toMatch(/Channel has been shut down|Uncaught|unhandled|Error:/i);
    const fatal = w
      .stdout()
      .split('\n')
      .filter((l) => /"level":(50|60)/.test(l));
    expect(fatal, fatal.join('\n')).toEqual([]);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    expect([...statuses.keys()].filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(w.stdout()).toContain('"msg":"bye"');
    void refused;
  }, 120_000);
});

describe('closing the Temporal connection while a call is being retried', () => {
  it('throws nothing from the retry timer: the call fails, the process goes on', async () => {
    // A TCP proxy in front of the dev server, cut while a call is on its way: the call fails UNAVAILABLE and
    // the SDK schedules a retry; the connection is closed before that retry fires.
    const [host, port] = inject('temporalAddress').split(':');
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = new Socket().connect(Number(port), host === 'localhost' ? '127.0.0.1' : host);
      client.pipe(upstream).pipe(client);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const { connection, close } = await connectClient({
        address: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      });
      await connection.workflowService.getSystemInfo({});
      await new Promise<void>((r) => proxy.close(() => r()) && sockets.forEach((s) => s.destroy()));
      const call = connection.workflowService.getSystemInfo({}).then(
        () => 'answered',
        () => 'failed',
      );
      await new Promise((r) => setTimeout(r, 30));
      await close();
      expect(await Promise.race([call, new Promise((r) => setTimeout(() => r('still pending'), 8000))])).toBe('failed');
      await new Promise((r) => setTimeout(r, 1500)); // longer than the first retries' back-off
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      proxy.close();
    }
  }, 30_000);
});
