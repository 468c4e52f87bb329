/**
 * Workflow time. Inside the workflow sandbox `Date` is deterministic — it returns the time of the current
 * workflow task, replayed from history — so this is the one sanctioned place workflow code reads the clock.
 */
export function workflowNow(): number {
  // eslint-disable-next-line no-restricted-properties -- the sandbox's Date is deterministic (see above)
  return Date.now();
}
