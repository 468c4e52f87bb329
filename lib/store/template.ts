/**
 * The embedded store's template (issue #22): a PGlite data dir with every migration applied, made by
 * `npm run build` (lib/store/build-template.ts) into `dist/store-template/`. A first start copies it instead of
 * running initdb and the migrations, which took most of the first start (initdb in a child process, then
 * eight migrations through the WASM Postgres). The migrations stay the one source of truth: the template is
 * made by running them, and `migrate` still runs on the copy and applies whatever is newer than the template.
 * A template made with another PGlite version is not used (its data dir format may differ).
 */
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Where `npm run build` writes the template (dist/store-template, next to dist/lib). */
export const storeTemplateDir = join(here, '..', '..', 'store-template');
/** The template's description, next to its `data` dir. */
const MANIFEST = 'manifest.json';

/** What a template was made with. */
export interface TemplateManifest {
  /** PGlite's version (the data dir format follows it). */
  pglite: string;
  /** The migration versions applied in it. */
  migrations: number[];
}

/** The installed PGlite's version (from its package.json, found from its entry point). */
export function pgliteVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
  for (;;) {
    const f = join(dir, 'package.json');
    if (existsSync(f)) {
      const pkg = JSON.parse(readFileSync(f, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the version of @electric-sql/pglite');
    dir = up;
  }
}

/** The manifest of the template in `dir`, or null when there is none (or it is unreadable). */
export function readTemplateManifest(dir: string): TemplateManifest | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as TemplateManifest;
    return typeof m.pglite === 'string' && Array.isArray(m.migrations) ? m : null;
  } catch {
    return null;
  }
}

/** The template's data dir in `dir` when it can be used with the installed PGlite, else null. */
export function usableTemplate(dir: string = storeTemplateDir): string | null {
  const m = readTemplateManifest(dir);
  const data = join(dir, 'data');
  return m && m.pglite === pgliteVersion() && existsSync(join(data, 'PG_VERSION')) ? data : null;
}

/** Copies a usable template into the (new) store dir `dir`; false when there is none to copy. */
export function copyTemplate(dir: string, template: string = storeTemplateDir): boolean {
  const data = usableTemplate(template);
  if (!data) return false;
  cpSync(data, dir, { recursive: true, errorOnExist: true, force: false });
  return true;
}

/** Where the manifest of a template in `dir` goes. */
export const templateManifestPath = (dir: string): string => join(dir, MANIFEST);
