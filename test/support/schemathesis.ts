/**
 * schemathesis (PyPI) for the API contract test: installed once into a venv under `.tools/schemathesis`
 * (ignored by git), then reused by later runs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';

/** The pinned schemathesis release the contract test was written against. */
const VERSION = '4.32.5';

/** The path of the `st` command, installing schemathesis first when the venv lacks it. */
export function ensureSchemathesis(): string {
  const venv = join(projectRoot, '.tools', 'schemathesis');
  const st = join(venv, 'bin', 'st');
  const installed = existsSync(st) && execFileSync(st, ['--version'], { encoding: 'utf8' }).includes(VERSION);
  if (!installed) {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' });
    execFileSync(join(venv, 'bin', 'pip'), ['install', '--quiet', `schemathesis==${VERSION}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }
  return st;
}
