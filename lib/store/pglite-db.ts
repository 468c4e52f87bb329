/**
 * The PGlite engine of the store (`WHARF_STORE=pglite`, and the move of an older data dir to SQLite): WASM
 * PostgreSQL in this process, one session. Opened through `openPglite` in lib/store/db.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, parse, protocol, type messages } from '@electric-sql/pglite';
import { restrictToOwner } from '../owner-only.js';
import { TransactionAbortedError, answers, storableParams, type Db, type Sql } from './db.js';
import { copyTemplate } from './template.js';

type BackendMessage = messages.BackendMessage;
const { serialize } = protocol;

/**
 * Postgres settings for an embedded store: Wharf's tables are small, so PGlite's default 128 MB of shared
 * buffers only costs memory (measured: 294 MB → 170 MB RSS for an opened store). Statements are prepared
 * once (below) but planned for their values each time: the generic plan of the reply-completion statement
 * cost 3.9–5.9 ms against 1.7 ms for a custom one (measured in the product at 30 msgs/s).
 */
const PGLITE_CONF = [
  'plan_cache_mode=force_custom_plan',
  'shared_buffers=16MB',
  'work_mem=2MB',
  'maintenance_work_mem=16MB',
  'wal_buffers=1MB',
  'temp_buffers=2MB',
];

