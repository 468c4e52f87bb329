/**
 * The embedded store's template (lib/store/template.ts, issue #22): a first start copies a PGlite data dir
 * made by running the migrations, and `migrate` then applies whatever is newer than the template. Real PGlite
 * throughout: a template made with all migrations and one made with all but the last two must end up with the
 * same schema once migrated, and a template of another PGlite version is not used.
 */
import { cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStoreTemplate, templateIsCurrent } from '../lib/store/build-template.js';
import { openPglite, type Db } from '../lib/store/db.js';
import { MIGRATIONS, migrate } from '../lib/store/migrations.js';
import { pgliteVersion, readTemplateManifest, usableTemplate } from '../lib/store/template.js';

let dir: string;
const full = (): string => join(dir, 'full');
const older = (): string => join(dir, 'older');

/** Tables, columns, indexes and applied migrations: what a store's schema is made of. */
async function schemaOf(db: Db): Promise<unknown> {
  return {
    columns: await db.query(
      `select table_name, column_name, data_type, is_nullable, column_default from information_schema.columns
        where table_schema = 'public' order by table_name, column_name`,
    ),
    indexes: await db.query(
      `select indexname, indexdef from pg_indexes where schemaname = 'public' order by indexname`,
    ),
    migrations: (await db.query<{ version: number }>('select version from schema_migrations order by version')).map(
      (r) => r.version,
    ),
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-template-'));
  await Promise.all([buildStoreTemplate(full()), buildStoreTemplate(older(), MIGRATIONS.slice(0, -2))]);
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('store template', () => {
  it('records what it was made with, and is current only for the same PGlite and migrations', () => {
    expect(readTemplateManifest(full())).toEqual({
      pglite: pgliteVersion(),
      migrations: MIGRATIONS.map((m) => m.version),
    });
    expect(templateIsCurrent(full())).toBe(true);
    expect(templateIsCurrent(older())).toBe(false);
    expect(usableTemplate(older())).not.toBeNull(); // older migrations: usable, migrate does the rest
  });

  it('a store copied from it needs no migration, and one copied from an older template migrates to the same schema', async () => {
    const fromFull = await openPglite(join(dir, 'store-full'), { template: full() });
    const fromOlder = await openPglite(join(dir, 'store-older'), { template: older() });
    try {
      expect(await migrate(fromFull)).toEqual([]);
      expect(await migrate(fromOlder)).toEqual(MIGRATIONS.slice(-2).map((m) => m.version));
      expect(await schemaOf(fromOlder)).toEqual(await schemaOf(fromFull));
      // A working store: a write and a read.
      await fromFull.query('insert into spaces (name) values ($1)', ['template-space']);
      expect(await fromFull.query('select name from spaces')).toEqual([{ name: 'template-space' }]);
    } finally {
      await fromFull.close();
      await fromOlder.close();
    }
    // Owner-only, as a store made by initdb (PGlite's files come out 0666/0644 otherwise).
    expect(statSync(join(dir, 'store-full', 'PG_VERSION')).mode & 0o077).toBe(0);
  });

  it('is not used when another PGlite version made it, nor when there is none', () => {
    const other = join(dir, 'other-version');
    cpSync(full(), other, { recursive: true });
    expect(usableTemplate(other)).not.toBeNull();
    writeFileSync(join(other, 'manifest.json'), JSON.stringify({ pglite: '0.0.1', migrations: [1] }));
    expect(usableTemplate(other)).toBeNull();
    expect(usableTemplate(join(dir, 'missing'))).toBeNull();
  });
});
