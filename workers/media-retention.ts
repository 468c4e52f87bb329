/**
 * Deletes stored media nobody has sent again for the retention period (WHARF_MEDIA_RETENTION_DAYS), and
 * the record of uploads to Meta too old to be reused (Meta keeps an upload 30 days).
 */
import type { Logger } from '../lib/logger.js';
import type { Store } from '../lib/store/store.js';

/** How often the retention sweep runs. */
const SWEEP_MS = 60 * 60 * 1000;

/** Starts the hourly sweep (the first one a minute after start); returns a stop function. */
export function startMediaRetention(store: Store, days: number, log: Logger): () => void {
  const sweep = async (): Promise<void> => {
    try {
      const n = await store.media.prune(days);
      if (n) log.info({ deleted: n, days }, 'deleted stored media past its retention');
      const uploads = await store.outboundMedia.pruneUploads();
      if (uploads) log.debug({ forgotten: uploads }, 'forgot uploads to Meta too old to reuse');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'media retention sweep failed; it runs again in an hour');
    }
  };
  const first = setTimeout(() => void sweep(), 60_000);
  const every = setInterval(() => void sweep(), SWEEP_MS);
  first.unref();
  every.unref();
  return () => {
    clearTimeout(first);
    clearInterval(every);
  };
}
