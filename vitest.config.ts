import { defineConfig } from 'vitest/config';

/** Options both projects share. */
const shared = { testTimeout: 60_000, hookTimeout: 120_000, pool: 'forks' as const };

/**
 * The store and acceptance-level API files, run a second time with every Wharf on real PostgreSQL:
 * a behaviour that differs between the two engines is a bug.
 */
const ON_BOTH_STORES = [
  'test/store-db.test.ts',
  'test/store-repositories.test.ts',
  'test/session-links.test.ts',
  'test/channels.test.ts',
  'test/cloud-api.test.ts',
  'test/channel-lifecycle.test.ts',
];

/**
 * The store-level files, run a third time on SQLite (lib/store/sqlite.ts, groundwork for issue #22): the
 * same assertions as on PGlite and PostgreSQL.
 */
const ON_SQLITE = ['test/store-db.test.ts', 'test/store-repositories.test.ts', 'test/session-links.test.ts'];

export default defineConfig({
  test: {
    // One Temporal dev server and one PostgreSQL cluster per run, shared by both projects.
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      { test: { ...shared, name: 'pglite', include: ['test/**/*.test.ts'], provide: { storeKind: 'pglite' } } },
      { test: { ...shared, name: 'postgres', include: ON_BOTH_STORES, provide: { storeKind: 'postgres' } } },
      { test: { ...shared, name: 'sqlite', include: ON_SQLITE, provide: { storeKind: 'sqlite' } } },
    ],
  },
});
