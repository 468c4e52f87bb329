/**
 * The SQLite baseline (lib/store/sqlite-schema.ts) is the PostgreSQL schema after every migration, in SQLite's
 * dialect: the same tables, columns in the same order, with the same nullability and types that mean the same,
 * and the same named indexes. Both are built here by the real migration runner, on real PGlite and SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, type Db } from '../lib/store/db.js';
import { MIGRATIONS, migrate, migrationsFor } from '../lib/store/migrations.js';
import { SQLITE_BASELINE_VERSION } from '../lib/store/sqlite-schema.js';
import { openSqlite } from '../lib/store/sqlite.js';

/** PostgreSQL's column types and the SQLite type names that store them (lib/store/sqlite-schema.ts). */
const SQLITE_TYPE: Record<string, string> = {
  text: 'text',
  integer: 'integer',
  bigint: 'integer',
  boolean: 'bool_int',
  jsonb: 'json_text',
  bytea: 'blob',
  'timestamp with time zone': 'timestamp_text',
};

type Column = { table: string; column: string; type: string; notNull: boolean };

let dir: string;
let pg: Db;
let lite: Db;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-schema-'));
  pg = await openPglite(join(dir, 'pglite'), { template: null });
  lite = await openSqlite(join(dir, 'sqlite'));
  await migrate(pg);
  await migrate(lite);
}, 120_000);

afterAll(async () => {
  await pg?.close();
  await lite?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function pgColumns(): Promise<Column[]> {
  const rows = await pg.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(
    `select table_name, column_name, data_type, is_nullable from information_schema.columns
      where table_schema = 'public' order by table_name, ordinal_position`,
  );
  return rows.map((r) => ({
    table: r.table_name,
    column: r.column_name,
    type: SQLITE_TYPE[r.data_type] ?? `unmapped ${r.data_type}`,
    notNull: r.is_nullable === 'NO',
  }));
}

async function sqliteColumns(): Promise<Column[]> {
  const rows = await lite.query<{ tbl: string; name: string; type: string; notnull: number; pk: number }>(
    `select t.name as tbl, c.name, c.type, c."notnull" as "notnull", c.pk
       from sqlite_schema t join pragma_table_info(t.name) c
      where t.type = 'table' and t.name not like 'sqlite_%'
      order by t.name, c.cid`,
  );
  // An integer primary key is the rowid: never null, whether declared so or not.
  return rows.map((r) => ({
    table: r.tbl,
    column: r.name,
    type: r.type.toLowerCase(),
    notNull: r.notnull === 1 || (r.pk > 0 && r.type.toLowerCase() === 'integer'),
  }));
}

describe('the SQLite schema', () => {
  it('has the tables and columns of the PostgreSQL schema, in order, with the same nullability and types', async () => {
    expect(await sqliteColumns()).toEqual(await pgColumns());
  });

  it('has the same named indexes', async () => {
    const pgIndexes = await pg.query<{ name: string }>(
      `select indexname as name from pg_indexes
        where schemaname = 'public' and indexname not like '%\\_pkey' and indexname not like '%\\_key'
        order by 1`,
    );
    const liteIndexes = await lite.query<{ name: string }>(
      `select name from sqlite_schema where type = 'index' and sql is not null order by 1`,
    );
    expect(liteIndexes).toEqual(pgIndexes);
  });

  it('records the baseline as the PostgreSQL version it stands for; later migrations need a SQLite text', async () => {
    const later = MIGRATIONS.filter((m) => m.version > SQLITE_BASELINE_VERSION).map((m) => m.version);
    expect(await lite.query('select version from schema_migrations order by version')).toEqual(
      [SQLITE_BASELINE_VERSION, ...later].map((version) => ({ version })),
    );
    expect(migrationsFor(lite).map((m) => m.version)).toEqual([SQLITE_BASELINE_VERSION, ...later]);
    expect(() =>
      migrationsFor({ dialect: 'sqlite' }, [...MIGRATIONS, { version: 99, name: 'pg only', sql: 'select 1' }]),
    ).toThrow(/migration 99 \(pg only\) has no SQLite text/);
  });
});
