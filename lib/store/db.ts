/**
 * A minimal SQL interface over PGlite (embedded default) and PostgreSQL (`DATABASE_URL`). Both speak the
 * same dialect and `$1` placeholders, so every query in Wharf is written once.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

/** A SQL session: plain queries, plus transactions on the top-level handle. */
export interface Sql {
  /** Runs one statement and returns its rows. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

/** The store's database handle. */
export interface Db extends Sql {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction; rolls back if it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** Runs several statements separated by `;` (migrations). */
  exec(text: string): Promise<void>;
  /** Cheap liveness probe for /healthz. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Postgres settings for an embedded store: Wharf's tables are small, so PGlite's default 128 MB of shared
 * buffers only costs memory (measured: 294 MB → 170 MB RSS for an opened store).
 */
const PGLITE_CONF = ['shared_buffers=16MB', 'work_mem=2MB', 'maintenance_work_mem=16MB', 'wal_buffers=1MB', 'temp_buffers=2MB'];

// PGlite's initdb grows the WASM heap to ~700 MB and a WASM heap never shrinks, so a brand-new store is
// initialised in a short-lived child process; this process then opens the existing one.
function initPgliteInChild(dir: string): void {
  if (existsSync(join(dir, 'PG_VERSION'))) return;
  const url = import.meta.resolve('@electric-sql/pglite');
  const script = `const { PGlite } = await import(${JSON.stringify(url)}); const db = await PGlite.create(${JSON.stringify(dir)}); await db.close();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`could not initialise the PGlite store in ${dir}: ${r.stderr?.trim() || `exit ${r.status}`}`);
}

/** Opens PGlite in `dir` (created if missing). */
export async function openPglite(dir: string): Promise<Db> {
  initPgliteInChild(dir);
  const db = await PGlite.create(dir, { postgresqlconf: PGLITE_CONF });
  let closed = false;
  return {
    kind: 'pglite',
    async query<T>(text: string, params?: unknown[]) {
      return (await db.query<T>(text, params)).rows;
    },
    transaction<T>(fn: (tx: Sql) => Promise<T>) {
      return db.transaction((tx) => fn({ query: async <R>(t: string, p?: unknown[]) => (await tx.query<R>(t, p)).rows }));
    },
    async exec(text: string) {
      await db.exec(text);
    },
    async ping() {
      if (closed) return false;
      try {
        await db.query('select 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}

/** Connects to PostgreSQL through a pool. */
export async function openPostgres(url: string): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // Fail fast at start-up with a clear error rather than on the first request.
  await pool.query('select 1');
  return {
    kind: 'postgres',
    async query<T>(text: string, params?: unknown[]) {
      return (await pool.query(text, params as unknown[])).rows as T[];
    },
    async transaction<T>(fn: (tx: Sql) => Promise<T>) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const result = await fn({ query: async <R>(t: string, p?: unknown[]) => (await client.query(t, p as unknown[])).rows as R[] });
        await client.query('commit');
        return result;
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async exec(text: string) {
      await pool.query(text);
    },
    async ping() {
      try {
        await pool.query('select 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await pool.end();
    },
  };
}
