/**
 * The embedded store's watchdog (workers/store-watchdog.ts) on a real SQLite store: a transaction held open
 * is measured (`heldMs`), named in the log once it is long, again while it lasts, and once when it ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../lib/metrics.js';
import type { Db } from '../lib/store/db.js';
import { openSqlite } from '../lib/store/sqlite.js';
import { startStoreWatchdog } from '../workers/store-watchdog.js';

let dir: string;
let db: Db;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-watchdog-'));
  db = await openSqlite(dir);
  await db.exec('create table t (x integer)');
});

afterAll(async () => {
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the embedded store’s watchdog', () => {
  it('measures how long one operation holds the store, and says so in the log while it is long', async () => {
    const lines: Array<{ level: number; msg: string; heldMs: number }> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const stop = startStoreWatchdog(db, log, { everyMs: 20, warnAfterMs: 150, repeatMs: 200 });
    try {
      expect(db.heldMs?.()).toBe(0);
      let release!: () => void;
      const held = db.transaction(async (tx) => {
        await tx.query('insert into t (x) values (1)');
        await new Promise<void>((resolve) => (release = resolve));
      });
      await sleep(100);
      // A statement from elsewhere waits behind the transaction.
      let answered = false;
      const waiting = db.query('select count(*) as n from t').then(() => (answered = true));
      expect(db.heldMs!()).toBeGreaterThanOrEqual(90);
      // Once it was long, then again while it lasted (polled: a loaded machine's timers run late).
      const warnings = () => lines.filter((l) => l.level === 40);
      await expect.poll(() => warnings().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      expect(answered).toBe(false);
      expect(warnings()[0].msg).toMatch(/embedded store has been held by one operation/);
      expect(warnings()[0].heldMs).toBeGreaterThanOrEqual(150);
      const gauge = await registry.getSingleMetricAsString('wharf_store_held_seconds');
      expect(Number(/wharf_store_held_seconds ([\d.]+)/.exec(gauge)?.[1])).toBeGreaterThanOrEqual(0.15);
      release();
      await held;
      await waiting;
      await expect.poll(() => lines.filter((l) => l.msg === 'the embedded store is free again').length).toBe(1);
      expect(db.heldMs!()).toBe(0);
      const before = lines.length;
      await db.query('insert into t (x) values (2)');
      await sleep(60);
      expect(lines.length).toBe(before); // short operations say nothing
    } finally {
      stop();
    }
  });
});
