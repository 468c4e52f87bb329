/**
 * Compiling a policy text off the event loop. The cedar-wasm calls behind a compile take seconds for a large
 * text (1 MB: ~4.4 s, and the service used to compile twice per save), and on the main thread that stalled
 * everything — webhooks, the worker, `/healthz` (11 s). Here they run in a short-lived worker thread with its
 * own cedar-wasm instance; only the cheap part ({@link compileFacts}) and the engine's preparse run here.
 *
 * The worker runs {@link gatherCedarFacts} sent as source text, so the same code runs from TypeScript sources
 * (tests) and from dist/ (production) without a loader in the worker.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { compileFacts, gatherCedarFacts, type CedarFacts, type Compiled } from './engine.js';
import { POLICY_SCHEMA } from './schema.js';

const cedarPath = createRequire(import.meta.url).resolve('@cedar-policy/cedar-wasm/nodejs');

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const gather = ${gatherCedarFacts.toString()};
parentPort.postMessage(gather(require(workerData.cedarPath), workerData.schema, workerData.text));
`;

/** Compiles `text` with the cedar-wasm work on a worker thread; resolves like the engine's own compile. */
export function compileOffThread(text: string): Promise<Compiled> {
  return new Promise<Compiled>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { cedarPath, schema: POLICY_SCHEMA, text } });
    worker.once('message', (facts: CedarFacts) => {
      try {
        resolve(compileFacts(text, facts));
      } catch (err) {
        reject(err);
      }
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) =>
      reject(new Error(`the policy compiler thread exited with code ${code} before answering`)),
    );
  });
}
