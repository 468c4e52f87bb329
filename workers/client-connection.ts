/**
 * The Temporal client's connection, closable while requests may still be retrying. The SDK retries a failed
 * gRPC call from a timer; a retry that fires after the connection was closed throws "Channel has been shut
 * down" from that timer — uncaught, and it took down a process that was shutting down under a webhook flood.
 * Here no retry starts once closing has begun, and `close()` waits for retries already scheduled (at most
 * the SDK's longest back-off, about 6 s) before it closes the channel.
 */
import {
  Connection,
  defaultGrpcRetryOptions,
  makeGrpcRetryInterceptor,
  type ConnectionOptions,
} from '@temporalio/client';

/** A connection and its safe close. */
export interface ClosableConnection {
  connection: Connection;
  /** Refuses further retries, waits for scheduled ones to have run, then closes. */
  close(): Promise<void>;
}

/** Connects to Temporal at `address` with the SDK's retry policy, made safe to close. */
export async function connectClient(options: ConnectionOptions): Promise<ClosableConnection> {
  const defaults = defaultGrpcRetryOptions();
  let closing = false;
  let lastRetryDueAt = 0;
  const connection = await Connection.connect({
    ...options,
    interceptors: [
      makeGrpcRetryInterceptor({
        retryableDecider: (attempt, status) => !closing && defaults.retryableDecider(attempt, status),
        delayFunction: (attempt, status) => {
          const ms = defaults.delayFunction(attempt, status);
          lastRetryDueAt = Math.max(lastRetryDueAt, Date.now() + ms);
          return ms;
        },
      }),
    ],
  });
  return {
    connection,
    async close() {
      closing = true;
      const wait = lastRetryDueAt - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait + 50));
      await connection.close();
    },
  };
}
