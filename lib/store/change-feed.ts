/**
 * In-process change notifications: "channel X changed" after the store wrote its read model, its message
 * log, its diagnostics or its pending QR. The console's server-sent events listen here instead of polling.
 *
 * In-process is enough because Wharf runs the worker (which writes the read model through an activity)
 * and the API in one process; a listener that throws never disturbs the writer.
 */

/** What changed about a channel. */
export type ChangeKind = 'channel' | 'messages' | 'link' | 'diagnostics';

/** One change notification. */
export interface ChannelChange {
  channelId: string;
  what: ChangeKind;
}

/** Subscribe to and publish channel changes. */
export interface ChangeFeed {
  /** Adds a listener; returns the function that removes it. */
  subscribe(fn: (change: ChannelChange) => void): () => void;
  /** Tells every listener (synchronously, errors swallowed). */
  emit(change: ChannelChange): void;
}

/** Creates an empty feed. */
export function createChangeFeed(): ChangeFeed {
  const listeners = new Set<(change: ChannelChange) => void>();
  return {
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    emit(change) {
      for (const fn of listeners) {
        try {
          fn(change);
        } catch {
          // A listener's bug must never fail the store write that triggered it.
        }
      }
    },
  };
}
