/**
 * The PostgreSQL engine of the store (`DATABASE_URL`): a node-postgres pool, and LISTEN on a connection of
 * its own for the change feed between nodes. Opened through `openPostgres` in lib/store/db.ts.
 */
import pg from 'pg';
import { TransactionAbortedError, answers, storableParams, type Db, type Sql } from './db.js';

/**
 * Value parsers that make node-postgres return what PGlite returns: `bigint` (counts, `bigserial` ids) as a
 * number rather than a string. Values past 2^53 lose precision on both engines alike.
 */
const PG_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Connects to PostgreSQL through a pool. */
export async function openPostgres(url: string): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: 10, types: PG_TYPES });
  // An idle connection that the server ends (a restart, a failover, an administrator's terminate) is
  // reported here; unhandled, that event would crash the process. The pool has dropped that connection
  // already, and the next query opens a new one.
  pool.on('error', () => undefined);
  // Fail fast at start-up with a clear error rather than on the first request.
  await pool.query('select 1');
  const listeners = new Set<() => Promise<void>>();
  return {
    kind: 'postgres',
    dialect: 'postgres',
    async listen(channel, fn) {
      const stop = await listenOn(url, channel, fn);
      const unlisten = async () => {
        listeners.delete(unlisten);
        await stop();
      };
      listeners.add(unlisten);
      return unlisten;
    },
    async query<T>(text: string, params?: unknown[]) {
      return (await pool.query(text, storableParams(params))).rows as T[];
    },
    async transaction<T>(fn: (tx: Sql) => Promise<T>) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const result = await fn({
          query: async <R>(t: string, p?: unknown[]) => (await client.query(t, storableParams(p))).rows as R[],
        });
        // As on PGlite: a statement that failed inside the callback aborted the transaction even if the
        // callback caught the error; Postgres then answers COMMIT with ROLLBACK, and nothing was written.
        if ((await client.query('commit')).command === 'ROLLBACK') throw new TransactionAbortedError();
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
      return answers(() => pool.query('select 1'));
    },
    async close() {
      await Promise.all([...listeners].map((stop) => stop()));
      await pool.end();
    },
  };
}

// After a lost LISTEN connection, the next attempt waits this long (doubling up to the maximum).
const RELISTEN_MIN_MS = 500;
const RELISTEN_MAX_MS = 10_000;

/**
 * LISTENs on one dedicated connection (a pooled one would be handed to other queries): notifications
 * arrive only on the session that listens. When the server ends it, a new one listens again after a
 * backoff; notifications sent in between are lost, which the console tolerates (it re-reads on its next
 * event or navigation). Resolves once the first connection listens.
 */
async function listenOn(url: string, channel: string, fn: (payload: string) => void): Promise<() => Promise<void>> {
  let stopped = false;
  let current: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  let delay = RELISTEN_MIN_MS;
  const connect = async (): Promise<void> => {
    const client = new pg.Client({ connectionString: url, types: PG_TYPES });
    let gone = false;
    const lost = (): void => {
      if (gone) return;
      gone = true;
      if (current === client) current = null;
      void client.end().catch(() => undefined);
      if (stopped) return;
      retry = setTimeout(() => {
        retry = null;
        // A failed attempt schedules the next one itself (its own `lost`).
        connect().catch(() => undefined);
      }, delay);
      // Waiting to listen again must not keep a process alive that has nothing else to do.
      retry.unref();
      delay = Math.min(delay * 2, RELISTEN_MAX_MS);
    };
    client.on('notification', (n) => {
      if (n.channel === channel && n.payload !== undefined) fn(n.payload);
    });
    client.on('error', lost);
    client.on('end', lost);
    current = client;
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(channel)}`);
      delay = RELISTEN_MIN_MS;
    } catch (err) {
      lost();
      throw err;
    }
  };
  try {
    await connect();
  } catch (err) {
    stopped = true;
    if (retry) clearTimeout(retry);
    throw err;
  }
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    const client = current;
    current = null;
    await client?.end().catch(() => undefined);
  };
}
