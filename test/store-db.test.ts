/**
 * The store's database session (lib/store/db.ts) on the project's engine: real PGlite in a temp dir (its
 * statements run as one protocol call each, and PGlite's own `query` is the oracle: every value must come
 * back exactly as it returns it), a database of its own on the run's real PostgreSQL, or real SQLite in a
 * temp dir (lib/store/sqlite.ts), where every value must come back as it does on PGlite.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TransactionAbortedError, openPglite, openPostgres, type Db } from '../lib/store/db.js';
import { MIGRATIONS, migrate, migrationsFor } from '../lib/store/migrations.js';
import { storeCommits } from '../lib/metrics.js';
import { openSqlite } from '../lib/store/sqlite.js';
import { createStore } from '../lib/store/store.js';
import type { DecisionRequest } from '../lib/policy/engine.js';
import { createPolicyService } from '../lib/policy/service.js';
import { createTestDatabase, dropTestDatabase } from './support/postgres.js';
import { openScratchStore, type ScratchStore } from './support/scratch-store.js';

const kind = inject('storeKind');

const openScratch = (): Promise<ScratchStore> => openScratchStore();

let dir: string;
let db: Db;
let dropScratch: (() => Promise<void>) | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-db-'));
  if (kind === 'postgres') {
    const scratch = await openScratch();
    db = scratch.db;
    dropScratch = scratch.drop;
  } else {
    db = kind === 'sqlite' ? await openSqlite(join(dir, 'store')) : await openPglite(join(dir, 'store'));
  }
  // SQLite's columns carry PostgreSQL's types by name (lib/store/sqlite-schema.ts); it has no arrays, and
  // the store keeps none in its tables, so `tags` is JSON there.
  await db.exec(
    kind === 'sqlite'
      ? `
    create table kinds (id text primary key, n integer, big integer, ok bool_int, doc json_text, list json_text, tags json_text, at timestamp_text, raw blob);
    create table counter (id integer primary key, v integer not null);
    insert into counter values (1, 0);
  `
      : `
    create table kinds (id text primary key, n integer, big bigint, ok boolean, doc jsonb, list jsonb, tags text[], at timestamptz, raw bytea);
    create table counter (id integer primary key, v integer not null);
    insert into counter values (1, 0);
  `,
  );
}, 60_000);

afterAll(async () => {
  await db?.close();
  await dropScratch?.();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A row with every type Wharf stores; `list` is the jsonb array as the engine takes it. */
const everyType = (list: unknown) => [
  'k1',
  42,
  9007199254740991,
  true,
  { a: [1, 'two', null], nested: { ok: false } },
  list,
  ['plain', 'with,comma', 'with "quote"', 'back\\slash'],
  new Date('2026-11-26T10:11:12.345Z'),
  new Uint8Array([0, 1, 254, 255]),
];

/** Inserts that row and one of nulls; returns both as read back. */
async function insertEveryType(list: unknown): Promise<Array<Record<string, unknown>>> {
  await db.query('insert into kinds values ($1, $2, $3, $4, $5, $6, $7, $8, $9)', everyType(list));
  await db.query('insert into kinds (id) values ($1)', ['k2']);
  return db.query('select * from kinds order by id');
}

/** The values both engines must give back (bigint as a number, as PGlite parses it). */
function expectEveryType(ours: Array<Record<string, unknown>>): void {
  const row = everyType(['x', 'y']);
  expect(ours[0]).toMatchObject({
    id: 'k1',
    n: 42,
    big: 9007199254740991,
    ok: true,
    doc: row[4],
    list: ['x', 'y'],
    tags: row[6],
    at: row[7],
  });
  expect(Array.from(ours[0].raw as Uint8Array)).toEqual([0, 1, 254, 255]);
  expect(ours[1]).toMatchObject({ id: 'k2', n: null, doc: null, tags: null });
}

