/** Filesystem locations of the project itself, valid both from sources (tests) and from `dist/` (production). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return start;
    dir = up;
  }
  return dir;
}

/** The directory holding package.json. */
export const projectRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
