/**
 * The store's database session on SQLite (better-sqlite3 12.x), behind the same `Db` interface as PGlite and
 * PostgreSQL (docs/architecture.md, *One store, two dialects*). Statements are written in PostgreSQL's text;
 * this session binds its `$n` placeholders, drops its type casts and gives it PostgreSQL's `now()`,
 * `greatest`, `now() - interval` (as `now_minus_ms`) and `jsonb ||` (as `jsonb_merge`). Values come back in the shapes PostgreSQL gives them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { restrictToOwner } from '../owner-only.js';
import { storable } from '../storable-text.js';
import { storeCommits, storeGroupedWrites } from '../metrics.js';
import { TransactionAbortedError, answers, type Db, type Sql } from './db.js';

/** The store's file inside its directory (WAL mode adds `-wal` and `-shm` beside it). */
export const SQLITE_FILE = 'store.sqlite';

/** How long a statement waits for another connection's write lock (a `sqlite3` shell, a backup) before failing. */
const BUSY_TIMEOUT_MS = 5_000;

/** Prepared statements kept before they are all released (Wharf's statements are fixed strings). */
const MAX_PREPARED = 500;

/** A PostgreSQL statement made runnable on SQLite: its text, and which parameter each `?` takes. */
interface Translated {
  sql: string;
  order: number[];
}

/**
 * PostgreSQL's statement text in SQLite's: each `$n` becomes an anonymous `?` bound to parameter n
 * (better-sqlite3 takes `?NNN` for a named parameter), and type casts go — SQLite types a value by what is
 * bound, and every cast in the store only tells PostgreSQL the type of a parameter or of a literal.
 */
export function translateStatement(text: string): Translated {
  const order: number[] = [];
  const sql = text.replace(/::\s*[a-z_][a-z0-9_]*(\s*\[\])?/gi, '').replace(/\$(\d+)/g, (_, n: string) => {
    order.push(Number(n) - 1);
    return '?';
  });
  return { sql, order };
}

/**
 * A time as the SQLite store writes it: ISO-8601 UTC with microseconds, so text order is time order. Only
 * `now()` fills in the microseconds (see `openSqlite`); a time from JS has whole milliseconds.
 */
export function sqliteTimestamp(ms: number, micros = 0): string {
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/** One parameter as SQLite binds it, with PostgreSQL's meaning (arrays as JSON for `json_each`). */
function bindable(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return storable(v);
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : v; // an integer stays an integer in a text column
  if (typeof v === 'boolean') return v ? 1n : 0n;
  if (v instanceof Date) return sqliteTimestamp(v.getTime());
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return JSON.stringify(v.map((x) => (typeof x === 'string' ? storable(x) : x)));
  if (typeof v === 'bigint') return v;
  return JSON.stringify(v);
}

/** Converts a column's value by its declared type (lib/store/sqlite-schema.ts) to what PostgreSQL returns. */
type Convert = (v: unknown) => unknown;
const CONVERT: Record<string, Convert> = {
  timestamp_text: (v) => (typeof v === 'string' ? new Date(v) : v),
  json_text: (v) => (typeof v === 'string' ? JSON.parse(v) : v),
  bool_int: (v) => (v === null ? null : Boolean(v)),
};

/** A prepared statement with its parameter order and its columns' converters. */
interface Prepared {
  stmt: Database.Statement;
  order: number[];
  reader: boolean;
  /** Writes nothing (SQLite's own verdict on the statement). */
  readonly: boolean;
  /** A schema change: statements prepared before it may have other columns now. */
  ddl: boolean;
  converters: Array<[string, Convert]>;
}

/** SQLite's extended result codes with PostgreSQL's SQLSTATE for the same refusal. */
const PG_CODES: Record<string, string> = {
  SQLITE_CONSTRAINT_PRIMARYKEY: '23505',
  SQLITE_CONSTRAINT_UNIQUE: '23505',
  SQLITE_CONSTRAINT_NOTNULL: '23502',
  SQLITE_CONSTRAINT_FOREIGNKEY: '23503',
  // A CHECK, or a trigger's RAISE, refuses the data as PostgreSQL's check_violation does: class 23, so a
  // message it refuses is recorded as failed instead of retried (activities/chat-activities.ts).
  SQLITE_CONSTRAINT_CHECK: '23514',
  SQLITE_CONSTRAINT_TRIGGER: '23514',
};

/**
 * PostgreSQL's SQLSTATE for the SQLite errors a caller or a test may tell apart, so an error reads the same
 * on every engine; the SQLite code stays on the error as `sqliteCode`.
 */
function withPgCode(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: string; sqliteCode?: string };
  const code = e.code ?? '';
  const pg =
    PG_CODES[code] ?? (/no such column/.test(e.message) ? '42703' : /no such table/.test(e.message) ? '42P01' : null);
  if (pg) {
    e.sqliteCode = code;
    e.code = pg;
  }
  return e;
}

