/**
 * `node dist/lib/store/build-template.js [dir]` (run by `npm run build`): makes the embedded store's template
 * (lib/store/template.ts) by initialising a PGlite data dir and running every migration on it. Skipped when
 * the template there was made with the same PGlite version and the same migrations.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPglite } from './db.js';
import { MIGRATIONS, migrate, type Migration } from './migrations.js';
import {
  pgliteVersion,
  readTemplateManifest,
  storeTemplateDir,
  templateManifestPath,
  type TemplateManifest,
} from './template.js';

/** Makes a template in `dir` (replacing one there) with `migrations` applied; returns its manifest. */
export async function buildStoreTemplate(
  dir: string = storeTemplateDir,
  migrations: Migration[] = MIGRATIONS,
): Promise<TemplateManifest> {
  // Built beside its place and moved in at the end, so a build that dies leaves no half-made template.
  const parent = dirname(dir);
  const work = mkdtempSync(join(parent, '.store-template-'));
  try {
    const db = await openPglite(join(work, 'data'), { template: null });
    await migrate(db, migrations);
    await db.close();
    const manifest: TemplateManifest = { pglite: pgliteVersion(), migrations: migrations.map((m) => m.version) };
    writeFileSync(templateManifestPath(work), JSON.stringify(manifest, null, 2) + '\n');
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return manifest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Whether the template in `dir` was made with the installed PGlite and exactly these migrations. */
export function templateIsCurrent(dir: string = storeTemplateDir, migrations: Migration[] = MIGRATIONS): boolean {
  const m = readTemplateManifest(dir);
  return (
    !!m &&
    m.pglite === pgliteVersion() &&
    JSON.stringify(m.migrations) === JSON.stringify(migrations.map((x) => x.version))
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2] ?? storeTemplateDir;
  if (templateIsCurrent(dir)) console.log(`store template in ${dir} is current`);
  else {
    const t0 = performance.now();
    const m = await buildStoreTemplate(dir);
    console.log(
      `store template written to ${dir} (PGlite ${m.pglite}, migrations ${m.migrations.join(',')}) in ${Math.round(performance.now() - t0)} ms`,
    );
  }
}