describe(`store session on ${kind}`, () => {
  it.runIf(kind === 'pglite')('round-trips every type Wharf uses exactly as PGlite.query does', async () => {
    const ours = await insertEveryType(['x', 'y']);

    await db.close();
    const oracle = await PGlite.create(join(dir, 'store'));
    const theirs = (await oracle.query('select * from kinds order by id')).rows;
    await oracle.close();
    db = await openPglite(join(dir, 'store'));

    expect(ours).toEqual(theirs);
    expectEveryType(ours);
  });

  it.runIf(kind !== 'pglite')('round-trips every type Wharf uses with the values PGlite gives', async () => {
    // A jsonb array goes in as JSON text, as the store passes every jsonb value: node-postgres would send a
    // JavaScript array as a Postgres array literal.
    const ours = await insertEveryType(JSON.stringify(['x', 'y']));
    // The same values as the PGlite test above expects.
    expectEveryType(ours);
    expect(await db.query('select count(*) as n, max(n) as top from kinds')).toEqual([{ n: 2, top: 42 }]);
  });

  it('binds arrays for unnest and returns rows of statements with and without parameters', async () => {
    const rows = await db.query<{ v: string; i: number }>(
      kind === 'sqlite'
        ? 'select value as v, key + 1 as i from json_each($1) order by key'
        : 'select v, i::int as i from unnest($1::text[]) with ordinality as t(v, i)',
      [['a', 'b,c', '']],
    );
    expect(rows).toEqual([
      { v: 'a', i: 1 },
      { v: 'b,c', i: 2 },
      { v: '', i: 3 },
    ]);
    expect(await db.query('select 1 as one')).toEqual([{ one: 1 }]);
    expect(await db.query('update counter set v = v where id = $1', [999])).toEqual([]);
  });

  it('surfaces Postgres errors with their code, and the session keeps working', async () => {
    await db.query('insert into kinds (id) values ($1)', ['dup']);
    await expect(db.query('insert into kinds (id) values ($1)', ['dup'])).rejects.toMatchObject({ code: '23505' });
    await expect(db.query('select nope from kinds where id = $1', ['dup'])).rejects.toMatchObject({ code: '42703' });
    expect(await db.query('select id from kinds where id = $1', ['dup'])).toEqual([{ id: 'dup' }]);
  });

  it('a transaction commits as a whole, or rolls back as a whole when its callback throws', async () => {
    await db.transaction(async (tx) => {
      await tx.query('update counter set v = v + 1 where id = $1', [1]);
      await tx.query('update counter set v = v + 1 where id = $1', [1]);
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query('update counter set v = v + 100 where id = $1', [1]);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await expect(
      db.transaction(async (tx) => {
        await tx.query('update counter set v = v + 100 where id = $1', [1]);
        await tx.query('insert into kinds (id) values ($1)', ['dup']); // unique violation aborts it
      }),
    ).rejects.toMatchObject({ code: '23505' });
    // A failed statement aborts the transaction even when the callback catches its error: nothing is written.
    await expect(
      db.transaction(async (tx) => {
        await tx.query('update counter set v = v + 100 where id = $1', [1]);
        await tx.query('insert into kinds (id) values ($1)', ['dup']).catch(() => undefined);
      }),
    ).rejects.toThrow(TransactionAbortedError);
    expect(await db.query('select v from counter where id = $1', [1])).toEqual([{ v: 2 }]);
  });

  it('statements from many callers at once queue behind a transaction and never run inside it', async () => {
    const before = (await db.query<{ v: number }>('select v from counter where id = $1', [1]))[0].v;
    const tx = db.transaction(async (t) => {
      await t.query('update counter set v = v + 1000 where id = $1', [1]);
      await new Promise((r) => setTimeout(r, 50));
      throw new Error('roll back');
    });
    // Issued while the transaction is open: they must see neither its write nor be rolled back with it.
    const outside = Promise.all(
      Array.from({ length: 20 }, () => db.query('update counter set v = v + 1 where id = $1 returning v', [1])),
    );
    await expect(tx).rejects.toThrow('roll back');
    await outside;
    expect((await db.query<{ v: number }>('select v from counter where id = $1', [1]))[0].v).toBe(before + 20);
  });

  it('a prepared statement follows a schema change', async () => {
    await db.exec('create table evolving (id integer primary key)');
    await db.query('insert into evolving values ($1)', [1]);
    expect(await db.query('select * from evolving where id = $1', [1])).toEqual([{ id: 1 }]);
    await db.exec("alter table evolving add column label text not null default 'new'");
    expect(await db.query('select * from evolving where id = $1', [1])).toEqual([{ id: 1, label: 'new' }]);
  });
});

describe('outbound claims', () => {
  /** Runs `fn` against the message log of a fresh, migrated store of this project's kind. */
  const withMessages = async (
    fn: (messages: ReturnType<typeof createStore>['messages']) => Promise<void>,
  ): Promise<void> => {
    const scratch = await openScratch();
    try {
      await migrate(scratch.db);
      await fn(createStore(scratch.db, randomBytes(32)).messages);
    } finally {
      await scratch.db.close();
      await scratch.drop();
    }
  };

  it('lets one sending attempt hold a part: another sees it busy until it is sent, given back, or its lease ran out', () =>
    withMessages(async (messages) => {
      const parts = [{ key: 'reply:m1#1', address: '+15550001', text: 'hi' }];
      const claim = (owner: string, leaseMs?: number) =>
        messages.claimOutbound('ch_1', '+15550001', parts, owner, leaseMs);

      expect(await claim('A')).toEqual({ done: new Map(), busy: new Set() });
      expect((await claim('B')).busy).toEqual(new Set(['reply:m1#1'])); // a retried task while A still sends
      expect((await claim('A')).busy.size).toBe(0); // A's own retry
      await messages.releaseOutbound('ch_1', 'A'); // A failed half-way and gave its claims back
      expect((await claim('B')).busy.size).toBe(0);
      expect((await claim('C')).busy.size).toBe(1);
      expect((await claim('C', 0)).busy.size).toBe(0); // B's process died: its lease ran out
      await messages.completeOutbound({ channelId: 'ch_1', key: 'reply:m1#1', providerId: 'wamid.X' });
      expect(await claim('D')).toEqual({ done: new Map([['reply:m1#1', 'wamid.X']]), busy: new Set() });
    }));

  it('gives back every claim on unsent parts at once (a PGlite process starting after one that died), and only those', () =>
    withMessages(async (messages) => {
      const part = (n: number) => [{ key: `reply:m${n}#1`, address: '+15550001', text: `hi ${n}` }];
      await messages.claimOutbound('ch_1', '+15550001', part(1), 'dead-1');
      await messages.claimOutbound('ch_2', '+15550002', part(2), 'dead-2');
      await messages.claimOutbound('ch_1', '+15550001', part(3), 'dead-1');
      await messages.completeOutbound({ channelId: 'ch_1', key: 'reply:m3#1', providerId: 'wamid.S' });
      expect((await messages.claimOutbound('ch_1', '+15550001', part(1), 'new')).busy.size).toBe(1);

      expect(await messages.releaseAllOutboundClaims()).toBe(2);

      expect((await messages.claimOutbound('ch_1', '+15550001', part(1), 'new')).busy.size).toBe(0);
      expect((await messages.claimOutbound('ch_2', '+15550002', part(2), 'new')).busy.size).toBe(0);
      expect((await messages.claimOutbound('ch_1', '+15550001', part(3), 'new')).done.get('reply:m3#1')).toBe(
        'wamid.S',
      );
    }));
});

describe('writes that commit together (Store.together)', () => {
  it("an inbound record and its reply's claim commit together on SQLite — both or neither — and one by one elsewhere", async () => {
    const scratch = await openScratch();
    try {
      await migrate(scratch.db);
      const store = createStore(scratch.db, randomBytes(32));
      const inbound = (id: string) => [{ id, chatId: '+15550001', address: '+15550001', text: 'hi' }];
      const part = (id: string) => [{ key: `reply:${id}#1`, address: '+15550001', text: 'hi' }];
      const stored = async (id: string) =>
        (await store.messages.recent('ch_1', 50)).filter((m) => m.key === id || m.key === `reply:${id}#1`).length;

      await store.together(async () => {
        await store.messages.recordInbound('ch_1', 'c1', inbound('m1'));
        // A store call that takes a transaction of its own joins this one instead of waiting behind it.
        await store.messages.completeOutbound({ channelId: 'ch_1', key: 'reply:none#1', providerId: 'wamid.N' });
        await store.messages.claimOutbound('ch_1', '+15550001', part('m1'), 'A');
      });
      expect(await stored('m1')).toBe(2);

      const failed = store.together(async () => {
        await store.messages.recordInbound('ch_1', 'c2', inbound('m2'));
        await store.messages.claimOutbound('ch_1', '+15550001', part('m2'), 'A');
        throw new Error('the process died before the commit');
      });
      await expect(failed).rejects.toThrow(/died before the commit/);
      expect(await stored('m2')).toBe(kind === 'sqlite' ? 0 : 2);
    } finally {
      await scratch.db.close();
      await scratch.drop();
    }
  });

  it('a policy decision inside it does not wait for a policy reload that waits behind it', async () => {
    const scratch = await openScratch();
    try {
      await migrate(scratch.db);
      const store = createStore(scratch.db, randomBytes(32));
      const policy = createPolicyService(store);
      const request: DecisionRequest = {
        agent: 'echo',
        channelId: 'ch_1',
        provider: 'whatsapp_cloud',
        message: { sender: { address: '+15550001', paired: true }, chat: { kind: 'direct', id: '+15550001' } },
      };
      expect((await policy.decide(request)).decision).toBe('allow');
      await new Promise((r) => setTimeout(r, 300)); // the loaded set is due for its version check
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      let go!: () => void;
      const gate = new Promise<void>((r) => (go = r));
      const admission = store.together(async () => {
        await store.messages.recordInbound('ch_1', 'c1', [
          { id: 'm1', chatId: '+15550001', address: '+15550001', text: 'hi' },
        ]);
        entered();
        await gate;
        return policy.decide(request);
      });
      await inside;
      // Outside the transaction (the webhook's stranger screen): its reload's reads wait behind the admission.
      const screen = policy.decide(request);
      go();
      const settled = await Promise.race([
        Promise.all([admission, screen]).then(() => 'both decided'),
        new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000)),
      ]);
      expect(settled).toBe('both decided');
      expect((await admission).decision).toBe('allow');
    } finally {
      await scratch.db.close();
      await scratch.drop();
    }
  }, 15_000);
});

