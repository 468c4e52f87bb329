/**
 * Graceful stop of the API. Closing the listening socket is not enough: clients on kept-alive connections
 * (Meta, a flood) keep sending requests, and a request still talking to Temporal when the process closes its
 * Temporal connection failed in ways nothing caught. So when draining starts, new requests are answered 503
 * `unavailable` with `Connection: close` (Meta retries a 503 later), requests in flight may finish, and
 * those still running at the deadline are answered 503 as well.
 */
import type { RequestHandler, Response } from 'express';
import { WharfError } from '../lib/errors.js';

const SHUTTING_DOWN = 'Wharf is shutting down; send the request again in a moment.';

/** Creates the drain: mount `middleware` first; call `drain()` when the process is stopping. */
export function createDrain() {
  let draining = false;
  const inFlight = new Set<Response>();
  let idle: (() => void) | null = null;

  const middleware: RequestHandler = (_req, res, next) => {
    if (draining) {
      res.setHeader('Connection', 'close');
      return next(new WharfError('unavailable', SHUTTING_DOWN));
    }
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      if (inFlight.size === 0) idle?.();
    });
    next();
  };

  return {
    middleware,
    /** Requests being handled right now. */
    get inFlight(): number {
      return inFlight.size;
    },
    /**
     * Stops taking requests (503 from now on) and waits until those in flight are answered, at most
     * `deadlineMs`; answers whatever is left 503. Resolves with how many had to be cut off.
     */
    async drain(deadlineMs = 10_000): Promise<number> {
      draining = true;
      if (inFlight.size) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((r) => (idle = r)),
          new Promise<void>((r) => (timer = setTimeout(r, deadlineMs))),
        ]);
        clearTimeout(timer);
      }
      const cut = [...inFlight];
      for (const res of cut) {
        if (res.headersSent) continue;
        res.setHeader('Connection', 'close');
        res.status(503).json({ error: { code: 'unavailable', message: SHUTTING_DOWN, details: [] } });
      }
      return cut.length;
    },
  };
}
