/**
 * Says so when one operation holds the embedded store for long. SQLite runs one thing at a time: a
 * transaction whose callback never returns (a bug like the one of session 15, where a policy decision inside
 * a transaction waited for a reload queued behind it) stops every store call, and with them every chat.
 * `/healthz` then answers 503 (the store does not answer within 5 s); this names the cause in the log, once
 * when it starts, every minute while it lasts and once when it ends, and keeps `wharf_store_held_seconds`.
 */
import type { Logger } from '../lib/logger.js';
import { storeHeldSeconds } from '../lib/metrics.js';
import type { Db } from '../lib/store/db.js';

/** When the watchdog looks, how long a hold is "long", and how often a long one is repeated in the log. */
export interface StoreWatchdogTiming {
  everyMs: number;
  warnAfterMs: number;
  repeatMs: number;
}

const TIMING: StoreWatchdogTiming = { everyMs: 5000, warnAfterMs: 10_000, repeatMs: 60_000 };

/** Starts watching `db` (a no-op for engines that do not say how long they are held); returns a stop function. */
export function startStoreWatchdog(db: Db, log: Logger, timing: StoreWatchdogTiming = TIMING): () => void {
  const heldMs = db.heldMs?.bind(db);
  if (!heldMs) return () => undefined;
  let longest = 0; // of the hold being reported; 0 when none is
  let lastWarned = 0;
  const check = (): void => {
    const held = heldMs();
    storeHeldSeconds.set(Math.round(held) / 1000);
    if (held >= timing.warnAfterMs) {
      if (!longest || held - lastWarned >= timing.repeatMs) {
        log.warn(
          { heldMs: Math.round(held) },
          `the embedded store has been held by one operation for ${Math.round(held / 1000)} s; every other store call, and every chat, waits behind it`,
        );
        lastWarned = held;
      }
      longest = Math.max(longest, held);
    } else if (longest) {
      log.info({ heldMs: Math.round(longest) }, 'the embedded store is free again');
      longest = 0;
      lastWarned = 0;
    }
  };
  const every = setInterval(check, timing.everyMs);
  every.unref();
  return () => clearInterval(every);
}
