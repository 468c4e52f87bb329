/**
 * The lifetime of one `runSession` attempt: how it stops (for good, or cancelled by Temporal), pauses that
 * end early when it stops, and the heartbeat that carries its progress. The layers above ask `stopping()`
 * before each step and call `stop()` when they find the session is no longer wanted.
 */
import { CancelledFailure } from '@temporalio/common';
import type { Context } from '@temporalio/activity';
import type { Logger } from '../../lib/logger.js';
import type { RunSessionResult } from './session-registry.js';

/** The lifetime of a session attempt (see {@link createSessionLifetime}). */
export type SessionLifetime = ReturnType<typeof createSessionLifetime>;

/** Builds the lifetime of the attempt `ctx` runs; heartbeats every `heartbeatMs` while `gate` allows. */
export function createSessionLifetime(
  ctx: Context,
  slog: Logger,
  { heartbeatMs, gate }: { heartbeatMs: number; gate?: () => boolean },
) {
  // (An object, so TypeScript does not narrow what the callbacks change.)
  const st: { cancelled: CancelledFailure | null; result: RunSessionResult | null } = { cancelled: null, result: null };
  let wake: () => void = () => undefined;
  let woken = new Promise<void>((r) => (wake = r));
  const stopping = (): boolean => st.cancelled !== null || st.result !== null;
  const interrupt = (): void => {
    wake();
    woken = new Promise<void>((r) => (wake = r));
  };
  let endSocket: () => void = () => undefined;
  ctx.cancelled.catch((err: unknown) => {
    st.cancelled = err instanceof CancelledFailure ? err : new CancelledFailure(String(err));
    slog.info({ reason: st.cancelled.message }, 'session activity cancelled; closing the socket');
    endSocket();
    interrupt();
  });

  // What the heartbeat reports: where the session is and how often it reconnected.
  const progress = { phase: 'starting', reconnects: 0 };
  const beat = (): void => {
    if (gate && !gate()) return;
    ctx.heartbeat({ ...progress });
  };
  beat();
  const heartbeat = setInterval(beat, heartbeatMs);

  return {
    progress,
    /** True once the session stopped for good or was cancelled: no new socket, no new wait. */
    stopping,
    /** Stops the session for good with `result` (the first reason wins): closes the socket, ends waits. */
    stop(result: RunSessionResult): void {
      if (stopping()) return;
      st.result = result;
      endSocket();
      interrupt();
    },
    /** Records how the session ended when the reconnect loop itself decided it (its socket is closed already). */
    settle(result: RunSessionResult): void {
      st.result = result;
    },
    /** Waits `ms`, or less when the session is stopping. */
    async pause(ms: number): Promise<void> {
      if (stopping()) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, ms))), woken]);
      clearTimeout(timer);
    },
    /** Sets how the current socket is ended when the session stops (a no-op between sockets). */
    onEnd(fn: () => void): void {
      endSocket = fn;
    },
    /** Ends the current socket (if any). */
    endSocket(): void {
      endSocket();
    },
    /** The cancellation Temporal delivered, if any. */
    get cancelled(): CancelledFailure | null {
      return st.cancelled;
    },
    /** How the session ended, if it did. */
    get result(): RunSessionResult | null {
      return st.result;
    },
    /** Stops the heartbeat (the attempt is returning). */
    close(): void {
      clearInterval(heartbeat);
    },
  };
}
