// prestart: compile only when a source is newer than the last build, so restarts are fast.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const stamp = 'dist/workflow-bundle.js';
const roots = [
  'lib',
  'examples',
  'workflows',
  'activities',
  'workers',
  'api',
  'console',
  'package.json',
  'tsconfig.json',
  'tsconfig.build.json',
];

function newest(p) {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(p).map((f) => newest(join(p, f))));
}

const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
// The console (dist/console, built last) counts too: a build that stopped before it left no console.
const consoleBuilt = existsSync('dist/console/index.html');
if (built === 0 || !consoleBuilt || Math.max(...roots.map(newest)) > built) {
  console.log('wharf: compiling (sources changed since the last build) ...');
  execSync('npm run --silent build', { stdio: 'inherit' });
}
