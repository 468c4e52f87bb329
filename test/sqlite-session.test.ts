/**
 * What the SQLite session (lib/store/sqlite.ts) adds so PostgreSQL's statement text means the same there:
 * `$n` placeholders and casts, `now()` (one instant per statement, the transaction's start inside one, and
 * in write order), `greatest` ignoring nulls, `now_minus_ms`, and `jsonb_merge` as PostgreSQL's shallow
 * `jsonb ||`. Real SQLite in a temp dir; the store-level behaviour is in the files the `sqlite` project runs.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../lib/store/db.js';
import { SQLITE_FILE, openSqlite, translateStatement } from '../lib/store/sqlite.js';

let dir: string;
let db: Db;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-sqlite-'));
  db = await openSqlite(join(dir, 'store'));
  await db.exec('create table t (id text not null primary key, at timestamp_text, doc json_text)');
});

afterAll(async () => {
  await db?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the SQLite session', () => {
  it('binds $n placeholders in any order and repeated, and drops PostgreSQL casts', async () => {
    expect(translateStatement("select $2::text as b, $1 as a, $2 as c, '{}'::jsonb as d, $3::text[] as e")).toEqual({
      sql: "select ? as b, ? as a, ? as c, '{}' as d, ? as e",
      order: [1, 0, 1, 2],
    });
    expect(await db.query('select $2::text as b, $1::int as a, $2 as c', [7, 'x'])).toEqual([{ b: 'x', a: 7, c: 'x' }]);
  });

  it('opens in WAL mode with synchronous=NORMAL, owner-only', async () => {
    expect(await db.query('select * from pragma_journal_mode')).toEqual([{ journal_mode: 'wal' }]);
    expect(await db.query('select * from pragma_synchronous')).toEqual([{ synchronous: 1 }]); // NORMAL
    expect(await db.query('select * from pragma_foreign_keys')).toEqual([{ foreign_keys: 1 }]);
    expect(statSync(join(dir, 'store')).mode & 0o077).toBe(0);
    expect(statSync(join(dir, 'store', SQLITE_FILE)).mode & 0o077).toBe(0);
  });

  it('now() is one instant per statement, the start inside a transaction, and later for each later statement', async () => {
    const [one] = await db.query<{ a: string; b: string }>('select now() as a, now() as b');
    expect(one.a).toBe(one.b);
    expect(one.a).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const times: string[] = [];
    for (let i = 0; i < 20; i++) times.push((await db.query<{ n: string }>('select now() as n'))[0].n);
    expect([...times].sort()).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
    const inTx = await db.transaction(async (tx) => {
      const a = (await tx.query<{ n: string }>('select now() as n'))[0].n;
      await new Promise((r) => setTimeout(r, 5));
      const b = (await tx.query<{ n: string }>('select now() as n'))[0].n;
      return [a, b];
    });
    expect(inTx[0]).toBe(inTx[1]);
  });

  it('a time column comes back as a Date; a Date parameter is stored as ISO text', async () => {
    const at = new Date('2026-12-02T12:00:00.123Z');
    await db.query('insert into t (id, at) values ($1, $2)', ['d1', at]);
    expect(await db.query('select at from t where id = $1', ['d1'])).toEqual([{ at }]);
    expect(await db.query('select typeof(at) as ty from t where id = $1', ['d1'])).toEqual([{ ty: 'text' }]);
    const [r] = await db.query<{ older: number }>('select at < now_minus_ms($1) as older from t where id = $2', [
      1000,
      'd1',
    ]);
    expect(r.older).toBe(1); // a time of the past, more than a second ago
  });

  it('greatest ignores nulls as PostgreSQL does', async () => {
    expect(
      await db.query('select greatest(null, $1) as g, greatest($2, $1) as h, greatest(null) as n', ['b', 'c']),
    ).toEqual([{ g: 'b', h: 'c', n: null }]);
  });

  it("jsonb_merge is PostgreSQL's `jsonb ||`: a shallow merge that keeps nulls, not SQLite's json_patch", async () => {
    const [r] = await db.query<{ m: string; p: string }>(`select jsonb_merge($1, $2) as m, json_patch($1, $2) as p`, [
      JSON.stringify({ a: { x: 1, y: 2 }, b: 1 }),
      JSON.stringify({ a: { x: 3 }, b: null }),
    ]);
    expect(JSON.parse(r.m)).toEqual({ a: { x: 3 }, b: null });
    expect(JSON.parse(r.p)).toEqual({ a: { x: 3, y: 2 } }); // what json_patch would have done
  });

  it('JSON columns come back parsed; arrays are bound as JSON for json_each', async () => {
    await db.query('insert into t (id, doc) values ($1, $2)', ['j1', JSON.stringify({ k: [1, 'two'] })]);
    expect(await db.query('select doc from t where id = $1', ['j1'])).toEqual([{ doc: { k: [1, 'two'] } }]);
    expect(
      await db.query('select id from t where id in (select value from json_each($1)) order by id', [
        ['j1', 'd1', 'zz'],
      ]),
    ).toEqual([{ id: 'd1' }, { id: 'j1' }]);
  });

  it("a statement after a failed one in the same transaction fails, as in PostgreSQL's aborted transaction", async () => {
    await expect(
      db.transaction(async (tx) => {
        await tx.query('insert into t (id) values ($1)', ['d1']).catch(() => undefined); // duplicate
        await tx.query('insert into t (id) values ($1)', ['new']);
      }),
    ).rejects.toMatchObject({ code: '25P02' });
    expect(await db.query('select id from t where id = $1', ['new'])).toEqual([]);
  });

  it('reports closed after close', async () => {
    const other = await openSqlite(join(dir, 'other'));
    expect(await other.ping()).toBe(true);
    await other.close();
    expect(await other.ping()).toBe(false);
  });
});
