/**
 * Workflow time. Inside the workflow sandbox `Date` is deterministic — it returns the time of the current
 * workflow task, replayed from history — so this is the one sanctioned place workflow code reads the clock.
 */
export function workflowNow(): number {
  // The one file eslint.config.js lets read Date: the sandbox makes it deterministic (see above).
  return Date.now();
}
