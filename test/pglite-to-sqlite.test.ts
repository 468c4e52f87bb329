/**
 * The one-time move of an existing PGlite store to SQLite (lib/store/pglite-to-sqlite.ts, issue #22): a data
 * dir filled through the store's own API reads back the same through the store API on SQLite, the PGlite dir
 * is kept under another name, a second start does not migrate again, and a failure mid-copy leaves the
 * PGlite dir as it was and no SQLite store.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGraph } from './fakes/graph-server.js';
import { cloudChannel, echoRoundTrip, phone } from './support/cloud.js';
import { spawnWharf, type SpawnedWharf } from './support/spawned-wharf.js';
import { createStoreAuthState } from '../lib/store/auth-state.js';
import { openPglite, type Db } from '../lib/store/db.js';
import { migrate } from '../lib/store/migrations.js';
import {
  embeddedStoreDirs,
  migratePgliteToSqlite,
  needsPgliteMigration,
  pgliteWouldStartEmpty,
} from '../lib/store/pglite-to-sqlite.js';
import { openSqlite, SQLITE_FILE } from '../lib/store/sqlite.js';
import { createStore } from '../lib/store/store.js';
import { channelState } from './support/scratch-store.js';

const secretKey = randomBytes(32);
const root = mkdtempSync(join(tmpdir(), 'wharf-pg2sqlite-'));
/** Filled once; each test migrates its own copy. */
const filled = join(root, 'filled');
const CHANNELS = ['ch_cloud', 'ch_user'];
const AUTH_CHANNEL = 'ch_user';

/** Writes one of everything the store keeps, through its API. */
async function fill(db: Db): Promise<{ vaultItem: string; mediaId: string }> {
  const store = createStore(db, secretKey);
  const item = await store.vault.createLocal({ name: 'meta-token', kind: 'api_key', fields: { value: 'EAAG-1' } });
  await store.vault.createLocal({ name: 'openai', kind: 'api_key', fields: { key: 'sk-1', org: 'o' } });
  await store.vaultConnections.create({ id: 'hv', kind: 'hashicorp', settings: { address: 'http://v', depth: 2 } });
  await store.agents.create({ id: 'bot-1', kind: 'openai', config: { model: 'x', n: 2, deep: { ok: true } } });
  await store.channels.project(channelState('ch_cloud', {}));
  await store.channels.project(
    channelState('ch_user', {
      provider: 'whatsapp_user',
      status: 'setup',
      config: {},
      pairedAddresses: [{ address: '+15551234567', pairedAt: '2026-12-01T11:00:00.000Z' }],
      version: 7,
    }),
  );
  await store.channels.project(channelState('ch_gone', { status: 'disconnected' }), true);
  await store.spaces.bind('space-ch_cloud', 'ch_cloud');
  await store.spaces.bind('space-ch_user', 'ch_user');
  await store.diagnostics.record('ch_cloud', 'webhook');
  await store.diagnostics.record('ch_cloud', 'bad_signature', 3);
  await store.diagnostics.sendError('ch_cloud', { code: 131047, message: 're-engagement' });
  await store.diagnostics.subscribedApps('ch_cloud', 1);
  for (let i = 0; i < 3; i++)
    await store.messages.recordInbound('ch_cloud', `tok-${i}`, [
      { id: `wamid.${i}`, chatId: 'c1', address: '+1555001', text: `hello ${i} ✓` },
    ]);
  await store.messages.recordInbound('ch_cloud', 'tok-img', [
    { id: 'wamid.img', chatId: 'c2', address: '+1555002', text: '', type: 'image' },
  ]);
  await store.messages.mergeInboundDetail('ch_cloud', 'wamid.img', { media: { id: 'abc', nested: { a: [1, 2] } } });
  await store.messages.recordUnhandled('ch_cloud', [
    { id: 'wamid.r', chatId: 'c1', address: '+1555001', type: 'reaction', text: '👍', status: 'ignored', reason: 'r' },
  ]);
  await store.messages.claimOutbound('ch_cloud', 'c1', [{ key: 'r:wamid.0#1', address: '+1555001', text: 'a' }], 'A');
  await store.messages.completeOutbound({
    channelId: 'ch_cloud',
    key: 'r:wamid.0#1',
    providerId: 'wamid.out1',
    inbound: { id: 'wamid.0', status: 'answered', detail: { markdown: 'a' } },
  });
  await store.messages.applyStatus('ch_cloud', 'wamid.out1', 'read');
  // A claim still held (an unsent part), and a part the provider refused, with its detail.
  await store.messages.claimOutbound('ch_cloud', 'c1', [{ key: 'r:wamid.1#1', address: '+1555001', text: 'b' }], 'B');
  await store.messages.recordOutbound({
    channelId: 'ch_cloud',
    key: 'r:wamid.2#1',
    chatId: 'c1',
    address: '+1555001',
    text: 'c',
    status: 'failed',
    detail: { error: { code: 131026, message: 'undeliverable' } },
  });
  await store.outboundMedia.describeOutbound('ch_cloud', 'r:wamid.2#1', 'document', { filename: 'a.pdf' });
  await store.outboundMedia.saveUpload('106540352242922', 'sha-1', 'meta-media-1');
  await store.policies.save('permit(principal, action, resource);');
  await store.policies.save('forbid(principal, action, resource) when { false };');
  const media = await store.media.put(Buffer.from([0, 1, 2, 255, 0x89, 0x50]), 'image/png');
  // More rows than one page of the copy holds (keyset paging on a composite key, and on a table with bytes).
  await store.messages.recordInbound(
    'ch_bulk',
    'tok-bulk',
    Array.from({ length: 1_100 }, (_, i) => ({
      id: `wamid.bulk.${i}`,
      chatId: `c${i % 7}`,
      address: '+1',
      text: `${i}`,
    })),
  );
  for (let i = 0; i < 10; i++) await store.media.put(randomBytes(1_000 + i), 'application/octet-stream');
  await store.sessionLinks.set('ch_user', { qr: '2@abc,def', pairingCode: 'ABCD-1234', expiresAt: new Date() });
  await store.sessionHolders.record({
    channelId: 'ch_user',
    nodeId: 'node-1',
    workflowId: 'wf',
    runId: 'run',
    activityId: '1',
    attempt: 3,
  });
  const auth = await createStoreAuthState({
    db,
    secretKey,
    channelId: AUTH_CHANNEL,
    fence: { token: 't', claim: true },
  });
  await auth.state.keys.set({ 'pre-key': { '1': { public: Buffer.from('p1'), private: Buffer.from('s1') } } });
  await auth.state.keys.set({ session: { a: Buffer.from('sess-a') } });
  await auth.saveCreds();
  auth.close();
  await store.node.beat();
  return { vaultItem: item.item, mediaId: media.id };
}

