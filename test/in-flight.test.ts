/**
 * The worker's record of running activities (workers/in-flight.ts): what a shutdown that does not finish
 * names as still holding it.
 */
import type { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { trackActivities } from '../workers/in-flight.js';

/** The parts of an activity context the tracker reads, with a cancel of our own. */
function contextOf(activityType: string, workflowId: string): { ctx: Context; cancel(reason: string): void } {
  let cancel: (err: unknown) => void = () => undefined;
  const cancelled = new Promise<never>((_, reject) => (cancel = reject));
  cancelled.catch(() => undefined);
  const ctx = {
    info: { activityType, workflowExecution: { workflowId, runId: 'r' } },
    cancelled,
  } as unknown as Context;
  return { ctx, cancel: (reason) => cancel(new CancelledFailure(reason)) };
}

describe('in-flight activities', () => {
  it('lists what runs, longest first, says which were cancelled and why, and forgets each once it returns', async () => {
    const tracked = trackActivities();
    const session = contextOf('runSession', 'channel-ch_1');
    const send = contextOf('deliverReplies', 'chat-ch_1-+15550001111');
    let endSession: () => void = () => undefined;
    const running = tracked.interceptor(session.ctx).inbound!.execute!(
      { args: [], headers: {} },
      () => new Promise((r) => (endSession = () => r('ended'))),
    );
    await new Promise((r) => setTimeout(r, 5));
    let endSend: () => void = () => undefined;
    const sending = tracked.interceptor(send.ctx).inbound!.execute!(
      { args: [], headers: {} },
      () => new Promise((r) => (endSend = () => r('sent'))),
    );
    session.cancel('WORKER_SHUTDOWN');
    await new Promise((r) => setTimeout(r, 0));

    const list = tracked.list();
    expect(list.map((a) => a.type)).toEqual(['runSession', 'deliverReplies']);
    expect(list[0]).toMatchObject({
      workflowId: 'channel-ch_1',
      cancelled: expect.stringMatching(/^WORKER_SHUTDOWN \d+ ms ago$/),
    });
    expect(list[1].cancelled).toBeUndefined();
    expect(list[0].runningMs).toBeGreaterThanOrEqual(list[1].runningMs);

    endSend();
    await expect(sending).resolves.toBe('sent');
    expect(tracked.list().map((a) => a.type)).toEqual(['runSession']);
    endSession();
    await expect(running).resolves.toBe('ended');
    expect(tracked.list()).toEqual([]);
  });

  it('forgets an activity that failed', async () => {
    const tracked = trackActivities();
    const { ctx } = contextOf('admitInbound', 'chat-x');
    await expect(
      tracked.interceptor(ctx).inbound!.execute!({ args: [], headers: {} }, () =>
        Promise.reject(new Error('store down')),
      ),
    ).rejects.toThrow('store down');
    expect(tracked.list()).toEqual([]);
  });
});