describe.runIf(kind === 'sqlite')('group commit (SQLite)', () => {
  const commits = async (): Promise<number> => (await storeCommits.get()).values[0]?.value ?? 0;
  const ids = async (prefix: string): Promise<string[]> =>
    (await db.query<{ id: string }>(`select id from kinds where id like $1 order by id`, [`${prefix}%`])).map(
      (r) => r.id,
    );

  it('writes made in one turn commit once, and each settles only after that commit', async () => {
    const before = await commits();
    // Ten writers in the same turn: each notes the commit count when its promise settles.
    const seen = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2
          ? db.query('insert into kinds (id, n) values ($1, $2)', [`gc1-${i}`, i])
          : db.transaction(async (tx) => {
              await tx.query('insert into kinds (id, n) values ($1, $2)', [`gc1-${i}`, i]);
              await tx.query('update counter set v = v + 1 where id = 1');
            })
        ).then(() => commits()),
      ),
    );

    expect(seen).toEqual(Array(10).fill(before + 1));
    expect(await ids('gc1-')).toHaveLength(10);
  });

  it('a transaction that fails inside a group rolls back alone; the others commit', async () => {
    const [a, b, c] = await Promise.allSettled([
      db.transaction(async (tx) => {
        await tx.query('insert into kinds (id) values ($1)', ['gc2-a']);
      }),
      db.transaction(async (tx) => {
        await tx.query('insert into kinds (id) values ($1)', ['gc2-b']);
        await tx.query('insert into kinds (id) values ($1)', ['gc2-a']); // the primary key refuses it
      }),
      db.query('insert into kinds (id) values ($1)', ['gc2-c']),
    ]);

    expect([a.status, b.status, c.status]).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((b as PromiseRejectedResult).reason).toMatchObject({ code: '23505' });
    expect(await ids('gc2-')).toEqual(['gc2-a', 'gc2-c']);
  });

  it('a statement that fails inside a group fails alone', async () => {
    await db.query('insert into kinds (id) values ($1)', ['gc3-x']);
    const [dup, other] = await Promise.allSettled([
      db.query('insert into kinds (id) values ($1)', ['gc3-x']),
      db.query('insert into kinds (id) values ($1)', ['gc3-y']),
    ]);

    expect(dup).toMatchObject({ status: 'rejected', reason: { code: '23505' } });
    expect(other.status).toBe('fulfilled');
    expect(await ids('gc3-')).toEqual(['gc3-x', 'gc3-y']);
  });

  it('a read made while a group is open sees its writes and settles after its commit; with none open, at once', async () => {
    const before = await commits();
    const write = db.query('insert into kinds (id) values ($1)', ['gc4-a']);
    const read = db.query<{ id: string }>(`select id from kinds where id = 'gc4-a'`).then(async (rows) => ({
      rows,
      commits: await commits(),
    }));

    expect(await read).toEqual({ rows: [{ id: 'gc4-a' }], commits: before + 1 });
    await write;
    expect(await db.query(`select id from kinds where id = 'gc4-a'`)).toEqual([{ id: 'gc4-a' }]);
    expect(await commits()).toBe(before + 1);
  });
});

