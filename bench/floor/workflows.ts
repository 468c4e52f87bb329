/**
 * The floor's workflow (issue #22): the least a per-chat Temporal workflow can do to answer WhatsApp messages.
 * Messages arrive by signal; all queued ones (up to 50) go to one local activity that posts an echo per
 * message; after ~1,000 messages the run continues as new with what is still queued. No store, no policy,
 * no idle timeout. Bench code, bundled with the SDK's bundler by bench/floor/server.ts.
 */
import { condition, continueAsNew, defineSignal, proxyLocalActivities, setHandler } from '@temporalio/workflow';

/** One inbound text, as the floor's webhook hands it over. */
export interface FloorMessage {
  id: string;
  from: string;
  text: string;
}

/** The floor's one activity. */
export interface FloorActivities {
  /** Posts one echo per message to the Graph API, in order. */
  echo(messages: FloorMessage[]): Promise<void>;
}

/** The signal each webhook message arrives with. */
export const floorMessage = defineSignal<[FloorMessage]>('floorMessage');

const { echo } = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });

/** Largest batch handed to one local activity (the 50). */
const BATCH = 50;
/** Messages a run answers before it continues as new (the issue's ~1,000). */
const PER_RUN = 1000;

/** One chat: echo every message, in batches, forever. */
export async function floorChat(queued: FloorMessage[] = []): Promise<void> {
  const queue = [...queued];
  setHandler(floorMessage, (m) => {
    queue.push(m);
  });
  let answered = 0;
  while (answered < PER_RUN) {
    await condition(() => queue.length > 0);
    const batch = queue.splice(0, BATCH);
    await echo(batch);
    answered += batch.length;
  }
  // Signals that arrived during the last activation are carried into the next run.
  await continueAsNew<typeof floorChat>(queue);
}
