/**
 * `waitForChannelSignal`: lets any workflow of the operator's wait for the next message a paired phone sends
 * to a channel in `signal` mode — a 2FA code, an approval. Built on Temporal messages, not polling: the
 * waiter is registered with the channel workflow (through an activity on Wharf's task queue), and the
 * channel signals the waiting workflow when a message arrives. Oldest waiter first.
 *
 * @example
 * ```ts
 * import { waitForChannelSignal } from 'wharf/workflow';
 *
 * export async function loginWithTwoFactor(user: string): Promise<string> {
 *   await startLogin(user); // an activity of yours
 *   const r = await waitForChannelSignal({ space: 'Codes', timeout: '5 minutes' });
 *   if (!r.ok) return `no code arrived (${r.reason})`;
 *   return finishLogin(user, r.message.text.trim());
 * }
 * ```
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  proxyActivities,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { SignalActivities } from '../activities/signal-activities.js';
import { FAILURE, FINAL_FAILURE_TYPES } from '../lib/errors.js';
import { channelSignal, type HandedOffMessage } from './channel-messages.js';
import { workflowNow } from './clock.js';

export { channelSignal, type HandedOffMessage };

/** Options of {@link waitForChannelSignal}. */
export interface WaitForChannelSignalOptions {
  /** The space whose channel the message must arrive on. */
  space: string;
  /** How long to wait, e.g. `'5 minutes'` or milliseconds. */
  timeout: Duration;
  /** Only a message from this sender address (E.164, e.g. `+15551234567`). */
  from?: string;
  /** Wharf's task queue (`WHARF_TASK_QUEUE`). @default 'wharf' */
  wharfTaskQueue?: string;
}

/** The result: the message, or why there is none. */
export type WaitForChannelSignalResult =
  { ok: true; message: HandedOffMessage } | { ok: false; reason: 'timeout' | 'unknown_space'; detail?: string };

// One signal handler per workflow serves every concurrent wait, keyed by waiter id. Kept on globalThis,
// which the SDK isolates per workflow execution.
interface WaitRegistry {
  arrived: Map<string, HandedOffMessage>;
  installed: boolean;
}
function registry(): WaitRegistry {
  const g = globalThis as { __wharfSignalWaits?: WaitRegistry };
  g.__wharfSignalWaits ??= { arrived: new Map(), installed: false };
  return g.__wharfSignalWaits;
}

function toMs(d: Duration): number {
  if (typeof d === 'number') return d;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|seconds?|m|minutes?|h|hours?)?\s*$/i.exec(String(d));
  if (!m) throw ApplicationFailure.nonRetryable(`Cannot read the duration "${String(d)}".`, FAILURE.invalidArgument);
  const n = Number(m[1]);
  const unit = (m[2] ?? 'ms').toLowerCase();
  if (unit.startsWith('h')) return n * 3_600_000;
  if (unit === 'm' || unit.startsWith('min')) return n * 60_000;
  if (unit === 's' || unit.startsWith('sec')) return n * 1000;
  return n;
}

/** Waits for the next message handed off on `space` (see the module doc for an example). */
export async function waitForChannelSignal(opts: WaitForChannelSignalOptions): Promise<WaitForChannelSignalResult> {
  const reg = registry();
  const arrived = reg.arrived;
  if (!reg.installed) {
    reg.installed = true;
    setHandler(channelSignal, ({ waiterId, message }) => {
      arrived.set(waiterId, message);
    });
  }
  const acts = proxyActivities<SignalActivities>({
    taskQueue: opts.wharfTaskQueue ?? 'wharf',
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 10, nonRetryableErrorTypes: [...FINAL_FAILURE_TYPES] },
  });
  const timeoutMs = toMs(opts.timeout);
  const waiterId = uuid4();
  let channelId: string;
  try {
    ({ channelId } = await acts.registerWaiter({
      space: opts.space,
      waiterId,
      workflowId: workflowInfo().workflowId,
      from: opts.from,
      expiresAt: new Date(workflowNow() + timeoutMs).toISOString(),
    }));
  } catch (err) {
    if (
      err instanceof ActivityFailure &&
      err.cause instanceof ApplicationFailure &&
      err.cause.type === FAILURE.unknownSpace
    ) {
      return { ok: false, reason: 'unknown_space', detail: err.cause.message };
    }
    throw err;
  }
  const got = await condition(() => arrived.has(waiterId), timeoutMs);
  if (!got) {
    // A message may have been sent to us at the very moment we gave up: withdrawing tells us.
    const { message } = await acts.withdrawWaiter({ channelId, waiterId });
    if (message) arrived.set(waiterId, message);
  }
  const message = arrived.get(waiterId);
  arrived.delete(waiterId);
  return message ? { ok: true, message } : { ok: false, reason: 'timeout' };
}
