/**
 * Gives the C allocator's free pages back to the system. glibc's malloc keeps what a burst freed inside its
 * arenas (only an arena's top is trimmed on free), so after a burst of new chats the process stayed ~100 MB
 * above what it holds (docs/performance.md, session 10). `malloc_trim(0)` walks the arenas and hands every
 * whole free page back; it runs on a thread-pool thread (koffi's async call), so the walk never holds the
 * event loop. Where the C library has no `malloc_trim` (musl, macOS) this does nothing and says so once.
 */
import type { Logger } from '../lib/logger.js';
import { memoryTrimmedBytes, memoryTrims } from '../lib/metrics.js';

/** A started trim loop. */
export interface MemoryTrim {
  stop(): void;
  /** Runs one trim now; resolves with the resident memory it gave back (bytes; 0 when unavailable). */
  trimNow(): Promise<number>;
}

type TrimFn = { async(pad: number, cb: (err: unknown, released: number) => void): void };

async function loadMallocTrim(): Promise<TrimFn | string> {
  if (process.platform !== 'linux') return `not on Linux (${process.platform})`;
  try {
    const koffi = (await import('koffi')).default;
    return koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as TrimFn;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Starts trimming every `everyMs` (0: never). The first trim runs one interval after start, when start-up's
 * garbage is freed.
 */
export function startMemoryTrim(everyMs: number, log: Logger): MemoryTrim {
  let stopped = false;
  let running: Promise<number> | null = null;
  const fn = everyMs > 0 ? loadMallocTrim() : null;
  const trimNow = async (): Promise<number> => {
    const trim = await fn;
    if (!trim || typeof trim === 'string' || stopped) return 0;
    running ??= new Promise<number>((resolve) => {
      const before = process.memoryUsage.rss();
      trim.async(0, (err) => {
        const released = Math.max(0, before - process.memoryUsage.rss());
        if (err) log.warn({ err: String(err) }, 'malloc_trim failed');
        else {
          memoryTrims.inc();
          memoryTrimmedBytes.inc(released);
        }
        resolve(released);
      });
    }).finally(() => (running = null));
    return running;
  };
  void fn?.then((trim) => {
    if (typeof trim === 'string') log.info({ reason: trim }, 'free memory is not given back to the system here');
  });
  const every = everyMs > 0 ? setInterval(() => void trimNow(), everyMs) : null;
  every?.unref();
  return {
    stop: () => {
      stopped = true;
      if (every) clearInterval(every);
    },
    trimNow,
  };
}
