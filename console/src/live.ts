/**
 * Live updates: one EventSource on `/api/events` for the whole page; components subscribe to changes of
 * the channels they show and re-read them (see api/events.router.ts).
 */
import { useEffect, useRef } from 'preact/hooks';

/** What the server says changed (`channelId` `*`: anything may have changed, re-read). */
export interface Change {
  channelId: string;
  what: 'channel' | 'messages' | 'link' | 'diagnostics';
}

const listeners = new Set<(c: Change) => void>();
let source: EventSource | null = null;

/**
 * Opens the stream (after login). The browser reconnects by itself after a network blip; a stream the
 * server refuses (the session expired, or Wharf restarted and forgot it) stays closed, and `onClosed` runs
 * so the page can find out whether it is still logged in.
 */
export function connectLive(onClosed: () => void): void {
  if (source) return;
  source = new EventSource('/api/events');
  source.addEventListener('error', () => {
    if (source?.readyState !== EventSource.CLOSED) return;
    source = null;
    onClosed();
  });
  // After a reconnect, changes made while the stream was down were missed: every page re-reads once.
  let opened = false;
  source.addEventListener('open', () => {
    if (opened) for (const fn of listeners) fn({ channelId: '*', what: 'channel' });
    opened = true;
  });
  source.addEventListener('change', (e) => {
    const change = JSON.parse((e as MessageEvent<string>).data) as Change;
    for (const fn of listeners) fn(change);
  });
}

/** Closes the stream (on logout). */
export function disconnectLive(): void {
  source?.close();
  source = null;
}

/** Calls `fn` for every change the filter accepts, for as long as the component is mounted. */
export function useChanges(filter: (c: Change) => boolean, fn: (c: Change) => void): void {
  const latest = useRef({ filter, fn });
  latest.current = { filter, fn };
  useEffect(() => {
    const listener = (c: Change): void => {
      if (c.channelId === '*' || latest.current.filter(c)) latest.current.fn(c);
    };
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
}
