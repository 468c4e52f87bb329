/**
 * Attack: another local user reading (or editing) Wharf's store — the store's tables and WAL (SQLite's
 * `store.sqlite`, `-wal` and `-shm`; PGlite's files) hold message text, the Temporal dev server's `temporal.db`
 * holds workflow histories, the vault rows are there too. The built product, started the way operators start
 * it (embedded dev server, the embedded store: SQLite by default, PGlite with WHARF_STORE=pglite) on a fresh
 * data dir under a permissive umask, leaves nothing under the data dir with a group or other permission bit:
 * every directory 0700, every file 0600 — also after messages were written and after a restart.
 */
import { readdirSync, lstatSync, chmodSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restrictToOwner } from '../../lib/owner-only.js';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, echoRoundTrip, phone, type CloudSetup } from '../support/cloud.js';
import { spawnWharf, type SpawnedWharf } from '../support/spawned-wharf.js';

/** Every entry under `root` (root included) whose mode grants group or other anything. */
function looseEntries(root: string): string[] {
  const loose: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.mode & 0o077) loose.push(`${(st.mode & 0o777).toString(8)} ${relative(root, p) || '.'}`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(root);
  return loose;
}

/** How many files and directories are under `root`. */
const countEntries = (root: string): number =>
  1 + (lstatSync(root).isDirectory() ? readdirSync(root).reduce((n, e) => n + countEntries(join(root, e)), 0) : 0);

/** Each embedded store: what its files are called, and how many entries a data dir holds at least. */
const EMBEDDED = [
  { store: 'sqlite', files: { 'store-sqlite': ['store.sqlite', 'store.sqlite-wal', 'store.sqlite-shm'] }, entries: 5 },
  { store: 'pglite', files: { store: ['PG_VERSION'] }, entries: 500 },
] as const;

describe.each(EMBEDDED)('the built product on a fresh data dir (WHARF_STORE=$store)', ({ store, files, entries }) => {
  let fake: FakeGraph;
  let wharf: SpawnedWharf | undefined;
  let previousUmask = 0;

  beforeAll(async () => {
    previousUmask = process.umask(0o022); // the usual permissive umask of a shell; main.ts must not rely on it
    fake = await startFakeGraph();
    // TEMPORAL_ADDRESS unset: Wharf runs its own dev server, whose temporal.db is in the data dir.
    wharf = await spawnWharf({ META_GRAPH_URL: fake.url, WHARF_STORE: store }, { startTimeoutMs: 110_000 });
  }, 120_000);
  afterAll(async () => {
    process.umask(previousUmask);
    await wharf?.stop('SIGTERM'); // a SIGKILLed Wharf leaves its dev server behind
    wharf?.purge();
    await fake?.close();
  });

  it('writes its store, its dev server database and its keys owner-only, before and after messages flow', async () => {
    const w = wharf!;
    const [storeDir, storeFiles] = Object.entries(files)[0]!;
    expect(readdirSync(w.dataDir)).toEqual(expect.arrayContaining([storeDir, 'temporal.db', 'secret.key']));
    expect(looseEntries(w.dataDir)).toEqual([]);

    const sender = phone();
    const ch: CloudSetup = await cloudChannel(w.asTestWharf(), fake, { pair: [sender] });
    for (let i = 0; i < 3; i++) await echoRoundTrip(w.asTestWharf(), fake, ch, sender, `owner-only ${i}`);
    const policy = await w.api('PUT', '/api/policies', {
      policies:
        '@id("nobody")\nforbid(principal, action, resource) when { resource.sender.address == "+15550000000" };',
    });
    expect(policy.status, JSON.stringify(policy.data)).toBe(200);

    expect(readdirSync(join(w.dataDir, storeDir))).toEqual(expect.arrayContaining([...storeFiles]));
    expect(countEntries(w.dataDir)).toBeGreaterThan(entries);
    expect(looseEntries(w.dataDir)).toEqual([]);
  });

  it('stays owner-only across a restart on the same data dir (the store is re-opened, pg_internal.init rewritten)', async () => {
    const first = wharf!;
    const stopped = await first.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    wharf = await spawnWharf(
      { META_GRAPH_URL: fake.url, WHARF_DATA_DIR: first.dataDir, WHARF_ADMIN_TOKEN: first.token, WHARF_STORE: store },
      { startTimeoutMs: 110_000 },
    );
    expect(looseEntries(first.dataDir)).toEqual([]);
  }, 150_000);
});

describe('restrictToOwner', () => {
  it('tightens files and directories left loose (e.g. by an earlier version) and keeps owner bits', async () => {
    const { mkdtempSync, mkdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const root = mkdtempSync(join(tmpdir(), 'wharf-owner-only-'));
    mkdirSync(join(root, 'a/b'), { recursive: true });
    writeFileSync(join(root, 'a/b/data'), 'x');
    writeFileSync(join(root, 'tool'), 'x');
    chmodSync(join(root, 'a'), 0o755);
    chmodSync(join(root, 'a/b/data'), 0o666);
    chmodSync(join(root, 'tool'), 0o775);
    const sweep = restrictToOwner(root);
    expect(sweep.seen).toBe(5);
    expect(looseEntries(root)).toEqual([]);
    expect(lstatSync(join(root, 'a/b/data')).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(root, 'tool')).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(root, 'a')).mode & 0o777).toBe(0o700);
    expect(restrictToOwner(root).tightened).toBe(0);
  });
});