/** Raised for a statement inside a transaction that an earlier failed statement aborted, as PostgreSQL does. */
function abortedError(): Error {
  return Object.assign(new Error('current transaction is aborted, commands ignored until end of transaction block'), {
    code: '25P02',
  });
}

/** PostgreSQL's `jsonb || jsonb` for the store's use: a shallow merge of two objects (null when either is). */
function jsonbMerge(a: unknown, b: unknown): string | null {
  if (a === null || b === null) return null;
  const left = JSON.parse(String(a)) as unknown;
  const right = JSON.parse(String(b)) as unknown;
  const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
  if (isObject(left) && isObject(right)) return JSON.stringify({ ...left, ...right });
  // Arrays (or an array and a scalar) concatenate, as in PostgreSQL.
  const asArray = (x: unknown): unknown[] => (Array.isArray(x) ? x : [x]);
  return JSON.stringify([...asArray(left), ...asArray(right)]);
}

/**
 * Opens (creating it if needed) the SQLite store in `dir`: WAL mode with `synchronous=NORMAL` — a commit
 * survives a crash of the process, a power cut can lose the last commits (measured: ≈ 0.18 ms of CPU per
 * message for the store's statements, against 0.77 ms with `FULL`, which waits for an fsync on every commit;
 * docs/performance.md). One connection, one process, as with PGlite. `file` is for the PGlite migration
 * (lib/store/pglite-to-sqlite.ts), which writes under a temporary name.
 */
