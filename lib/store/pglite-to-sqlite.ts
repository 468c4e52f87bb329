/**
 * The one-time move of an embedded store from PGlite to SQLite (issue #22): a data dir written by an earlier
 * Wharf holds `store/` (PGlite); once SQLite is the embedded default, the first start copies it into
 * `store-sqlite/store.sqlite` and keeps the PGlite dir, renamed, for the operator to delete when satisfied.
 *
 * Crash safety: the copy is written under a temporary name in one SQLite transaction and renamed into place
 * only after the commit and the per-table count check, so a kill at any moment leaves either no SQLite store
 * (the next start retries from the untouched PGlite dir) or a complete one.
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import { openPglite, type Db, type Sql } from './db.js';
import { migrate } from './migrations.js';
import { openSqlite, SQLITE_FILE } from './sqlite.js';

/** The SQLite file's name while the copy is under way. */
const TEMP_FILE = `${SQLITE_FILE}.migrating`;

/** Rows read from PGlite per statement: bounded memory for large message logs. */
const PAGE_ROWS = 500;

/** Rows per statement for a table with bytes (stored media files, up to the media limit each). */
const PAGE_ROWS_WITH_BYTES = 8;

/** Where the embedded stores of a data dir live. */
export interface EmbeddedStoreDirs {
  /** PGlite's directory (`<dataDir>/store`). */
  pglite: string;
  /** SQLite's directory (`<dataDir>/store-sqlite`). */
  sqlite: string;
}

/** The embedded stores' directories in `dataDir`. */
export function embeddedStoreDirs(dataDir: string): EmbeddedStoreDirs {
  return { pglite: join(dataDir, 'store'), sqlite: join(dataDir, 'store-sqlite') };
}

/** What a migration did. */
export interface PgliteMigration {
  /** Rows copied per table. */
  rows: Record<string, number>;
  /** Where the PGlite dir was moved to. */
  movedTo: string;
}

/** Options of `migratePgliteToSqlite`. */
export interface MigrateOptions {
  log?: Pick<Logger, 'info'>;
  /** The rename's suffix time (tests pass one). */
  now?: Date;
  /** Called after each table is copied, inside the transaction; a test throws here to fail mid-copy. */
  afterTable?: (table: string) => void | Promise<void>;
}

/** A SQLite column as its schema declares it. */
interface Column {
  name: string;
  type: string;
  pk: number;
}

/** Whether `dataDir` holds a PGlite store and no SQLite store yet: the case the migration is for. */
export function needsPgliteMigration(dataDir: string): boolean {
  const dirs = embeddedStoreDirs(dataDir);
  return existsSync(join(dirs.pglite, 'PG_VERSION')) && !existsSync(join(dirs.sqlite, SQLITE_FILE));
}

/**
 * Why `WHARF_STORE=pglite` must not start on `dataDir`, or null when it may: the data dir's store is SQLite
 * (moved there at an earlier start, or made there) and there is no PGlite store, so PGlite would start an
 * empty one and every channel would seem gone. The message says how to go on either way.
 */
export function pgliteWouldStartEmpty(dataDir: string): string | null {
  const dirs = embeddedStoreDirs(dataDir);
  if (existsSync(join(dirs.pglite, 'PG_VERSION')) || !existsSync(join(dirs.sqlite, SQLITE_FILE))) return null;
  const moved = readdirSync(dataDir)
    .filter((n) => n.startsWith('store.pglite-migrated-'))
    .sort()
    .map((n) => join(dataDir, n));
  const last = moved.at(-1);
  return (
    `WHARF_STORE=pglite, but this data dir's store is SQLite (${join(dirs.sqlite, SQLITE_FILE)}): PGlite would start ` +
    `an empty store. Unset WHARF_STORE to run on SQLite (the default).` +
    (last
      ? ` To go back to PGlite as it was when the store moved, rename ${last} to ${dirs.pglite} and move ${dirs.sqlite} ` +
        `aside (what changed since the move is in SQLite only).`
      : '')
  );
}

/**
 * Copies the PGlite store of `dataDir` into a new SQLite store, then renames the PGlite dir to
 * `store.pglite-migrated-<time>`. Returns null when there is nothing to migrate. On failure the SQLite
 * file is removed, the PGlite dir is left as it was, and the error names both dirs.
 */
