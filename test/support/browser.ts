/**
 * Real Chromium for the console tests: Debian's `/usr/bin/chromium` driven by playwright-core (Playwright's
 * own browser download cannot work here). Installs the Debian package when it is missing and we are root,
 * and builds the console when its sources are newer than `dist/console`.
 */
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { CONSOLE_DIR } from '../../api/console.router.js';
import { projectRoot } from '../../lib/paths.js';

/** Where Debian puts chromium. */
export const CHROMIUM = process.env.WHARF_CHROMIUM ?? '/usr/bin/chromium';

/** Makes sure chromium is installed: `apt-get install -y chromium` when it is missing and we may. */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `${CHROMIUM} is missing. Install Debian's chromium (sudo apt-get install -y chromium) or point WHARF_CHROMIUM at a Chromium binary.`,
    );
  }
  execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium', {
    stdio: 'inherit',
    timeout: 600_000,
  });
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get install chromium did not provide ${CHROMIUM}.`);
  return CHROMIUM;
}

function newest(p: string): number {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(p).map((f) => newest(join(p, f))));
}

/** Builds the console (`vite build console`) unless `dist/console` is newer than every source of it. */
export function ensureConsoleBuilt(): void {
  const index = join(CONSOLE_DIR, 'index.html');
  const sources = Math.max(
    newest(join(projectRoot, 'console')),
    newest(join(projectRoot, 'lib', 'types.ts')),
    newest(join(projectRoot, 'api', 'schemas.ts')),
  );
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  execFileSync(
    process.execPath,
    [join(projectRoot, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', 'console', '--logLevel', 'warn'],
    { cwd: projectRoot, stdio: 'inherit', timeout: 120_000 },
  );
}

/** Launches headless chromium (one per test file; close it in afterAll). */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = ensureChromium();
  // --no-sandbox: tests run as root in a container, where Chromium's sandbox cannot start.
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}
