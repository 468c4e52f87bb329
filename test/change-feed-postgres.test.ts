/**
 * Live updates across processes: two store instances on one PostgreSQL database stand for two Wharf nodes.
 * A write through one reaches the other's change feed (LISTEN/NOTIFY), and so the server-sent events of a
 * console connected to the other node; PGlite keeps the in-process feed.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newChannelState } from '../api/channel-gateway.js';
import { eventsRouter } from '../api/events.router.js';
import type { ChannelChange } from '../lib/store/change-feed.js';
import { openPostgres, type Db } from '../lib/store/db.js';
import { migrate } from '../lib/store/migrations.js';
import {
  CHANGES_CHANNEL,
  parsePublished,
  payloadsFor,
  type SharedChangeFeed,
} from '../lib/store/shared-change-feed.js';
import { createStore, type Store } from '../lib/store/store.js';
import type { ChannelState } from '../lib/types.js';
import { createTestDatabase, dropTestDatabase } from './support/postgres.js';

const admin = inject('postgresAdminUrl');
const secretKey = randomBytes(32);
let url: string;
let dbs: Db[] = [];
let nodeA: Store;
let nodeB: Store;

beforeAll(async () => {
  url = await createTestDatabase(admin);
  dbs = [await openPostgres(url), await openPostgres(url)];
  await migrate(dbs[0]);
  [nodeA, nodeB] = dbs.map((db) => createStore(db, secretKey));
  await Promise.all([nodeA, nodeB].map((s) => (s.changes as SharedChangeFeed).ready));
}, 60_000);

afterAll(async () => {
  await Promise.all(dbs.map((db) => db.close()));
  if (url) await dropTestDatabase(admin, url);
});

/** A channel read model as a channel workflow's activity writes it. */
function channelState(id: string, status: ChannelState['status'], version: number): ChannelState {
  return {
    ...newChannelState({ id, provider: 'whatsapp_cloud', agent: 'echo', space: `space-${id}` }),
    status,
    statusReason: status === 'connected' ? 'Meta verified the webhook' : 'waiting for config',
    configured: status === 'connected',
    version,
  };
}

/** Collects what `store`'s feed announces about `channelId`. */
function collect(store: Store, channelId: string): { seen: ChannelChange[]; stop(): void } {
  const seen: ChannelChange[] = [];
  const stop = store.changes.subscribe((c) => {
    if (c.channelId === channelId) seen.push(c);
  });
  return { seen, stop };
}

describe('the change feed on PostgreSQL, across nodes', () => {
  it("tells node B's listeners about node A's writes, once, and node A's at once", async () => {
    const id = 'ch-' + randomBytes(4).toString('hex');
    const onA = collect(nodeA, id);
    const onB = collect(nodeB, id);
    await nodeA.channels.project(channelState(id, 'setup', 1));
    // Node A's own listeners hear synchronously, as with the in-process feed.
    expect(onA.seen).toEqual([{ channelId: id, what: 'channel' }]);
    await expect.poll(() => onB.seen, { timeout: 5_000 }).toEqual([{ channelId: id, what: 'channel' }]);

    await nodeA.diagnostics.sendError(id, { code: 131047, message: 're-engagement window closed' });
    await expect.poll(() => onB.seen.map((c) => c.what), { timeout: 5_000 }).toEqual(['channel', 'diagnostics']);
    // Node A does not hear its own NOTIFY back as a second event.
    await new Promise((r) => setTimeout(r, 300));
    expect(onA.seen.map((c) => c.what)).toEqual(['channel', 'diagnostics']);
    onA.stop();
    onB.stop();
  });

  it('coalesces a burst of writes into few notifications carrying each channel and kind once', async () => {
    const id = 'ch-' + randomBytes(4).toString('hex');
    const onB = collect(nodeB, id);
    for (let v = 1; v <= 50; v++) await nodeA.channels.project(channelState(id, v % 2 ? 'setup' : 'connected', v));
    await expect.poll(() => onB.seen.length, { timeout: 5_000 }).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 300));
    // 50 writes, each announced at once on node A; node B hears far fewer, and the last state is read fresh.
    expect(onB.seen.length).toBeLessThan(50);
    expect((await nodeB.channels.get(id))?.version).toBe(50);
    onB.stop();
  });

  it("streams node A's change to a console connected to node B (server-sent events)", async () => {
    const app = express().use('/api/events', eventsRouter({ changes: nodeB.changes }));
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const ac = new AbortController();
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`, {
        signal: ac.signal,
      });
      const reader = res.body!.getReader();
      const id = 'ch-' + randomBytes(4).toString('hex');
      await reader.read(); // the `retry:` preamble: the stream is subscribed
      await nodeA.channels.project(channelState(id, 'connected', 1));
      let text = '';
      while (!text.includes(id)) text += new TextDecoder().decode((await reader.read()).value);
      expect(text).toContain(`event: change\ndata: ${JSON.stringify({ channelId: id, what: 'channel' })}`);
    } finally {
      ac.abort();
      server.closeAllConnections();
      server.close();
    }
  });

  it('ignores NOTIFY payloads that are not a node’s changes, and keeps working after them', async () => {
    const id = 'ch-' + randomBytes(4).toString('hex');
    const onB = collect(nodeB, id);
    for (const junk of [
      '',
      'not json',
      'null',
      '{"from":"x"}',
      `{"from":"x","changes":[["${id}","drop table"],[1,2]]}`,
    ]) {
      await dbs[0].query('select pg_notify($1, $2)', [CHANGES_CHANNEL, junk]);
    }
    await nodeA.channels.project(channelState(id, 'setup', 1));
    await expect.poll(() => onB.seen, { timeout: 5_000 }).toEqual([{ channelId: id, what: 'channel' }]);
    onB.stop();
  });
});

describe('the listening connection', () => {
  it('listens again after the server ended it, and changes reach the other node again', async () => {
    const ended = await dbs[0].query<{ ok: boolean }>(
      `select pg_terminate_backend(pid) as ok from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and query ilike 'listen %'`,
    );
    expect(ended.length).toBe(2);
    const id = 'ch-' + randomBytes(4).toString('hex');
    const onB = collect(nodeB, id);
    let version = 0;
    // Changes sent while B was not listening are lost (documented); the next ones arrive once it listens again.
    await expect
      .poll(
        async () => {
          await nodeA.channels.project(channelState(id, 'setup', ++version));
          return onB.seen.length;
        },
        { timeout: 10_000, interval: 250 },
      )
      .toBeGreaterThan(0);
    onB.stop();
  });
});

describe('NOTIFY payloads', () => {
  it('are split below PostgreSQL’s 8,000-byte limit and read back whole by another node', () => {
    const changes: ChannelChange[] = Array.from({ length: 600 }, (_, i) => ({
      channelId: `channel-${i}`,
      what: 'messages',
    }));
    const payloads = payloadsFor('node-a', changes);
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThan(8000);
    expect(payloads.flatMap((p) => parsePublished(p, 'node-b'))).toEqual(changes);
    expect(payloads.flatMap((p) => parsePublished(p, 'node-a'))).toEqual([]);
  });
});
