/**
 * The hand-back of the C allocator's free pages (workers/memory-trim.ts): a burst that leaves its freed
 * memory scattered between live allocations keeps it resident until a trim, which gives it back.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../lib/logger.js';
import { registry } from '../lib/metrics.js';
import { startMemoryTrim } from '../workers/memory-trim.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const log = createLogger('silent');
const MB = 1024 * 1024;

async function counter(name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return Number(m?.values[0]?.value ?? 0);
}

describe('memory trim', () => {
  it('gives back the pages a burst freed between live allocations', async () => {
    const trim = startMemoryTrim(3_600_000, log);
    try {
      await trim.trimNow(); // what the run so far left
      // 160 MB in 64 kB buffers (malloc'd, below glibc's mmap threshold), one in eight kept: the freed seven
      // sit between live ones, where a free never reaches the arena's top.
      let burst: Buffer[] = Array.from({ length: 2560 }, () => Buffer.alloc(64 * 1024, 1));
      const kept = burst.filter((_, i) => i % 8 === 0);
      burst = [];
      gc();
      gc();
      const before = process.memoryUsage.rss();
      const trims = await counter('wharf_memory_trims_total');
      const released = await trim.trimNow();
      const after = process.memoryUsage.rss();
      expect(kept.length).toBe(320);
      expect(released).toBeGreaterThan(100 * MB);
      expect(before - after).toBeGreaterThan(100 * MB);
      expect(await counter('wharf_memory_trims_total')).toBe(trims + 1);
      expect(await counter('wharf_memory_trimmed_bytes_total')).toBeGreaterThanOrEqual(released);
    } finally {
      trim.stop();
    }
  });

  it('does nothing when turned off (WHARF_MEMORY_TRIM_SECONDS=0) or stopped', async () => {
    const off = startMemoryTrim(0, log);
    const trims = await counter('wharf_memory_trims_total');
    expect(await off.trimNow()).toBe(0);
    const on = startMemoryTrim(3_600_000, log);
    on.stop();
    expect(await on.trimNow()).toBe(0);
    expect(await counter('wharf_memory_trims_total')).toBe(trims);
  });
});
