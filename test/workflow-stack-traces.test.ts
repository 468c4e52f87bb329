/**
 * The workflow threads run without the Temporal SDK's promise stack-trace hook unless the operator asks for
 * it (workers/workflow-threads.ts): the Web UI's Stack Trace tab then gets the SDK's own answer for a worker
 * without stack traces, and with `WHARF_WORKFLOW_STACK_TRACES=on` it gets the stack as before. Both on the
 * real worker and the run's Temporal dev server, through the query the Web UI sends.
 */
import workerThreads from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { channelWorkflowId } from '../lib/workflow-ids.js';
import { withWorkflowThreads } from '../workers/workflow-threads.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf | undefined;
afterEach(async () => {
  await w?.close({ purge: true });
  w = undefined;
});

/** A new channel's running workflow (its id) and its answer to the Web UI's stack-trace query. */
async function stackTrace(
  wharf: TestWharf,
): Promise<{ id: string; answer: { ok: true; stack: string } | { ok: false; error: string } }> {
  const created = await wharf.api('POST', '/api/channels', { provider: 'whatsapp_cloud', agent: 'echo' });
  expect(created.status).toBe(201);
  const id = created.data.id as string;
  const handle = wharf.client.workflow.getHandle(channelWorkflowId(id));
  try {
    return { id, answer: { ok: true, stack: await handle.query<string>('__stack_trace') } };
  } catch (err) {
    return { id, answer: { ok: false, error: (err as Error).message } };
  }
}

describe('workflow stack traces', () => {
  it('are off by default: the workflow runs, and the Stack Trace query says they are not enabled', async () => {
    w = await startWharf();
    expect(w.config.temporal.workflowStackTraces).toBe(false);
    const { id, answer } = await stackTrace(w);
    expect(answer).toEqual({ ok: false, error: expect.stringContaining('stack traces are not enabled') });
    // An update is the thread's first use of Node's own promise hooks (the SDK's AsyncLocalStorage): those
    // still work, so it is taken on its first workflow task.
    const off = await w.api('POST', `/api/channels/${id}/disconnect`, {});
    expect(off.status).toBe(200);
    expect(off.data.status).toBe('disconnected');
  });

  it('are there with WHARF_WORKFLOW_STACK_TRACES=on', async () => {
    w = await startWharf({ env: { WHARF_WORKFLOW_STACK_TRACES: 'on' } });
    const { answer } = await stackTrace(w);
    expect(answer.ok).toBe(true);
    expect(answer.ok && answer.stack).toContain('workflows/channel-workflow.ts');
  });

  it('leaves every other thread, and the Worker class, as they were', async () => {
    const original = workerThreads.Worker;
    const ran = await withWorkflowThreads(false, async () => {
      const code =
        'require("node:worker_threads").parentPort.postMessage(typeof require("node:v8").promiseHooks.createHook)';
      const t = new workerThreads.Worker(code, { eval: true });
      return new Promise<unknown>((resolve) => t.once('message', resolve));
    });
    expect(ran).toBe('function');
    expect(workerThreads.Worker).toBe(original);
  });
});