// PGlite's initdb grows the WASM heap to ~700 MB and a WASM heap never shrinks, so a brand-new store is
// initialised in a short-lived child process; this process then opens the existing one.
function initPgliteInChild(dir: string, template?: string | null): void {
  if (existsSync(join(dir, 'PG_VERSION'))) return;
  // A first start copies the template made at build time (lib/store/template.ts): no initdb, no migrations.
  if (template !== null && copyTemplate(dir, template)) return;
  const url = import.meta.resolve('@electric-sql/pglite');
  const script = `const { PGlite } = await import(${JSON.stringify(url)}); const db = await PGlite.create(${JSON.stringify(dir)}); await db.close();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`could not initialise the PGlite store in ${dir}: ${r.stderr?.trim() || `exit ${r.status}`}`);
}

/** A named statement of the PGlite session. */
interface Prepared {
  name: string;
  paramTypes: number[];
  /** Its row description (absent for statements without rows), prepended to each result for parsing. */
  rows?: BackendMessage;
}

/**
 * Runs statements on one PGlite instance, one protocol call each.
 *
 * PGlite's own `query` sends the extended protocol as six separate calls into WASM Postgres (parse,
 * describe, bind, describe, execute, sync), and each call has a fixed cost of about 0.35 ms. That made
 * PGlite the largest single cost of Wharf's event loop (measured: 580 calls/s for 100 statements/s at
 * 30 msgs/s, 21 % of the main thread). Wharf runs a small, fixed set of statements, so each statement with
 * parameters is prepared once as a named statement (its parameter and row types remembered) and then runs
 * as bind + execute + sync in a single call. A statement without parameters runs unnamed in one call.
 *
 * Parameters are serialised and rows parsed with PGlite's own type handlers (arrays and JSON included), so
 * values come back exactly as `PGlite.query` returned them.
 */
class PgliteStatements {
  private readonly prepared = new Map<string, Prepared>();
  private seq = 0;

  constructor(private readonly pg: PGlite) {}

  /** Runs one statement; `inTransaction` skips PGlite's file-system sync until the commit. */
  async run<T>(text: string, params: unknown[] | undefined, inTransaction: boolean): Promise<T[]> {
    if (!params?.length) {
      return this.rows<T>(
        await this.call(
          [
            serialize.parse({ text }),
            serialize.bind({}),
            serialize.describe({ type: 'P' }),
            serialize.execute({}),
            serialize.sync(),
          ],
          inTransaction,
        ),
      );
    }
    const st = this.prepared.get(text) ?? (await this.prepare(text, inTransaction));
    try {
      return await this.execute<T>(st, params, inTransaction);
    } catch (err) {
      // A schema change under a prepared `select *` ("cached plan must not change result type"): prepare it
      // again and run it once more. Inside a transaction the error has aborted it, so it stands.
      if (inTransaction || (err as { code?: string }).code !== '0A000') throw err;
      this.prepared.delete(text);
      return this.execute<T>(await this.prepare(text, false), params, false);
    }
  }

  private async execute<T>(st: Prepared, params: unknown[], inTransaction: boolean): Promise<T[]> {
    const values = params.map((v, i) => {
      if (v === null || v === undefined) return null;
      const toText = this.pg.serializers[st.paramTypes[i]];
      return toText ? toText(v) : String(v);
    });
    const messages = await this.call(
      [serialize.bind({ statement: st.name, values }), serialize.execute({}), serialize.sync()],
      inTransaction,
    );
    return this.rows<T>(st.rows ? [st.rows, ...messages] : messages);
  }

  /** A simple-protocol command (`begin`, `commit`, several statements); returns its command tags. */
  async simple(text: string, inTransaction: boolean): Promise<string[]> {
    const messages = await this.call([serialize.query(text)], inTransaction);
    return messages.flatMap((m) => (m.name === 'commandComplete' ? [(m as messages.CommandCompleteMessage).text] : []));
  }

  private async prepare(text: string, inTransaction: boolean): Promise<Prepared> {
    // Wharf's statements are fixed strings; the bound only guards against a caller that builds them.
    if (this.prepared.size >= MAX_PREPARED) {
      await this.call([serialize.query('deallocate all')], inTransaction);
      this.prepared.clear();
    }
    const name = `wharf_${++this.seq}`;
    const messages = await this.call(
      [serialize.parse({ name, text }), serialize.describe({ type: 'S', name }), serialize.sync()],
      inTransaction,
    );
    const st: Prepared = {
      name,
      paramTypes: parse.parseDescribeStatementResults(messages),
      rows: messages.find((m) => m.name === 'rowDescription'),
    };
    this.prepared.set(text, st);
    return st;
  }

  private async call(parts: Uint8Array[], inTransaction: boolean): Promise<BackendMessage[]> {
    return (await this.pg.execProtocol(Buffer.concat(parts), { syncToFs: !inTransaction })).messages;
  }

  private rows<T>(messages: BackendMessage[]): T[] {
    return (parse.parseResults(messages, this.pg.parsers)[0]?.rows ?? []) as T[];
  }
}

/** Prepared statements kept per PGlite instance before they are all released. */
const MAX_PREPARED = 500;
/** Statements between two ANALYZEs of the embedded store (it has no autovacuum), and their least interval. */
const ANALYZE_EVERY = 5_000;
const ANALYZE_MIN_INTERVAL_MS = 60_000;

/** See `openPglite` in lib/store/db.ts. */
export async function openPglite(dir: string, opts: { template?: string | null } = {}): Promise<Db> {
  initPgliteInChild(dir, opts.template);
  const pg = await PGlite.create(dir, { postgresqlconf: PGLITE_CONF });
  // PGlite chmods its files itself (initdb's 0666, pg_internal.init 0644 on every open), ignoring the umask.
  restrictToOwner(dir);
  const statements = new PgliteStatements(pg);
  // One session, so one thing at a time: statements queue here; a transaction holds the queue until it ends.
  // A plain query issued from inside a transaction's callback runs within that transaction, as before.
  // Each statement waits for a turn of the event loop first: PGlite runs synchronously, and a queue of
  // statements run back to back kept webhooks and the Temporal worker waiting for up to ~100 ms.
  const inTransaction = new AsyncLocalStorage<true>();
  let tail: Promise<unknown> = Promise.resolve();
  /** Runs `fn` in turn, or at once (told so) when called from inside a transaction's callback. */
  const exclusive = <T>(fn: (inTx: boolean) => Promise<T>): Promise<T> => {
    if (inTransaction.getStore()) return fn(true);
    const result = tail.then(() => new Promise<void>((r) => setImmediate(r))).then(() => fn(false));
    tail = result.catch(() => undefined);
    return result;
  };
  let closed = false;
  // PGlite runs no autovacuum, so nothing ever collects the planner's statistics: without them it took the
  // message log for one row and planned the per-message updates and the reply claim as a scan of all of a
  // channel's messages (measured: 8.7 and 9.3 ms per statement at 3,000 messages, growing with the log).
  // Postgres' autovacuum analyses after a share of a table changed; here, every ANALYZE_EVERY statements.
  let sinceAnalyze = 0;
  let analyzedAt = -Infinity;
  const maybeAnalyze = (): void => {
    if (++sinceAnalyze < ANALYZE_EVERY || performance.now() - analyzedAt < ANALYZE_MIN_INTERVAL_MS || closed) return;
    sinceAnalyze = 0;
    analyzedAt = performance.now();
    void exclusive((inTx) => statements.simple('analyze', inTx)).catch(() => undefined);
  };
  return {
    kind: 'pglite',
    dialect: 'postgres',
    query<T>(text: string, params?: unknown[]) {
      maybeAnalyze();
      return exclusive((inTx) => statements.run<T>(text, storableParams(params), inTx));
    },
    inTransaction: () => inTransaction.getStore() !== undefined,
    transaction<T>(fn: (tx: Sql) => Promise<T>) {
      return exclusive(() =>
        inTransaction.run(true, async () => {
          await statements.simple('begin', true);
          let result: T;
          try {
            result = await fn({
              query: <R>(t: string, p?: unknown[]) => statements.run<R>(t, storableParams(p), true),
            });
          } catch (err) {
            await statements.simple('rollback', false).catch(() => undefined);
            throw err;
          }
          // A statement that failed inside the callback aborted the transaction even if the callback caught
          // the error: Postgres then answers COMMIT with ROLLBACK, and nothing was written.
          if ((await statements.simple('commit', false)).includes('ROLLBACK')) throw new TransactionAbortedError();
          return result;
        }),
      );
    },
    async exec(text: string) {
      await exclusive((inTx) => statements.simple(text, inTx));
    },
    async ping() {
      return !closed && (await answers(() => exclusive((inTx) => statements.run('select 1', undefined, inTx))));
    },
    async close() {
      if (closed) return;
      closed = true;
      await exclusive(() => pg.close());
    },
  };
}
