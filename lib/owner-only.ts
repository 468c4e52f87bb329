/**
 * Owner-only files: Wharf's data dir holds message text (PGlite's WAL and tables, the Temporal dev server's
 * `temporal.db`), policies and the encrypted vault, so nothing in it may be readable by other local users.
 *
 * The process umask (set to 077 at start, inherited by the dev server) covers files that Wharf and the dev
 * server create through `open(2)`. It does not cover PGlite: its Emscripten file system chmods every file it
 * creates to the mode Postgres asked for, whatever the umask. Measured on PGlite 0.5.16 (umask 022 and 077
 * alike): the ~970 files `initdb` writes are 0666, `pg_internal.init` (rewritten each time the store opens)
 * is 0644, and every file the running database creates later (tables, indexes, WAL segments) is 0600. So the
 * store's files are swept once each time it opens, after which nothing loosens again; the data dir itself
 * is 0700 as well, so no other user can reach a file even in the moment before a sweep.
 */
import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** What a sweep did. */
export interface OwnerOnlySweep {
  /** Entries looked at. */
  seen: number;
  /** Entries whose group/other bits were removed. */
  tightened: number;
}

/**
 * Removes every group and other permission bit under `root` (and from `root` itself): directories end up
 * 0700, files 0600 (owner bits are kept as they are). Symbolic links are neither followed nor changed.
 */
export function restrictToOwner(root: string): OwnerOnlySweep {
  const sweep: OwnerOnlySweep = { seen: 0, tightened: 0 };
  const visit = (path: string): void => {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return; // removed while we walked (a WAL segment recycled, a pid file deleted)
    }
    if (st.isSymbolicLink()) return;
    sweep.seen++;
    if (st.mode & 0o077) {
      try {
        chmodSync(path, st.mode & 0o700);
        sweep.tightened++;
      } catch {
        // removed since the lstat: nothing left to protect
      }
    }
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = readdirSync(path);
      } catch {
        return;
      }
      for (const name of names) visit(join(path, name));
    }
  };
  visit(root);
  return sweep;
}
