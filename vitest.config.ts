import { configDefaults, defineConfig } from 'vitest/config';

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
 * The store-level files, run a third time on PGlite (the previous embedded engine, kept for one release with
 * WHARF_STORE=pglite): the same assertions as on SQLite and PostgreSQL. The move of a PGlite data dir to
 * SQLite runs here only.
 */
const ON_PGLITE = ['test/store-db.test.ts', 'test/store-repositories.test.ts', 'test/session-links.test.ts'];
const PGLITE_ONLY = ['test/pglite-to-sqlite.test.ts'];

export default defineConfig({
  test: {
    // One Temporal dev server and one PostgreSQL cluster per run, shared by both projects.
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      // Every file on the embedded default, SQLite.
      {
        test: {
          ...shared,
          name: 'sqlite',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...PGLITE_ONLY],
          provide: { storeKind: 'sqlite' },
        },
      },
      { test: { ...shared, name: 'postgres', include: ON_BOTH_STORES, provide: { storeKind: 'postgres' } } },
      {
        test: { ...shared, name: 'pglite', include: [...ON_PGLITE, ...PGLITE_ONLY], provide: { storeKind: 'pglite' } },
      },
    ],
  },
});
