/**
 * Webhook calls refused before anything else was looked at — a bad or missing `X-Hub-Signature-256`, a
 * verification with the wrong `hub.verify_token` — counted in memory instead of one store write and one log
 * line each. Anyone on the internet can make these requests: measured before this counter, 2,000 of them
 * wrote 2,000 warning lines and 2,000 store rows. Now:
 *
 * - `diagnostics.badSignatureEvents` / `verificationsRefused` still count every one (stored count plus what
 *   this process has not written yet);
 * - the counts are written as one summary per channel every {@link FLUSH_MS};
 * - the warning is logged at most once per channel and kind per {@link LOG_EVERY_MS}, and the next line says
 *   how many were left out in between.
 */
import type { Logger } from '../lib/logger.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelDiagnostics } from '../lib/types.js';

/** A kind of refused webhook call. */
export type Refusal = 'bad_signature' | 'verification_refused';

/** How often pending counts are written to the store. */
export const FLUSH_MS = 5_000;
/** At most one warning per channel and kind in this interval. */
export const LOG_EVERY_MS = 60_000;

const MESSAGES: Record<Refusal, string> = {
  bad_signature: 'webhook event rejected: missing or bad X-Hub-Signature-256 (is app_secret right?)',
  verification_refused: 'webhook verification refused: the verify_token does not match the one saved in Wharf',
};

interface Tally {
  /** Counted, not yet written to the store. */
  pending: number;
  /** Counted since the last warning line, not logged. */
  suppressed: number;
  /** When the last warning line was written (0: never). */
  loggedAt: number;
}

/** Counts refused webhook calls; see the module comment. */
export function createRefusalCounter({
  store,
  log,
  flushMs = FLUSH_MS,
  logEveryMs = LOG_EVERY_MS,
}: {
  store: Store;
  log: Logger;
  flushMs?: number;
  logEveryMs?: number;
}) {
  const tallies = new Map<string, Tally>();
  const key = (channelId: string, kind: Refusal): string => `${kind}\u0001${channelId}`;
  const tallyOf = (channelId: string, kind: Refusal): Tally => {
    let t = tallies.get(key(channelId, kind));
    if (!t) tallies.set(key(channelId, kind), (t = { pending: 0, suppressed: 0, loggedAt: 0 }));
    return t;
  };

  const warn = (channelId: string, kind: Refusal, t: Tally, now: number): void => {
    log.warn(
      { channelId, ...(t.suppressed ? { suppressed: t.suppressed } : {}) },
      t.suppressed ? `${MESSAGES[kind]}; ${t.suppressed} more since the last line` : MESSAGES[kind],
    );
    t.loggedAt = now;
    t.suppressed = 0;
  };

  let flushing: Promise<void> | null = null;
  const flushOnce = async (): Promise<void> => {
    const now = Date.now();
    for (const [k, t] of tallies) {
      const [kind, channelId] = k.split('\u0001') as [Refusal, string];
      // The last refusals of a burst still get their line once the interval is over.
      if (t.suppressed && now - t.loggedAt >= logEveryMs) warn(channelId, kind, t, now);
      if (t.pending) {
        const n = t.pending;
        t.pending = 0;
        try {
          await store.diagnostics.record(channelId, kind, n);
        } catch (err) {
          t.pending += n; // kept for the next flush
          log.debug({ err, channelId, kind }, 'could not write the refused-request count; retried at the next flush');
        }
      }
      if (!t.pending && !t.suppressed && now - t.loggedAt >= logEveryMs) tallies.delete(k);
    }
  };
  const flush = (): Promise<void> => (flushing ??= flushOnce().finally(() => (flushing = null)));
  const timer = setInterval(() => void flush(), flushMs);
  timer.unref();

  return {
    /** Counts one refused call; logs a warning unless one was logged for this channel and kind recently. */
    note(channelId: string, kind: Refusal): void {
      const t = tallyOf(channelId, kind);
      t.pending++;
      const now = Date.now();
      if (now - t.loggedAt >= logEveryMs) warn(channelId, kind, t, now);
      else t.suppressed++;
    },
    /** `stored` plus what this process counted and has not written yet. */
    withPending(channelId: string, stored: ChannelDiagnostics): ChannelDiagnostics {
      const bad = tallies.get(key(channelId, 'bad_signature'))?.pending ?? 0;
      const refused = tallies.get(key(channelId, 'verification_refused'))?.pending ?? 0;
      return bad || refused
        ? {
            ...stored,
            badSignatureEvents: stored.badSignatureEvents + bad,
            verificationsRefused: stored.verificationsRefused + refused,
          }
        : stored;
    },
    /** Writes pending counts now (and any overdue summary lines). */
    flush,
    /** Stops the timer and writes what is pending; call on shutdown. */
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
    },
  };
}

/** The counter's type. */
export type RefusalCounter = ReturnType<typeof createRefusalCounter>;
