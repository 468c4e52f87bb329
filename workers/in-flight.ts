/**
 * Which activities this process is running, for a shutdown that waits on them: the worker's status says
 * only how many are in flight; an operator (and a test) whose shutdown does not finish needs to know which
 * ones hold it, for how long, and whether they were told to stop.
 */
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

interface Running {
  type: string;
  workflowId: string;
  since: number;
  cancelled?: { at: number; reason: string };
}

/** A summary of one running activity, as logged. */
export interface InFlightActivity {
  type: string;
  workflowId: string;
  runningMs: number;
  /** Set once Temporal (or this worker's shutdown) cancelled it: the reason and how long ago. */
  cancelled?: string;
}

/** Tracks the activities a worker runs: pass `interceptor` in the worker's `interceptors.activity`. */
export function trackActivities() {
  const running = new Map<number, Running>();
  let next = 0;
  const interceptor: ActivityInterceptorsFactory = (ctx: Context) => ({
    inbound: {
      async execute(input, call) {
        const id = next++;
        const entry: Running = {
          type: ctx.info.activityType,
          workflowId: ctx.info.workflowExecution?.workflowId ?? '',
          since: Date.now(),
        };
        running.set(id, entry);
        ctx.cancelled.catch((err: unknown) => {
          entry.cancelled = { at: Date.now(), reason: err instanceof Error ? err.message : String(err) };
        });
        try {
          return await call(input);
        } finally {
          running.delete(id);
        }
      },
    },
  });
  return {
    interceptor,
    /** The activities running now, longest first. */
    list(): InFlightActivity[] {
      const now = Date.now();
      return [...running.values()]
        .sort((a, b) => a.since - b.since)
        .map((r) => ({
          type: r.type,
          workflowId: r.workflowId,
          runningMs: now - r.since,
          ...(r.cancelled ? { cancelled: `${r.cancelled.reason} ${now - r.cancelled.at} ms ago` } : {}),
        }));
    },
  };
}
