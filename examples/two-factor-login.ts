/**
 * A "login needs a 2FA code" task: the kind of workflow that waits on a WhatsApp channel in `signal` mode.
 * It starts a login (an activity of yours, elided here), waits up to five minutes for the code a paired
 * phone texts to the channel of space "Codes", and finishes the login with it.
 *
 * Run it on any worker of yours; Wharf's own worker (task queue `wharf`) must be running, because the
 * helper registers the wait with the channel through an activity on that queue.
 */
import { waitForChannelSignal } from '../workflows/wait-for-signal.js';

/** Input of the example task. */
export interface TwoFactorLoginInput {
  user: string;
  space: string;
  timeoutMs: number;
  wharfTaskQueue?: string;
}

/** Outcome: the code that arrived (and who sent it), or why none did. */
export type TwoFactorLoginResult = { ok: true; code: string; from: string } | { ok: false; reason: string };

/** Waits for the 2FA code and returns it. */
export async function twoFactorLogin(input: TwoFactorLoginInput): Promise<TwoFactorLoginResult> {
  // await startLogin(input.user) — an activity that triggers the SMS/WhatsApp code in the real system.
  const r = await waitForChannelSignal({
    space: input.space,
    timeout: input.timeoutMs,
    wharfTaskQueue: input.wharfTaskQueue,
  });
  if (!r.ok) return { ok: false, reason: r.reason };
  const code = r.message.text.replace(/\s+/g, '');
  // await finishLogin(input.user, code) — the activity that submits it.
  return { ok: true, code, from: r.message.sender.address };
}