export async function migratePgliteToSqlite(
  dataDir: string,
  opts: MigrateOptions = {},
): Promise<PgliteMigration | null> {
  if (!needsPgliteMigration(dataDir)) return null;
  const dirs = embeddedStoreDirs(dataDir);
  const temp = join(dirs.sqlite, TEMP_FILE);
  removeSqliteFiles(temp); // a copy a killed start left behind
  let pg: Db | undefined;
  let sq: Db | undefined;
  try {
    pg = await openPglite(dirs.pglite);
    await migrate(pg); // the latest PostgreSQL schema, so every column the SQLite schema has exists
    sq = await openSqlite(dirs.sqlite, TEMP_FILE);
    await migrate(sq);
    const rows = await copyTables(pg, sq, opts.afterTable);
    // One self-contained file before the rename: the WAL folded in and no -wal/-shm beside it.
    await sq.exec('pragma journal_mode = delete');
    await sq.close();
    sq = undefined;
    await pg.close();
    pg = undefined;
    renameSync(temp, join(dirs.sqlite, SQLITE_FILE));
    const movedTo = `${dirs.pglite}.pglite-migrated-${stamp(opts.now ?? new Date())}`;
    renameSync(dirs.pglite, movedTo);
    opts.log?.info(
      { rows, from: dirs.pglite, to: join(dirs.sqlite, SQLITE_FILE), movedTo },
      'store: PGlite store migrated to SQLite',
    );
    return { rows, movedTo };
  } catch (err) {
    await sq?.close().catch(() => undefined);
    await pg?.close().catch(() => undefined);
    removeSqliteFiles(temp);
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `migrating the PGlite store (${dirs.pglite}) to SQLite (${dirs.sqlite}) failed: ${reason}. ` +
        'The PGlite store is untouched and no SQLite store was kept; the next start tries again ' +
        '(or set WHARF_STORE=pglite to keep running on PGlite).',
      { cause: err },
    );
  }
}

/** Copies every table of the SQLite schema (but its migration record) in one transaction; rows per table. */
async function copyTables(pg: Db, sq: Db, afterTable: MigrateOptions['afterTable']): Promise<Record<string, number>> {
  const tables = (
    await sq.query<{ name: string }>(
      `select name from sqlite_master where type = 'table' and name <> 'schema_migrations'
         and name not like 'sqlite\\_%' escape '\\' order by name`,
    )
  ).map((t) => t.name);
  const rows: Record<string, number> = {};
  await sq.transaction(async (tx) => {
    for (const table of tables) {
      const columns = await tx.query<Column>('select name, type, pk from pragma_table_info($1)', [table]);
      rows[table] = await copyTable(pg, tx, table, columns);
      const [source] = await pg.query<{ n: number }>(`select count(*)::int as n from ${ident(table)}`);
      const [target] = await tx.query<{ n: number | bigint }>(`select count(*) as n from ${ident(table)}`);
      if (source!.n !== rows[table] || Number(target!.n) !== rows[table])
        throw new Error(
          `table ${table}: ${source!.n} rows in PGlite, ${rows[table]} copied, ${Number(target!.n)} in SQLite`,
        );
      await afterTable?.(table);
    }
  });
  return rows;
}

/** Copies one table page by page in its primary key's order (keyset, so each page is an index seek). */
async function copyTable(pg: Db, tx: Sql, table: string, columns: Column[]): Promise<number> {
  const key = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  if (!key.length) throw new Error(`table ${table} has no primary key`);
  const list = columns.map((c) => ident(c.name)).join(', ');
  const keyList = key.map((c) => ident(c.name)).join(', ');
  const insert = `insert into ${ident(table)} (${list}) values (${columns.map((_, i) => `$${i + 1}`).join(', ')})`;
  const pageRows = columns.some((c) => c.type.toLowerCase() === 'blob') ? PAGE_ROWS_WITH_BYTES : PAGE_ROWS;
  let copied = 0;
  let after: unknown[] | null = null;
  for (;;) {
    const where: string = after ? `where (${keyList}) > (${key.map((_, i) => `$${i + 1}`).join(', ')})` : '';
    const page: Array<Record<string, unknown>> = await pg.query<Record<string, unknown>>(
      `select ${list} from ${ident(table)} ${where} order by ${keyList} limit ${pageRows}`,
      after ?? [],
    );
    for (const row of page)
      await tx.query(
        insert,
        columns.map((c) => toSqlite(row[c.name], c.type)),
      );
    copied += page.length;
    if (page.length < pageRows) return copied;
    const last = page[page.length - 1]!;
    after = key.map((c) => last[c.name]);
  }
}

/**
 * A PGlite value for a SQLite column. The session binds most values as the store writes them (a Date as
 * its time text, a boolean as 0/1, bytes as a blob); a JSON column is bound as its JSON text here, because
 * PGlite hands back a jsonb string or number as that JS value, which the session would store unquoted.
 */
function toSqlite(value: unknown, type: string): unknown {
  if (value === null || value === undefined) return null;
  if (type.toLowerCase() === 'json_text') return JSON.stringify(value);
  return value;
}

/** A table or column name quoted for SQL (names come from the SQLite schema itself). */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A time as a file-name suffix: `20261202T120000Z`. */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** Removes a SQLite file with its WAL-mode and rollback-journal companions. */
function removeSqliteFiles(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
}