describe('claims of a node that died (PostgreSQL, several nodes)', () => {
  it.runIf(kind === 'postgres')(
    'are taken over as soon as the node stopped noting that it is alive, not after the lease; a live node keeps its claims',
    async () => {
      const scratch = await openScratch();
      const other = await openPostgres(scratch.url!); // another node's own connection pool
      try {
        await migrate(scratch.db);
        const nodeA = createStore(scratch.db, randomBytes(32));
        const nodeB = createStore(other, randomBytes(32));
        const part = (n: number) => [{ key: `reply:m${n}#1`, address: '+15550001', text: `hi ${n}` }];

        expect((await nodeA.messages.claimOutbound('ch_1', '+15550001', part(1), 'a-attempt')).busy.size).toBe(0);
        expect((await nodeB.messages.claimOutbound('ch_1', '+15550001', part(1), 'b-attempt')).busy.size).toBe(1); // A is alive

        // A dies: its last note ages past NODE_DEAD_MS (as if 7 s went by without one).
        await other.query(`update wharf_nodes set seen_at = now() - interval '7 seconds' where id = $1`, [
          nodeA.node.id,
        ]);
        expect((await nodeB.messages.claimOutbound('ch_1', '+15550001', part(1), 'b-attempt')).busy.size).toBe(0);

        // A node that left at a graceful stop frees its claims at once too.
        expect((await nodeB.messages.claimOutbound('ch_1', '+15550001', part(2), 'b-2')).busy.size).toBe(0);
        expect((await nodeA.messages.claimOutbound('ch_1', '+15550001', part(2), 'a-2')).busy.size).toBe(1);
        await nodeB.node.leave();
        expect((await nodeA.messages.claimOutbound('ch_1', '+15550001', part(2), 'a-2')).busy.size).toBe(0);
      } finally {
        await other.close();
        await scratch.db.close();
        await scratch.drop();
      }
    },
  );
});

