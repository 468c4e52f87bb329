/**
 * The Temporal SDK's workflow threads, started without its promise stack-trace hook (issue #22).
 *
 * In every workflow thread the SDK (1.24, and its main branch today) installs a `v8.promiseHooks` init hook
 * that captures, source-maps and stores a stack trace for each promise a workflow makes, so that the Web
 * UI's *Stack Trace* tab can show where a running workflow waits. It has no option to turn it off. Wharf's
 * chat workflow makes ~23 promises per message (most inside the SDK: an update, a local activity, the wait
 * for the next message), and the hook cost ~0.9 ms of CPU per message at 100 msgs/s — about 8 % of the
 * whole message path, app and dev server together (docs/performance.md, session 17).
 *
 * So Wharf starts those threads through a few lines that take `v8.promiseHooks.createHook` away from the
 * SDK before it loads: the SDK then runs as it does on runtimes without promise hooks (Bun), a state it
 * supports — workflows behave the same, and the *Stack Trace* tab answers "Workflow stack traces are not
 * enabled on this worker". `WHARF_WORKFLOW_STACK_TRACES=on` keeps the SDK's default, for debugging a stuck
 * workflow. Nothing else changes: the threads load the SDK's own script, with the options it gave them.
 */
import workerThreads, { type WorkerOptions } from 'node:worker_threads';

/** The SDK's workflow thread script, as its `ThreadedVMWorkflowCreator` names it (`require.resolve`). */
const SDK_THREAD = /[\\/]@temporalio[\\/]worker[\\/]lib[\\/]workflow[\\/]workflow-worker-thread(\.js)?$/;

/**
 * The workflow thread's first lines (serialised into it, so self-contained): takes promise hooks away from
 * the SDK alone, then loads the SDK's thread script. Node's own `async_hooks` (the `AsyncLocalStorage` the
 * SDK's update handling uses) makes its promise hooks through the same `v8.promiseHooks.createHook`, so only
 * a call made straight from the SDK's `vm-shared.js` is refused — the SDK then runs as without promise hooks
 * and stays quiet about it; should the SDK move that call, its hook is installed as before (stack traces on).
 */
function threadMain(sdkThread: string, load: (id: string) => unknown): void {
  const v8 = load('node:v8') as typeof import('node:v8');
  const createHook = v8.promiseHooks.createHook;
  v8.promiseHooks.createHook = function (this: unknown, hooks: Parameters<typeof createHook>[0]) {
    const caller = (new Error().stack ?? '').split('\n')[2] ?? '';
    if (/[\\/]@temporalio[\\/]worker[\\/]lib[\\/]workflow[\\/]vm-shared\.js:/.test(caller))
      throw new Error('Wharf runs workflows without the stack-trace promise hook (WHARF_WORKFLOW_STACK_TRACES)');
    return createHook.call(this, hooks);
  };
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).startsWith('v8.promiseHooks.createHook is not available')) warn(...args);
  };
  load(sdkThread);
}

/** What the thread runs: {@link threadMain} on the SDK's script. */
const threadSource = (sdkThread: string): string =>
  `(${threadMain.toString()})(${JSON.stringify(sdkThread)}, require);`;

/**
 * Runs `create` (which makes the SDK's workflow threads: `Worker.create` with a workflow bundle) so that the
 * threads it starts have no stack-trace hook, unless `stackTraces`. Only the SDK's workflow thread script is
 * started differently, and only while `create` runs.
 */
export async function withWorkflowThreads<T>(stackTraces: boolean, create: () => Promise<T>): Promise<T> {
  if (stackTraces) return create();
  const threads = workerThreads as { Worker: typeof workerThreads.Worker };
  const Original = threads.Worker;
  class WorkflowThread extends Original {
    constructor(filename: string | URL, options?: WorkerOptions) {
      const path = typeof filename === 'string' ? filename : '';
      if (SDK_THREAD.test(path)) super(threadSource(path), { ...options, eval: true });
      else super(filename, options);
    }
  }
  threads.Worker = WorkflowThread;
  try {
    return await create();
  } finally {
    threads.Worker = Original;
  }
}
