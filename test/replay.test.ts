/**
 * Upgrades: chat workflows that are running when Wharf is upgraded carry on under the new code. Their
 * histories, recorded by an earlier version (test/fixtures/histories: Wharf at 7aed813, an echo chat with pairing
 * and a batch, and an OpenAI-agent chat; written with `temporal workflow show
 * --output json`), must replay without a determinism error against today's workflow bundle; a change in
 * what the chat workflow does is gated with `patched()` so that they do.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';

const dir = join(import.meta.dirname, 'fixtures', 'histories');

describe('chat histories of earlier versions', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(2);
  });

  for (const file of files) {
    it(`replays ${file} without a determinism error`, async () => {
      const history = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      await expect(
        Worker.runReplayHistory(
          { workflowBundle: { codePath: inject('workflowBundlePath') } as unknown as { code: string } },
          history,
          `replay-${file}`,
        ),
      ).resolves.toBeUndefined();
    });
  }
});
