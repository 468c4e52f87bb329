/**
 * A fresh, empty store on the run's engine (the vitest project's `storeKind`): a database of its own on the
 * run's PostgreSQL, or PGlite / SQLite in a temp dir. For the store-level tests that run on every engine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { openPglite, openPostgres, type Db } from '../../lib/store/db.js';
import { openSqlite } from '../../lib/store/sqlite.js';
import type { ChannelState } from '../../lib/types.js';
import { createTestDatabase, dropTestDatabase } from './postgres.js';

/** An open scratch store; `drop` removes its database or directory (close `db` first). */
export interface ScratchStore {
  db: Db;
  /** The database's URL on PostgreSQL. */
  url?: string;
  drop(): Promise<void>;
}

/** Opens a fresh, empty store of this project's engine (not migrated). */
export async function openScratchStore(prefix = 'wharf-db-'): Promise<ScratchStore> {
  const kind = inject('storeKind');
  if (kind === 'postgres') {
    const admin = inject('postgresAdminUrl');
    const url = await createTestDatabase(admin);
    return { db: await openPostgres(url), url, drop: () => dropTestDatabase(admin, url) };
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    db: kind === 'sqlite' ? await openSqlite(join(dir, 'store')) : await openPglite(join(dir, 'store')),
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A channel's read model as the channel workflow projects it (a connected Cloud API channel unless `over` says otherwise). */
export const channelState = (id: string, over: Partial<ChannelState> = {}): ChannelState => ({
  id,
  provider: 'whatsapp_cloud',
  space: `space-${id}`,
  agent: 'echo',
  inbound: 'message',
  status: 'connected',
  statusReason: '',
  config: { phone_number_id: '106540352242922', access_token: { vault: 'local', item: 'itm_x', field: 'value' } },
  configured: true,
  selfAddress: '+15550000000',
  pairedAddresses: [],
  pairing: null,
  lastPairing: null,
  createdAt: '2026-12-01T10:00:00.000Z',
  updatedAt: '2026-12-01T10:00:00.000Z',
  version: 1,
  ...over,
});