export async function openSqlite(dir: string, file: string = SQLITE_FILE): Promise<Db> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sqlite = new Database(join(dir, file));
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  sqlite.pragma('foreign_keys = ON');
  restrictToOwner(dir);

  // PostgreSQL's now() is one instant per statement, and the transaction's start inside a transaction, with
  // microseconds. Here two statements in the same millisecond get the next microsecond, so the times of rows
  // written one after the other keep their order (the message log sorts by them), as PostgreSQL's do.
  let lastMs = 0;
  let micros = 0;
  const tick = (): { ms: number; micros: number } => {
    const ms = Date.now();
    if (ms === lastMs) micros = Math.min(micros + 1, 999);
    else [lastMs, micros] = [ms, 0];
    return { ms, micros };
  };
  let txNow: { ms: number; micros: number } | null = null;
  let statementNow = tick();
  sqlite.function('now', { deterministic: false }, () => sqliteTimestamp(statementNow.ms, statementNow.micros));
  // PostgreSQL's `now() - n * interval '1 millisecond'`.
  sqlite.function('now_minus_ms', { deterministic: false }, (n: unknown) =>
    sqliteTimestamp(statementNow.ms - Number(n), statementNow.micros),
  );
  // PostgreSQL's greatest ignores nulls; SQLite's max(a, b) would return null.
  sqlite.function('greatest', { varargs: true, deterministic: true }, (...args: unknown[]) => {
    const present = args.filter((a) => a !== null && a !== undefined) as Array<string | number | bigint>;
    return present.length ? present.reduce((m, a) => (a > m ? a : m)) : null;
  });
  sqlite.function('jsonb_merge', { deterministic: true }, jsonbMerge);

  const prepared = new Map<string, Prepared>();
  const prepare = (text: string): Prepared => {
    const hit = prepared.get(text);
    if (hit) return hit;
    if (prepared.size >= MAX_PREPARED) prepared.clear();
    const { sql, order } = translateStatement(text);
    const stmt = sqlite.prepare(sql);
    const reader = stmt.reader;
    const converters = reader
      ? stmt.columns().flatMap((c): Array<[string, Convert]> => {
          const convert = c.type ? CONVERT[c.type.toLowerCase()] : undefined;
          return convert ? [[c.name, convert]] : [];
        })
      : [];
    const p = { stmt, order, reader, readonly: stmt.readonly, ddl: /^\s*(create|alter|drop)\b/i.test(sql), converters };
    prepared.set(text, p);
    return p;
  };

  /** Runs one statement now (the caller holds the session). */
  const compile = (text: string): Prepared => {
    try {
      return prepare(text);
    } catch (err) {
      throw withPgCode(err);
    }
  };
  const run = <T>(text: string, params: unknown[] | undefined, p: Prepared = compile(text)): T[] => {
    statementNow = txNow ?? tick();
    const values = p.order.map((i) => bindable(params?.[i]));
    try {
      if (!p.reader) {
        p.stmt.run(...values);
        if (p.ddl) prepared.clear();
        return [];
      }
      const rows = p.stmt.all(...values) as Array<Record<string, unknown>>;
      if (p.converters.length)
        for (const row of rows) for (const [name, convert] of p.converters) row[name] = convert(row[name]);
      return rows as T[];
    } catch (err) {
      throw withPgCode(err);
    }
  };

  // One connection, so one thing at a time: statements queue here and a transaction holds the queue until it
  // ends; a plain query issued from inside a transaction's callback runs within that transaction.
  const inTransaction = new AsyncLocalStorage<{ failed: boolean }>();
  let tail: Promise<unknown> = Promise.resolve();
  /** Queued or running turns; at 0 nothing holds the connection and a statement may run at once. */
  let pending = 0;
  /** When the turn running now began (`performance.now()`); 0 when none runs. */
  let turnSince = 0;
  const settled = (): void => {
    pending--;
    turnSince = 0;
  };
  const exclusive = <T>(fn: () => T | Promise<T>): Promise<T> => {
    pending++;
    const result = tail.then(() => {
      turnSince = performance.now();
      return fn();
    });
    tail = result.then(settled, settled);
    return result;
  };
  let closed = false;

  // Prepared once, as better-sqlite3's own `transaction()` does: `exec` would compile them on every call.
  // `immediate` takes the write lock at once: a group never fails half-way on a lock.
  const begin = sqlite.prepare('begin immediate');
  const commit = sqlite.prepare('commit');
  const rollback = sqlite.prepare('rollback');
  const savepoint = sqlite.prepare('savepoint wharf_tx');
  const release = sqlite.prepare('release wharf_tx');
  const rollbackTo = sqlite.prepare('rollback to wharf_tx');

  // Group commit. A commit is most of what a small write costs (the WAL's frames and its locks), and writes
  // come in bursts: the worker hands over a dozen chats' admissions, and their sends' completions, in one
  // turn of the event loop (measured at 100 msgs/s: 3.4 commits per turn). So every write and transaction
  // joins the open group — one SQLite transaction, begun by the first of them — which commits once the loop
  // has run what was ready (`setImmediate`). Each transaction keeps its all-or-nothing as a savepoint inside
  // the group, and every caller's promise settles only after the group's commit: nothing is reported written
  // before it is. A read made while a group is open runs inside it and settles with it, so it never reports
  // what a failed commit lost; with no group open a read runs at once.
  interface Member {
    settle: (failure: unknown) => void;
    write: boolean;
  }
  let group: Member[] | null = null;
  /** Ends the open group: commits it, or rolls it back with `lost`; then settles its members. */
  const endGroup = (lost?: unknown): void => {
    const members = group;
    if (!members) return;
    group = null;
    let failure = lost;
    if (failure === undefined && sqlite.inTransaction) {
      try {
        commit.run();
        storeCommits.inc();
        storeGroupedWrites.inc(members.filter((m) => m.write).length);
      } catch (err) {
        failure = withPgCode(err);
      }
    } else failure ??= new TransactionAbortedError();
    if (sqlite.inTransaction) rollback.run();
    for (const m of members) m.settle(failure);
  };
  /**
   * Runs `work` on the queue, in the open group — opening one unless it is a read with none open — and
   * settles with the group's commit.
   */
  const queued = <T>(work: () => T | Promise<T>, write: boolean): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      void exclusive(async () => {
        if (!group && !write) {
          try {
            resolve(await work());
          } catch (err) {
            reject(err);
          }
          return;
        }
        if (!group) {
          try {
            begin.run();
          } catch (err) {
            return reject(withPgCode(err));
          }
          const opened: Member[] = (group = []);
          setImmediate(() => void exclusive(() => group === opened && endGroup()));
        }
        const members = group;
        try {
          const value = await work();
          members.push({ settle: (failure) => (failure === undefined ? resolve(value) : reject(failure)), write });
        } catch (err) {
          reject(err);
        }
        // A failure that ends SQLite's transaction (a full disk, an I/O error) took the group's writes with it.
        if (!sqlite.inTransaction && group === members) endGroup(new TransactionAbortedError());
      });
    });
  const txQuery = <R>(state: { failed: boolean }, text: string, params?: unknown[]): Promise<R[]> => {
    if (state.failed) return Promise.reject(abortedError());
    try {
      return Promise.resolve(run<R>(text, params));
    } catch (err) {
      // PostgreSQL aborts the whole transaction on a failed statement, even one the callback catches.
      state.failed = true;
      return Promise.reject(err);
    }
  };

  return {
    kind: 'sqlite',
    dialect: 'sqlite',
    query<T>(text: string, params?: unknown[]) {
      const state = inTransaction.getStore();
      if (state) return txQuery<T>(state, text, params);
      let p: Prepared;
      try {
        p = compile(text);
      } catch (err) {
        return Promise.reject(err);
      }
      // A read with nothing queued and no group open: run now (the message path saves a turn of the queue).
      if (p.readonly && pending === 0 && !group) {
        try {
          return Promise.resolve(run<T>(text, params, p));
        } catch (err) {
          return Promise.reject(err);
        }
      }
      // Compiled again when its turn comes: a schema change queued before it may have changed its columns.
      return queued(() => run<T>(text, params), !p.readonly);
    },
    inTransaction: () => inTransaction.getStore() !== undefined,
    heldMs: () => (turnSince ? performance.now() - turnSince : 0),
    transaction<T>(fn: (tx: Sql) => Promise<T>) {
      // Called from inside a transaction's callback (a store call made within `Store.together`): it joins that
      // transaction — its statements commit or roll back with it — instead of waiting behind it for ever.
      const outer = inTransaction.getStore();
      if (outer) return fn({ query: <R>(t: string, p?: unknown[]) => txQuery<R>(outer, t, p) });
      return queued(async () => {
        const state = { failed: false };
        savepoint.run();
        txNow = tick();
        try {
          const result = await inTransaction.run(state, () =>
            fn({ query: <R>(t: string, p?: unknown[]) => txQuery<R>(state, t, p) }),
          );
          // As on PostgreSQL: a failed statement aborted it, and COMMIT becomes ROLLBACK (so does a failure
          // that ended SQLite's transaction, and the group with it).
          if (state.failed || !sqlite.inTransaction) throw new TransactionAbortedError();
          release.run();
          return result;
        } catch (err) {
          if (sqlite.inTransaction) {
            rollbackTo.run();
            release.run();
          }
          throw err;
        } finally {
          txNow = null;
        }
      }, true);
    },
    async exec(text: string) {
      await exclusive(() => {
        endGroup(); // alone: a text may hold statements no transaction can
        prepared.clear(); // a schema change may give prepared statements other columns
        try {
          sqlite.exec(translateStatement(text).sql);
        } catch (err) {
          throw withPgCode(err);
        }
      });
    },
    async ping() {
      return !closed && (await answers(() => exclusive(() => run('select 1', undefined))));
    },
    async close() {
      if (closed) return;
      closed = true;
      await exclusive(() => {
        endGroup();
        prepared.clear();
        sqlite.close();
      });
    },
  };
}
