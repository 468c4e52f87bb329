/**
 * The embedded store's cost per statement and per message (issue #22), in this process:
 *
 *   - PGlite through Wharf's own session (lib/store/db.ts) and store (lib/store/store.ts): `select 1`, and the
 *     statements of one echo message on the hot path — the webhook's diagnostics upsert and channel read, the
 *     inbound insert, the outcome update, the reply's claim and its completion;
 *   - Wharf's own store on SQLite (lib/store/sqlite.ts, `WHARF_STORE=sqlite`);
 *   - the same statements hand-written for SQLite through better-sqlite3 (12.x), in WAL mode with
 *     `synchronous=NORMAL` (a commit survives a process crash; a power cut can lose the last commits — what
 *     PGlite's `fsync=off` gives, at least) and with `synchronous=FULL`: the engine's floor, without Wharf's
 *     session (parameter translation, value conversion, the queue);
 *
 * Run: `node dist/bench/micro-store.js [--messages=2000]` (or from `npm run bench -- --only=micro`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPglite, type Db } from '../lib/store/db.js';
import { openSqlite } from '../lib/store/sqlite.js';
import { migrate } from '../lib/store/migrations.js';
import { createStore } from '../lib/store/store.js';
import { percentile, round } from './load.js';

/** One engine's figures. */
export interface StoreMicroResult {
  engine: string;
  /** µs per `select 1`. */
  select1Us: number;
  /** µs per statement of the message path, by statement (p50 over the run). */
  statementsUs: Record<string, number>;
  /** The same over the last quarter of the messages (the log at its largest; after PGlite's first ANALYZE). */
  statementsUsLastQuarter: Record<string, number>;
  /** Statements (each its own commit) per message on this path. */
  statementsPerMessage: number;
  /** µs of this process's CPU per message (all its statements). */
  cpuUsPerMessage: number;
  /** Messages per second through the statements alone, one at a time. */
  messagesPerSec: number;
}

const STATEMENTS = [
  'diagnostics.record',
  'channels.get',
  'recordInbound',
  'setInboundStatuses',
  'claimOutbound',
  'completeOutbound',
];

/** Times `n` messages' worth of statements; `run(name, i)` runs statement `name` of message `i`. */
async function timeMessages(
  engine: string,
  n: number,
  select1: () => Promise<unknown> | unknown,
  run: (name: string, i: number) => Promise<unknown> | unknown,
): Promise<StoreMicroResult> {
  for (let i = 0; i < 200; i++) await select1();
  const s1: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const s = performance.now();
    await select1();
    s1.push(performance.now() - s);
  }
  for (let i = 0; i < 100; i++) for (const name of STATEMENTS) await run(name, -1 - i); // warm-up
  const per: Record<string, number[]> = Object.fromEntries(STATEMENTS.map((k) => [k, []]));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++)
    for (const name of STATEMENTS) {
      const s = performance.now();
      await run(name, i);
      per[name].push(performance.now() - s);
    }
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return {
    engine,
    select1Us: round(percentile(s1, 0.5) * 1000, 1),
    statementsUs: Object.fromEntries(STATEMENTS.map((k) => [k, round(percentile(per[k], 0.5) * 1000, 1)])),
    statementsUsLastQuarter: Object.fromEntries(
      STATEMENTS.map((k) => [k, round(percentile(per[k].slice(Math.floor((n * 3) / 4)), 0.5) * 1000, 1)]),
    ),
    statementsPerMessage: STATEMENTS.length,
    cpuUsPerMessage: round((c.user + c.system) / n, 1),
    messagesPerSec: Math.round(n / (wall / 1000)),
  };
}

/** Wharf's own store (lib/store/store.ts) on `db`: the statements exactly as the product runs them. */
async function benchWharfStore(engine: string, db: Db, n: number): Promise<StoreMicroResult> {
  await migrate(db);
  const store = createStore(db, randomBytes(32));
  const ch = 'ch-micro';
  try {
    return await timeMessages(
      engine,
      n,
      () => db.query('select 1'),
      async (name, i) => {
        const id = `wamid.${i}`;
        const chat = `1555${(Math.abs(i) % 64) + 2000000}`;
        switch (name) {
          case 'diagnostics.record':
            return store.diagnostics.record(ch, 'webhook');
          case 'channels.get':
            return store.channels.get(ch);
          case 'recordInbound':
            return store.messages.recordInbound(ch, `claim-${i}`, [
              { id, chatId: chat, address: chat, text: `bench ${i} hello` },
            ]);
          case 'setInboundStatuses':
            return store.messages.setInboundStatuses(ch, [{ id, status: 'answered' }]);
          case 'claimOutbound':
            return store.messages.claimOutbound(
              ch,
              chat,
              [{ key: `r-${i}`, address: chat, text: `bench ${i} hello` }],
              'owner',
            );
          case 'completeOutbound':
            return store.messages.completeOutbound({
              channelId: ch,
              key: `r-${i}`,
              providerId: `wamid.out.${i}`,
              inbound: { id, status: 'answered', detail: { parts: 1 } },
            });
        }
      },
    );
  } finally {
    await db.close();
  }
}

