/**
 * A minimal SQL interface over the store's engines: SQLite (embedded default, lib/store/sqlite.ts), PGlite
 * (lib/store/pglite-db.ts) and PostgreSQL (`DATABASE_URL`, lib/store/postgres-db.ts). They take the same
 * `$1` placeholders and, where the dialects differ, the store says which it writes. Each engine's library
 * is loaded when it is opened: a process holds only the one it runs on.
 */
import { storable } from '../storable-text.js';

/** A SQL session: plain queries, plus transactions on the top-level handle. */
export interface Sql {
  /** Runs one statement and returns its rows. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

/** `value` with every string (object keys too) made storable, for JSON that goes into `jsonb`. */
function storableDeep(value: unknown): unknown {
  if (typeof value === 'string') return storable(value);
  if (Array.isArray(value)) return value.map(storableDeep);
  if (value && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [storable(k), storableDeep(v)]));
  }
  return value;
}

/** JSON text for a `jsonb` parameter, safe whatever strings `value` holds (see `storable`). */
export function jsonParam(value: unknown): string {
  return JSON.stringify(storableDeep(value));
}

/**
 * Statement parameters with every string, and every string in a text array, made storable: every statement
 * of the store goes through here, so no field's content can make a write fail.
 */
export function storableParams(params: unknown[] | undefined): unknown[] | undefined {
  return params?.map((v) =>
    typeof v === 'string'
      ? storable(v)
      : Array.isArray(v)
        ? v.map((x) => (typeof x === 'string' ? storable(x) : x))
        : v,
  );
}

/** The store's database handle. */
export interface Db extends Sql {
  readonly kind: 'pglite' | 'postgres' | 'sqlite';
  /** The SQL the engine speaks: PGlite is PostgreSQL; SQLite runs PostgreSQL's text where it is portable. */
  readonly dialect: 'postgres' | 'sqlite';
  /** Runs `fn` in one transaction; rolls back if it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /**
   * Whether the caller runs inside a transaction's callback on this connection (SQLite, PGlite: every other
   * statement waits behind it; PostgreSQL: always false, its pool serves others).
   */
  inTransaction?(): boolean;
  /**
   * SQLite only: milliseconds the operation running now has held the connection (a transaction holds it until
   * its callback returns); 0 when none runs. Every other statement waits meanwhile (workers/store-watchdog.ts).
   */
  heldMs?(): number;
  /** Runs several statements separated by `;` (migrations). */
  exec(text: string): Promise<void>;
  /** Cheap liveness probe for /healthz. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
  /**
   * PostgreSQL only: calls `fn` with the payload of every NOTIFY on `channel`, from any process sharing the
   * database, until the returned function is called or the handle closes. A lost connection is reopened.
   */
  listen?(channel: string, fn: (payload: string) => void): Promise<() => Promise<void>>;
}

/** Whether `statement` runs without an error: a store's liveness probe for /healthz. */
export async function answers(statement: () => Promise<unknown>): Promise<boolean> {
  try {
    await statement();
    return true;
  } catch {
    return false;
  }
}

/**
 * Raised by a transaction whose commit became a rollback: a statement inside it failed, even one its callback
 * caught (PostgreSQL aborts the whole transaction; the SQLite session does the same).
 */
export class TransactionAbortedError extends Error {
  constructor() {
    super('Transaction is aborted');
    this.name = 'TransactionAbortedError';
  }
}

/**
 * Opens PGlite in `dir`. A missing store is copied from the store template (`template`, by default the one
 * `npm run build` made) when there is a usable one, else initialised; `template: null` always initialises.
 */
export async function openPglite(dir: string, opts: { template?: string | null } = {}): Promise<Db> {
  return (await import('./pglite-db.js')).openPglite(dir, opts);
}

/** Opens a pool on the PostgreSQL database at `url`. */
export async function openPostgres(url: string): Promise<Db> {
  return (await import('./postgres-db.js')).openPostgres(url);
}