describe('migrations', () => {
  it.runIf(kind === 'postgres')(
    'nodes starting at once on an empty database apply each migration exactly once, and all start',
    async () => {
      // Several rounds: without the lock about half of the starts died on duplicate DDL.
      for (let round = 0; round < 3; round++) {
        const admin = inject('postgresAdminUrl');
        const url = await createTestDatabase(admin);
        const nodes = await Promise.all(Array.from({ length: 4 }, () => openPostgres(url)));
        try {
          const applied = await Promise.all(nodes.map((n) => migrate(n)));

          expect(applied.flat().sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version));
          expect(await nodes[0].query('select version from schema_migrations order by version')).toEqual(
            MIGRATIONS.map((m) => ({ version: m.version })),
          );
          expect(await migrate(nodes[1])).toEqual([]);
        } finally {
          await Promise.all(nodes.map((n) => n.close()));
          await dropTestDatabase(admin, url);
        }
      }
    },
  );

  it('a second migration run on a migrated store applies nothing', async () => {
    expect(await migrate(db)).toEqual(migrationsFor(db).map((m) => m.version));
    expect(await migrate(db)).toEqual([]);
  });

  it('a delivery status finds its reply by the index of sent replies alone (migration 15)', async () => {
    // The statement `messages.setStatus` runs, planned on this engine; PostgreSQL plans a tiny table as a
    // sequential scan, so it is told not to.
    await migrate(db);
    const lookup = `update messages set status = $3 where channel_id = $1 and direction = 'out' and provider_id = $2`;
    const plan =
      kind === 'sqlite'
        ? (await db.query<{ detail: string }>(`explain query plan ${lookup}`, ['ch', 'wamid.x', 'read'])).map(
            (r) => r.detail,
          )
        : await db.transaction(async (tx) => {
            await tx.query('set local enable_seqscan = off');
            const rows = await tx.query<Record<string, string>>(`explain ${lookup}`, ['ch', 'wamid.x', 'read']);
            return rows.map((r) => Object.values(r)[0]);
          });
    expect(plan.join('\n')).toMatch(/messages_provider_id/);
  });

  it.runIf(kind === 'sqlite')(
    'a completion on SQLite finds its two rows by the primary key, in one statement',
    async () => {
      // The statement `messages.completeOutbound` runs on SQLite (one update of the reply and its inbound message).
      await migrate(db);
      const completion = `update messages set provider_id = case when direction = 'out' then $3 else provider_id end
      where channel_id = $1 and ((direction = 'out' and key = $2 and status in ('sending', 'failed'))
        or ($4 is not null and direction = 'in' and key = $4))`;
      const plan = await db.query<{ detail: string }>(`explain query plan ${completion}`, [
        'ch',
        'r#1',
        'wamid.x',
        'in',
      ]);
      expect(plan.map((r) => r.detail)).toEqual([
        'MULTI-INDEX OR',
        'INDEX 1',
        expect.stringMatching(/^SEARCH messages USING INDEX \S+ \(channel_id=\? AND direction=\? AND key=\?\)$/),
        'INDEX 2',
        expect.stringMatching(/^SEARCH messages USING INDEX \S+ \(channel_id=\? AND direction=\? AND key=\?\)$/),
      ]);
    },
  );
});