/** The same statements hand-written for SQLite (same tables, SQLite's dialect), one commit each: the floor of the engine. */
async function benchSqlite(dir: string, n: number, synchronous: 'NORMAL' | 'FULL'): Promise<StoreMicroResult | string> {
  let Database: new (file: string) => {
    pragma(s: string): unknown;
    exec(s: string): void;
    prepare(s: string): {
      run(...a: unknown[]): unknown;
      get(...a: unknown[]): unknown;
      all(...a: unknown[]): unknown[];
    };
    close(): void;
  };
  try {
    // A native module: reported as skipped where it could not be built.
    const name = 'better-sqlite3';
    Database = ((await import(name)) as { default: typeof Database }).default;
  } catch (err) {
    return `better-sqlite3 not installed (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
  const db = new Database(join(dir, `sqlite-${synchronous}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec(`
    create table channels (id text primary key, state text not null, deleted integer not null default 0);
    create table channel_diagnostics (channel_id text primary key, last_webhook_at text);
    create table messages (channel_id text not null, direction text not null, key text not null, provider_id text,
      chat_id text not null, address text, text text not null default '', status text not null, detail text, claim text,
      claim_node text, type text not null default 'text',
      created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')), updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
      primary key (channel_id, direction, key));
    create index messages_recent on messages (channel_id, created_at desc);
    create index messages_provider_id on messages (channel_id, provider_id);
    create index messages_unsent_claims on messages (channel_id) where direction = 'out' and claim is not null and provider_id is null;`);
  const st = {
    select1: db.prepare('select 1'),
    diag: db.prepare(`insert into channel_diagnostics (channel_id, last_webhook_at) values (?, strftime('%Y-%m-%dT%H:%M:%fZ'))
      on conflict (channel_id) do update set last_webhook_at = excluded.last_webhook_at`),
    get: db.prepare('select state from channels where id = ? and not deleted'),
    inbound:
      db.prepare(`insert into messages (channel_id, direction, key, provider_id, chat_id, address, text, status, claim)
      values (?, 'in', ?, ?, ?, ?, ?, 'received', ?) on conflict (channel_id, direction, key) do update set claim = messages.claim
      where messages.claim = excluded.claim returning key`),
    status: db.prepare(
      `update messages set status = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ') where channel_id = ? and direction = 'in' and key = ?`,
    ),
    claim: db.prepare(`insert into messages (channel_id, direction, key, chat_id, address, text, status, claim)
      values (?, 'out', ?, ?, ?, ?, 'sending', ?) on conflict (channel_id, direction, key) do update set claim = excluded.claim,
      updated_at = strftime('%Y-%m-%dT%H:%M:%fZ') where messages.provider_id is null returning key`),
    complete:
      db.prepare(`update messages set provider_id = ?, status = 'accepted', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ')
      where channel_id = ? and direction = 'out' and key = ? and status in ('sending', 'failed')`),
    completeIn:
      db.prepare(`update messages set status = ?, detail = json_patch(coalesce(detail, '{}'), ?), updated_at = strftime('%Y-%m-%dT%H:%M:%fZ')
      where channel_id = ? and direction = 'in' and key = ?`),
  };
  // PGlite's completion is one statement (a CTE); here two in one transaction, as SQLite has no writable CTEs.
  const complete = (db as unknown as { transaction(f: (i: number) => void): (i: number) => void }).transaction(
    (i: number) => {
      st.complete.run(`wamid.out.${i}`, 'ch-micro', `r-${i}`);
      st.completeIn.run('answered', '{"parts":1}', 'ch-micro', `wamid.${i}`);
    },
  );
  try {
    return await timeMessages(
      `SQLite WAL synchronous=${synchronous} (better-sqlite3)`,
      n,
      () => st.select1.get(),
      (name, i) => {
        const id = `wamid.${i}`;
        const chat = `1555${(Math.abs(i) % 64) + 2000000}`;
        switch (name) {
          case 'diagnostics.record':
            return st.diag.run('ch-micro');
          case 'channels.get':
            return st.get.get('ch-micro');
          case 'recordInbound':
            return st.inbound.all('ch-micro', id, id, chat, chat, `bench ${i} hello`, `claim-${i}`);
          case 'setInboundStatuses':
            return st.status.run('answered', 'ch-micro', id);
          case 'claimOutbound':
            return st.claim.all('ch-micro', `r-${i}`, chat, chat, `bench ${i} hello`, 'owner');
          case 'completeOutbound':
            return complete(i);
        }
      },
    );
  } finally {
    db.close();
  }
}

/** Runs the store micro-benchmark on every engine available. */
export async function benchStore(opts: {
  messages: number;
}): Promise<{ results: StoreMicroResult[]; skipped: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-micro-store-'));
  const results: StoreMicroResult[] = [];
  const skipped: string[] = [];
  try {
    results.push(await benchWharfStore('PGlite (Wharf session)', await openPglite(join(dir, 'pglite')), opts.messages));
    results.push(
      await benchWharfStore(
        'SQLite (Wharf session, WHARF_STORE=sqlite)',
        await openSqlite(join(dir, 'wharf-sqlite')),
        opts.messages,
      ),
    );
    for (const sync of ['NORMAL', 'FULL'] as const) {
      const r = await benchSqlite(dir, opts.messages, sync);
      if (typeof r === 'string') {
        skipped.push(r);
        break;
      }
      results.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { results, skipped };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const m = /^--messages=(\d+)$/.exec(process.argv[2] ?? '');
  const { results, skipped } = await benchStore({ messages: m ? Number(m[1]) : 2000 });
  console.log(JSON.stringify(results, null, 2));
  for (const s of skipped) console.log(`skipped: ${s}`);
}
