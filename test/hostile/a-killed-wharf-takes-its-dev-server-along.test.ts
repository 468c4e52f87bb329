/**
 * Attack: Wharf killed with SIGKILL (the OOM killer, `kill -9`, a crashed container runtime) — nothing of its
 * own runs to stop its embedded Temporal dev server. The server must not outlive it, holding the ports and
 * the database of the data dir: the kernel sends it SIGTERM when Wharf dies, and the next start on the same
 * data dir comes up as usual.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnWharf, type SpawnedWharf } from '../support/spawned-wharf.js';
import { withParentDeathSignal } from '../../workers/temporal-server.js';

/** Whether `pid` is a live process (a zombie waiting for its reaper is not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const canSetDeathSignal = withParentDeathSignal('x', [])[0] !== 'x';

describe.runIf(canSetDeathSignal)('a Wharf killed with SIGKILL', () => {
  it('takes its embedded dev server along, and starts again on the same data dir', async () => {
    const started: SpawnedWharf[] = [];
    let server = 0;
    try {
      // TEMPORAL_ADDRESS unset: Wharf runs its own dev server and writes its pid into the data dir.
      const first = await spawnWharf({}, { startTimeoutMs: 110_000 });
      started.push(first);
      server = Number(readFileSync(join(first.dataDir, 'temporal.pid'), 'utf8'));
      expect(alive(server)).toBe(true);

      expect((await first.stop('SIGKILL')).signal).toBe('SIGKILL');
      const deadline = Date.now() + 30_000;
      while (alive(server) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(alive(server)).toBe(false);

      const again = await spawnWharf(
        { WHARF_DATA_DIR: first.dataDir, WHARF_ADMIN_TOKEN: first.token },
        { startTimeoutMs: 110_000 },
      );
      started.push(again);
      expect((await again.api('GET', '/healthz')).status).toBe(200);
      expect(again.stdout()).not.toContain('left over from an earlier run');
      expect((await again.stop('SIGTERM')).code).toBe(0);
    } finally {
      for (const w of started) await w.stop('SIGTERM').catch(() => undefined);
      if (server && alive(server)) process.kill(server, 'SIGKILL'); // what this test is about failed: clean up
      started[0]?.purge();
    }
  }, 300_000);
});