/** Everything the store API reads back, for a deep-equal across engines. */
async function readModels(db: Db, ids: { vaultItem: string; mediaId: string }): Promise<Record<string, unknown>> {
  const store = createStore(db, secretKey);
  const auth = await createStoreAuthState({ db, secretKey, channelId: AUTH_CHANNEL });
  const out = {
    spaces: await store.spaces.list(),
    agents: await store.agents.list(),
    vault: await store.vault.list('local'),
    secret: await store.vault.resolve({ vault: 'local', item: ids.vaultItem, field: 'value' }),
    secret2: await store.vault.resolve({ vault: 'local', item: 'openai', field: 'org' }),
    vaultConnections: await store.vaultConnections.list(),
    channels: await store.channels.list(),
    deleted: await store.channels.getRecent('ch_gone'),
    byStatus: await store.channels.countByStatus(),
    diagnostics: Object.fromEntries(await store.diagnostics.getMany(CHANNELS)),
    recent: await store.messages.recent('ch_cloud', 100),
    window: await store.messages.chatWindow('ch_cloud', 'c1', 100),
    sent: [...(await store.messages.sentProviderIds('ch_cloud', ['wamid.out1']))],
    policies: await store.policies.current(),
    policyVersion: await store.policies.version(),
    upload: await store.outboundMedia.findUpload('106540352242922', 'sha-1'),
    media: await store.media.get(ids.mediaId),
    link: await store.sessionLinks.get('ch_user'),
    creds: auth.state.creds,
    preKeys: await auth.state.keys.get('pre-key', ['1']),
    sessions: await auth.state.keys.get('session', ['a']),
  };
  auth.close();
  return out;
}

/** Every row of every table, in the shapes the session returns (the raw check behind the read models). */
async function dump(db: Db): Promise<Record<string, unknown[]>> {
  const tables = db.dialect === 'sqlite' ? await sqliteTables(db) : await pgTables(db);
  const out: Record<string, unknown[]> = {};
  for (const t of tables) {
    const rows = await db.query<Record<string, unknown>>(`select * from ${t}`);
    out[t] = rows
      .map((r) =>
        Object.fromEntries(
          Object.entries(r)
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([k, v]) => [
              k,
              v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? Number(v) : v,
            ]),
        ),
      )
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  return out;
}
const sqliteTables = async (db: Db): Promise<string[]> =>
  (
    await db.query<{ name: string }>(
      `select name from sqlite_master where type = 'table' and name not in ('schema_migrations', 'sqlite_sequence')`,
    )
  ).map((r) => r.name);
