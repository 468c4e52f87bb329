/**
 * Activities behind `waitForChannelSignal`, run on Wharf's own task queue on behalf of an operator's
 * workflow: they find the channel of a space and register or withdraw the waiter there.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { FAILURE } from '../lib/errors.js';
import { channelWorkflowId } from '../lib/workflow-ids.js';
import type { Store } from '../lib/store/store.js';
import { addWaiter, cancelWaiter, type AddWaiterInput, type HandedOffMessage } from '../workflows/channel-messages.js';

/** Builds the activities. */
export function createSignalActivities({ store, client }: { store: Store; client: Client }) {
  const channelOf = async (space: string): Promise<string> => {
    const s = await store.spaces.get(space);
    if (!s?.channelId) {
      throw ApplicationFailure.create({
        type: FAILURE.unknownSpace,
        message: s ? `Space "${space}" has no channel bound to it.` : `There is no space "${space}".`,
        nonRetryable: true,
      });
    }
    return s.channelId;
  };
  return {
    /** Registers a waiting workflow with the channel of `space`. */
    async registerWaiter(input: AddWaiterInput & { space: string }): Promise<{ channelId: string }> {
      const channelId = await channelOf(input.space);
      const { space: _space, ...waiter } = input;
      await client.workflow.getHandle(channelWorkflowId(channelId)).executeUpdate(addWaiter, { args: [waiter] });
      return { channelId };
    },
    /** Withdraws a waiter; returns a message it had already been sent, if any. */
    async withdrawWaiter({
      channelId,
      waiterId,
    }: {
      channelId: string;
      waiterId: string;
    }): Promise<{ message: HandedOffMessage | null }> {
      try {
        return await client.workflow
          .getHandle(channelWorkflowId(channelId))
          .executeUpdate(cancelWaiter, { args: [{ waiterId }] });
      } catch (err) {
        // The channel was deleted while we waited: there is nothing to withdraw and nothing was sent to us.
        if (err instanceof WorkflowNotFoundError) return { message: null };
        throw err;
      }
    },
  };
}

/** The activities' type, for `proxyActivities`. */
export type SignalActivities = ReturnType<typeof createSignalActivities>;
