/**
 * `GET /api/events`: server-sent events that tell the console when a channel changed (status, config,
 * pairing, the pending QR, the message log, diagnostics), so pages update without reloading or polling.
 * Each event names the channel and what changed; the page then reads what it shows through the usual API.
 *
 * At 1,000 messages a second the message log changes far more often than a page can redraw: changes are
 * coalesced per channel and kind and sent at most every COALESCE_MS.
 */
import { Router } from 'express';
import type { ChangeFeed, ChannelChange } from '../lib/store/change-feed.js';
import type { AuthVia } from './session-auth.js';

const COALESCE_MS = 250;
// Proxies close idle connections after about a minute; a comment line every 20 s keeps the stream open.
const KEEPALIVE_MS = 20_000;

/** Builds the router mounted at `/api/events`. */
export function eventsRouter({ changes }: { changes: ChangeFeed }): Router {
  const r = Router();

  r.get('/', (req, res) => {
    const only = typeof req.query.channel === 'string' ? req.query.channel : null;
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.write('retry: 2000\n\n');

    const pending = new Map<string, ChannelChange>();
    let timer: NodeJS.Timeout | null = null;
    const flush = (): void => {
      timer = null;
      for (const change of pending.values()) res.write(`event: change\ndata: ${JSON.stringify(change)}\n\n`);
      pending.clear();
    };
    const unsubscribe = changes.subscribe((change) => {
      if (only && change.channelId !== only) return;
      pending.set(`${change.channelId}\u0000${change.what}`, change);
      timer ??= setTimeout(flush, COALESCE_MS);
    });
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    // A console session's stream ends with the session; the page then finds itself logged out.
    const auth = res.locals.auth as AuthVia | undefined;
    const expiry =
      auth?.via === 'session' ? setTimeout(() => res.end(), Math.max(0, auth.expiresAt - Date.now())) : null;

    res.on('close', () => {
      unsubscribe();
      clearInterval(keepalive);
      if (timer) clearTimeout(timer);
      if (expiry) clearTimeout(expiry);
    });
  });

  return r;
}