const pgTables = async (db: Db): Promise<string[]> =>
  (
    await db.query<{ name: string }>(
      `select table_name as name from information_schema.tables
        where table_schema = 'public' and table_name <> 'schema_migrations'`,
    )
  ).map((r) => r.name);

let ids: { vaultItem: string; mediaId: string };
let before: Record<string, unknown>;
let beforeRows: Record<string, unknown[]>;

beforeAll(async () => {
  mkdirSync(filled);
  const db = await openPglite(join(filled, 'store'));
  await migrate(db);
  ids = await fill(db);
  before = await readModels(db, ids);
  beforeRows = await dump(db);
  await db.close();
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the filled data dir. */
function dataDirCopy(name: string): string {
  const dir = join(root, name);
  cpSync(filled, dir, { recursive: true });
  return dir;
}

describe('an existing PGlite store moves to SQLite on the first start', () => {
  it('the SQLite store reads back what PGlite held, the PGlite dir is kept renamed, and it happens once', async () => {
    const dataDir = dataDirCopy('ok');
    const dirs = embeddedStoreDirs(dataDir);
    expect(needsPgliteMigration(dataDir)).toBe(true);
    const logged: unknown[] = [];
    const done = await migratePgliteToSqlite(dataDir, {
      now: new Date('2026-12-02T12:34:56.789Z'),
      log: { info: (...args: unknown[]) => void logged.push(args) } as never,
    });

    expect(done?.movedTo).toBe(join(dataDir, 'store.pglite-migrated-20261202T123456Z'));
    expect(existsSync(join(done!.movedTo, 'PG_VERSION'))).toBe(true);
    expect(existsSync(dirs.pglite)).toBe(false);
    expect(readdirSync(dirs.sqlite)).toEqual([SQLITE_FILE]); // no temp file, no -wal/-shm left beside it
    expect(done?.rows).toMatchObject({
      messages: 1_108,
      media: 11,
      channels: 3,
      vault_items: 2,
      auth_state: 4,
      policy_sets: 2,
    });
    expect(logged).toHaveLength(1);
    expect(JSON.stringify(logged)).not.toContain('EAAG-1');

    const sqlite = await openSqlite(dirs.sqlite);
    try {
      expect(await migrate(sqlite)).toEqual([]); // the copy is at the latest schema already
      expect(await dump(sqlite)).toEqual(beforeRows);
      expect(await readModels(sqlite, ids)).toEqual(before);
      // The copy is a working store: a dead node's session is found, a new policy continues the sequence.
      const store = createStore(sqlite, secretKey);
      expect(await store.sessionHolders.takeDead('node-2', 0)).toMatchObject([{ channelId: 'ch_user', attempt: 3 }]);
      const next = await store.policies.save('permit(principal, action, resource);');
      expect(next.id).toBe(Number(before.policyVersion) + 1);
    } finally {
      await sqlite.close();
    }

    expect(needsPgliteMigration(dataDir)).toBe(false);
    expect(await migratePgliteToSqlite(dataDir)).toBeNull();
  });

  it('a failure mid-copy leaves the PGlite dir as it was and no SQLite file; the next start succeeds', async () => {
    const dataDir = dataDirCopy('fails');
    const dirs = embeddedStoreDirs(dataDir);
    const err = await migratePgliteToSqlite(dataDir, {
      afterTable: (table) => {
        if (table === 'messages') throw new Error('disk full (injected)');
      },
    }).then(
      () => new Error('the migration did not fail'),
      (e: unknown) => e as Error,
    );

    expect(err.message).toContain(dirs.pglite);
    expect(err.message).toContain(dirs.sqlite);
    expect(err.message).toContain('disk full (injected)');
    expect(readdirSync(dirs.sqlite)).toEqual([]);
    expect(readdirSync(dataDir).sort()).toEqual(['store', 'store-sqlite']);
    const pg = await openPglite(dirs.pglite);
    try {
      expect(await dump(pg)).toEqual(beforeRows);
    } finally {
      await pg.close();
    }

    expect(await migratePgliteToSqlite(dataDir)).not.toBeNull();
    expect(readdirSync(dirs.sqlite)).toEqual([SQLITE_FILE]);
  });

  it('a copy a killed start left under its temporary name is discarded and the copy starts again', async () => {
    const dataDir = dataDirCopy('killed');
    const dirs = embeddedStoreDirs(dataDir);
    mkdirSync(dirs.sqlite, { recursive: true });
    writeFileSync(join(dirs.sqlite, `${SQLITE_FILE}.migrating`), 'half a database');
    writeFileSync(join(dirs.sqlite, `${SQLITE_FILE}.migrating-wal`), 'half a log');
    expect(needsPgliteMigration(dataDir)).toBe(true);

    expect((await migratePgliteToSqlite(dataDir))?.rows.messages).toBe(1_108);
    expect(readdirSync(dirs.sqlite)).toEqual([SQLITE_FILE]);
    const sqlite = await openSqlite(dirs.sqlite);
    try {
      expect(await dump(sqlite)).toEqual(beforeRows);
    } finally {
      await sqlite.close();
    }
  });

  it('a data dir without a PGlite store, or with a SQLite store already, is left alone', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect(await migratePgliteToSqlite(empty)).toBeNull();
    expect(readdirSync(empty)).toEqual([]);

    const both = dataDirCopy('both');
    const sqlite = await openSqlite(embeddedStoreDirs(both).sqlite);
    await migrate(sqlite);
    await sqlite.close();
    expect(await migratePgliteToSqlite(both)).toBeNull();
    expect(existsSync(join(both, 'store', 'PG_VERSION'))).toBe(true);
  });

  it('WHARF_STORE=pglite is refused on a data dir whose store moved to SQLite, with the way back named', async () => {
    const dataDir = dataDirCopy('back');
    expect(pgliteWouldStartEmpty(dataDir)).toBeNull(); // PGlite's own store is there
    const done = await migratePgliteToSqlite(dataDir, { now: new Date('2026-12-03T10:00:00Z') });
    const refused = pgliteWouldStartEmpty(dataDir);
    expect(refused).toContain('PGlite would start an empty store');
    expect(refused).toContain(`rename ${done!.movedTo} to ${join(dataDir, 'store')}`);
    const fresh = join(root, 'fresh');
    mkdirSync(fresh);
    expect(pgliteWouldStartEmpty(fresh)).toBeNull(); // nothing anywhere: a new PGlite store is what was asked for
  });
});

describe('the built product on a data dir an earlier Wharf ran on PGlite', () => {
  it('moves the store at its first start and goes on with the same channel; the next start does not move it again', async () => {
    const fake = await startFakeGraph();
    const started: SpawnedWharf[] = [];
    const start = async (env: Record<string, string>): Promise<SpawnedWharf> => {
      const w = await spawnWharf({ META_GRAPH_URL: fake.url, ...env }, { startTimeoutMs: 110_000 });
      started.push(w);
      return w;
    };
    try {
      // One task queue for all three starts: the channel's workflows run on, as they do for an operator.
      const queue = { WHARF_TASK_QUEUE: `wharf-moved-${randomBytes(6).toString('hex')}` };
      const old = await start({ WHARF_STORE: 'pglite', ...queue });
      const sender = phone();
      const ch = await cloudChannel(old.asTestWharf(), fake, { pair: [sender] });
      await echoRoundTrip(old.asTestWharf(), fake, ch, sender, 'before the move');
      const agent = await old.api('POST', '/api/agents', { id: 'kept-agent', kind: 'echo' });
      expect(agent.status).toBe(201);
      const read = async (w: SpawnedWharf) => ({
        // Without its webhook URL, which names this start's port.
        channel: { ...(await w.api('GET', `/api/channels/${ch.id}`)).data, webhookUrl: undefined },
        messages: (await w.api('GET', `/api/channels/${ch.id}/messages?limit=50`)).data,
        agents: (await w.api('GET', '/api/agents')).data,
        vault: (await w.api('GET', '/api/vaults/local/items')).data,
      });
      const before = await read(old);
      expect((await old.stop('SIGTERM')).code).toBe(0);

      const same = { WHARF_DATA_DIR: old.dataDir, WHARF_ADMIN_TOKEN: old.token, ...queue };
      const moved = await start(same); // WHARF_STORE unset: SQLite, the default
      expect(moved.stdout()).toContain('PGlite store migrated to SQLite');
      expect(
        readdirSync(old.dataDir)
          .filter((n) => n.startsWith('store'))
          .sort(),
      ).toEqual(['store-sqlite', expect.stringMatching(/^store\.pglite-migrated-\d{8}T\d{6}Z$/)]);
      expect(await read(moved)).toEqual(before);
      await echoRoundTrip(moved.asTestWharf(), fake, ch, sender, 'after the move');
      expect((await moved.stop('SIGTERM')).code).toBe(0);

      const again = await start(same);
      expect(again.stdout()).not.toContain('migrated to SQLite');
      const log = (await again.api('GET', `/api/channels/${ch.id}/messages?limit=50`)).data as Array<{ text: string }>;
      expect(log.map((m) => m.text)).toEqual(expect.arrayContaining(['before the move', 'after the move']));
    } finally {
      // SIGTERM (SIGKILL only after its timeout): a SIGKILLed Wharf leaves its dev server behind.
      for (const w of started) await w.stop('SIGTERM').catch(() => undefined);
      started[0]?.purge();
      await fake.close();
    }
  }, 300_000);
});
