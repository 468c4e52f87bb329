/**
 * Personal sessions move off a dead node within seconds. A session is one long-running activity attempt on
 * one node; when that node dies (`kill -9`, power cut), Temporal notices only when the attempt's heartbeat
 * timeout (30 s) runs out, and the account is offline all that time. On a shared PostgreSQL store the nodes
 * already note that they are alive (`wharf_nodes`): each attempt records its node here, and every node
 * looks for attempts whose node stopped noting it, tells the channel the session is down, and fails that
 * attempt so Temporal starts the next one at once on a live node — with the same auth state from the store.
 *
 * The old attempt cannot come back to life alongside the new one: its process is gone, and a holder that
 * was only stalled is fenced by the auth state's ownership token (lib/store/auth-state.ts) and by its own
 * heartbeat, which Temporal answers with a cancellation once the attempt was failed.
 */
import { FAILURE } from '../lib/errors.js';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Logger } from '../lib/logger.js';
import type { SessionHolder } from '../lib/store/session-holders.js';
import { NODE_BEAT_MS, NODE_DEAD_MS, type Store } from '../lib/store/store.js';
import { sessionUpdate } from '../workflows/channel-messages.js';

/** Type name of the failure a live node gives the session attempt of a dead one. */
export const SESSION_HOLDER_DEAD = FAILURE.sessionHolderDead;

/** One attempt's record: which node runs it, and how Temporal names it. */

const STARTED = proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

/**
 * Wraps `runSession` so each attempt records its node while it runs (a no-op on a store of one process).
 * The record only speeds failover up: if it cannot be written, the heartbeat timeout still applies.
 */
export function recordSessionHolder<I extends { channelId: string }, R>(
  run: (input: I) => Promise<R>,
  store: Store,
  log: Logger,
): (input: I) => Promise<R> {
  if (!store.shared) return run;
  return async (input: I): Promise<R> => {
    const { workflowExecution, activityId, attempt } = Context.current().info;
    if (!workflowExecution) return run(input); // (not started by a workflow: nothing to fail over)
    const holder = {
      channelId: input.channelId,
      nodeId: store.node.id,
      workflowId: workflowExecution.workflowId,
      runId: workflowExecution.runId,
      activityId,
      attempt,
    };
    try {
      // A node that has not beaten yet would look dead to the others.
      await store.node.beat();
      await store.sessionHolders.record(holder);
    } catch (err) {
      log.warn({ err, channelId: input.channelId }, 'could not record the node holding the session');
    }
    try {
      return await run(input);
    } finally {
      await store.sessionHolders.release(holder).catch(() => undefined);
    }
  };
}

/** The reaper of one node: started with the worker, stopped at shutdown. */
export interface SessionReaper {
  /** One pass (tests and the timer call it); resolves with the channels whose sessions it moved. */
  reapOnce(): Promise<string[]>;
  stop(): void;
}

/**
 * Every `intervalMs`, takes the records of session attempts whose node has not noted it is alive for
 * NODE_DEAD_MS (the delete that returns them makes exactly one node act on each), and fails each attempt
 * that is still the one Temporal runs. Does nothing on a store of one process.
 */
export function startSessionReaper(deps: {
  store: Store;
  client: Client;
  log: Logger;
  intervalMs?: number;
}): SessionReaper {
  const { store, client } = deps;
  const log = deps.log.child({ component: 'session-failover' });

  const failOver = async (h: SessionHolder): Promise<boolean> => {
    const handle = client.workflow.getHandle(h.workflowId, h.runId);
    const pending = (await handle.describe()).raw.pendingActivities?.find((a) => a.activityId === h.activityId);
    // Already retried (a newer attempt runs or waits for its retry), finished, or never started: leave it.
    if (!pending || pending.attempt !== h.attempt || pending.state !== STARTED) return false;
    // Sends stop going to the dead node's queue; the next attempt reports `connected` with its own.
    await handle.signal(sessionUpdate, {
      status: 'disconnected',
      reason: 'The node holding the WhatsApp session stopped responding; the session restarts on another node.',
    });
    await client.activity.fail(
      { workflowId: h.workflowId, runId: h.runId, activityId: h.activityId },
      ApplicationFailure.create({
        type: SESSION_HOLDER_DEAD,
        message: `node ${h.nodeId} holding the session of channel ${h.channelId} stopped noting that it is alive`,
        // The retry policy's backoff is for a session that keeps failing; this one only needs a live node.
        nextRetryDelay: '100 milliseconds',
      }),
    );
    return true;
  };

  const reapOnce = async (): Promise<string[]> => {
    if (!store.shared) return [];
    const dead = await store.sessionHolders.takeDead(store.node.id, NODE_DEAD_MS);
    const moved: string[] = [];
    for (const h of dead) {
      const ids = { channelId: h.channelId, workflowId: h.workflowId, deadNode: h.nodeId, attempt: h.attempt };
      try {
        if (await failOver(h)) {
          moved.push(h.channelId);
          log.warn(ids, 'the node holding a WhatsApp session is dead; the session restarts on a live node');
        }
      } catch (err) {
        // (The workflow may be gone, or the attempt ended meanwhile: the heartbeat timeout covers the rest.)
        log.info({ ...ids, err }, 'could not move a session off a dead node');
      }
    }
    return moved;
  };

  if (!store.shared) return { reapOnce, stop: () => undefined };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    reapOnce()
      .catch((err: unknown) => log.debug({ err }, 'session reaper pass failed'))
      .finally(() => (busy = false));
  }, deps.intervalMs ?? NODE_BEAT_MS);
  timer.unref();
  return { reapOnce, stop: () => clearInterval(timer) };
}
