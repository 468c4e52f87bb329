/**
 * The channel entity workflow `channel-<id>` (SPEC §2): owns lifecycle, config (plain values and credential
 * refs only), pairing and paired addresses. It never sees message traffic — that goes to chat workflows —
 * so its history stays small; it still continues-as-new when Temporal suggests it.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  CancellationScope,
  isCancellation,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  getExternalWorkflowHandle,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ChannelActivities } from '../activities/channel-activities.js';
import { FAILURE, FINAL_FAILURE_TYPES, REFUSAL, type RefusalType } from '../lib/errors.js';
import type { SessionActivities } from '../activities/personal-session/index.js';
import { normalizePairingCode } from '../lib/pairing.js';
import { channelDetails } from '../lib/workflow-metadata.js';
import { WharfChannelStatus, WharfProvider, WharfSpace } from '../lib/search-attributes.js';
import {
  PROVIDER_INFO,
  type ChannelState,
  type ChannelStatus,
  type ConfigValue,
  type CredentialRef,
  INBOUND_MODES,
} from '../lib/types.js';
import {
  addWaiter,
  cancelWaiter,
  channelSignal,
  deleteChannel,
  disconnect,
  handOff,
  type HandedOffMessage,
  returnMessage,
  waitForMessage,
  movePairedAddress,
  pairSender,
  patchChannel,
  reconnect,
  relink,
  reportProblem,
  sessionUpdate,
  saveConfig,
  startPairing,
  signalQueue,
  state,
  unpair,
  webhookVerified,
} from './channel-messages.js';
import { workflowNow } from './clock.js';

/** Store writes: quick, retried until they succeed. */
const store = proxyActivities<ChannelActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '5 seconds' },
});
/** One long-running session per personal channel: heartbeats, restarted with backoff on worker death. */
const sessions = proxyActivities<SessionActivities>({
  startToCloseTimeout: '3650 days',
  heartbeatTimeout: '30 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
/** Message-log entries of hand-offs. */
const handoffs = store;
/** Provider checks: a few tries, then the operator is told. */
const provider = proxyActivities<ChannelActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: [...FINAL_FAILURE_TYPES] },
});

/** A task waiting on this channel's space: a workflow (signalled) or an HTTP long-poll (in an update). */
interface Waiter {
  waiterId: string;
  workflowId?: string;
  from?: string;
  expiresAt: string;
}

/** A handed-off message no waiter has taken yet. */
interface HeldMessage {
  message: HandedOffMessage;
  expiresAt: string;
}

/** How long a handed-off message waits for a task before it is dropped (SPEC §7). */
export const HOLD_MS = 5 * 60 * 1000;

/** Input of a run: the state carried over (new channel or continue-as-new). */
export interface ChannelWorkflowInput {
  state: ChannelState;
  waiters?: Waiter[];
  held?: HeldMessage[];
  /** Continue-as-new once history has this many events (Temporal's own suggestion comes first). @default 2000 */
  historyLimit?: number;
  /** The last config check failed only because a vault could not answer: keep checking (carried over). */
  recheckConfig?: boolean;
}

/** First and longest wait between config re-checks while a vault is down (ms). */
const RECHECK_FIRST_MS = 10_000;
const RECHECK_MAX_MS = 5 * 60_000;

/** Refuses an update (its validator throws): the type is one of lib/errors.ts REFUSAL, which the API maps. */
const refuse = (type: RefusalType, message: string): never => {
  throw ApplicationFailure.create({ type, message, nonRetryable: true });
};

const isRef = (v: ConfigValue): v is CredentialRef => typeof v === 'object' && v !== null;

/** Runs one channel until it is deleted. */
export async function channelWorkflow(input: ChannelWorkflowInput): Promise<void> {
  const s: ChannelState = input.state;
  let deleted = false;
  // The waiting-task queue (SPEC §2), oldest first: workflows waiting via waitForChannelSignal and HTTP
  // long-polls waiting inside a `waitForMessage` update; plus messages held for the next waiter.
  let waiters: Waiter[] = [...(input.waiters ?? [])];
  const given = new Map<string, HandedOffMessage>();
  const signalled = new Map<string, HandedOffMessage>();
  let held: HeldMessage[] = [...(input.held ?? [])];

  const touch = (): void => {
    s.version += 1;
    s.updatedAt = new Date(workflowNow()).toISOString();
  };
  const setStatus = (status: ChannelStatus, reason: string): void => {
    s.status = status;
    s.statusReason = reason;
  };
  // Every change: bump the version, mirror it to the search attributes, memo and the store's read model.
  const commit = async (): Promise<void> => {
    touch();
    upsertSearchAttributes([
      { key: WharfChannelStatus, value: s.status },
      { key: WharfProvider, value: s.provider },
      { key: WharfSpace, value: s.space },
    ]);
    upsertMemo({ space: s.space, agent: s.agent, provider: s.provider });
    // The Temporal UI's "current details": static metadata is set only at the first start, this follows every change.
    setCurrentDetails(channelDetails(s));
    await store.projectChannel(s);
  };
  const assertLive = (): void => {
    if (deleted) refuse(REFUSAL.notFound, `Channel ${s.id} has been deleted.`);
  };

  setCurrentDetails(channelDetails(s));
  // Declared before any handler: an update in a run's first activation (a fresh run, or a replay after the
  // workflow left the cache) may cancel the session before the code below has run.
  let sessionScope: CancellationScope | null = null;
  const cancelSession = (): void => sessionScope?.cancel();
  // The session loop's promise, set once the loop starts below; until then there is nothing to wait for.
  let sessionDone: Promise<void> = Promise.resolve();

  setHandler(state, () => s);
  setHandler(signalQueue, () => ({
    waiters: waiters.map((w) => ({
      waiterId: w.waiterId,
      kind: w.workflowId ? ('workflow' as const) : ('http' as const),
      workflowId: w.workflowId,
      from: w.from,
      expiresAt: w.expiresAt,
    })),
    held: held.map((h) => ({
      id: h.message.id,
      sender: h.message.sender.address,
      text: h.message.text,
      expiresAt: h.expiresAt,
    })),
  }));

  // A config check; `vaultDown` when it failed only because a vault could not answer (then it is tried
  // again by recheckLoop, so the channel recovers without a re-save).
  const checkConfig = async (
    config: ChannelState['config'],
  ): Promise<{ check: Awaited<ReturnType<ChannelActivities['checkProviderConfig']>>; vaultDown: boolean }> => {
    try {
      return {
        check: await provider.checkProviderConfig({ channelId: s.id, provider: s.provider, config }),
        vaultDown: false,
      };
    } catch (err) {
      const cause = err instanceof ActivityFailure && err.cause ? err.cause : undefined;
      if (cause instanceof ApplicationFailure && cause.type === FAILURE.vaultUnavailable) {
        return {
          check: { ok: false, reason: `${cause.message}. Wharf checks the config again until the vault answers.` },
          vaultDown: true,
        };
      }
      return {
        check: {
          ok: false,
          reason: `Could not check the credentials with the provider (${cause?.message ?? String(err)}). Save the config again to retry.`,
        },
        vaultDown: false,
      };
    }
  };
  let recheck: { save: number } | null = input.recheckConfig ? { save: 0 } : null;
  let saves = 0;

  setHandler(
    saveConfig,
    async ({ config }) => {
      s.config = config;
      s.configured = false;
      const save = ++saves;
      recheck = null;
      const { check, vaultDown } = await checkConfig(config);
      if (vaultDown && save === saves) recheck = { save };
      if (check.ok) {
        s.configured = true;
        s.selfAddress = check.selfAddress ?? s.selfAddress;
        if (s.status === 'failed' || s.status === 'setup') {
          setStatus(
            'setup',
            'Config saved and checked. Paste the webhook URL and verify token into Meta (WhatsApp → Configuration).',
          );
        }
      } else {
        setStatus('failed', check.reason);
      }
      await commit();
      return s;
    },
    {
      validator: ({ config }) => {
        assertLive();
        const fields = PROVIDER_INFO[s.provider].fields;
        const problems: string[] = [];
        for (const f of fields) {
          const v = config?.[f.name];
          if (v === undefined || v === '') {
            if (f.required) problems.push(`${f.name} is required`);
          } else if (f.secret && !isRef(v))
            problems.push(`${f.name} must be a credential ref {vault, item, field}, not a value`);
          else if (!f.secret && typeof v !== 'string') problems.push(`${f.name} must be a string`);
        }
        for (const k of Object.keys(config ?? {}))
          if (!fields.some((f) => f.name === k)) problems.push(`${k} is not a field of ${s.provider}`);
        if (problems.length) refuse(REFUSAL.invalid, `Config refused: ${problems.join('; ')}.`);
      },
    },
  );

  setHandler(
    patchChannel,
    async ({ inbound, agent }) => {
      if (inbound) s.inbound = inbound;
      if (agent) s.agent = agent;
      await commit();
      return s;
    },
    {
      validator: ({ inbound, agent }) => {
        assertLive();
        if (inbound !== undefined && !INBOUND_MODES.includes(inbound))
          refuse(REFUSAL.invalid, `inbound must be one of ${INBOUND_MODES.join(', ')}.`);
        if (agent !== undefined && (typeof agent !== 'string' || !agent))
          refuse(REFUSAL.invalid, 'agent must be a non-empty string.');
      },
    },
  );

  setHandler(
    startPairing,
    async ({ code, expiresAt }) => {
      s.pairing = { code, expiresAt };
      await commit();
      return s.pairing;
    },
    {
      validator: ({ code, expiresAt }) => {
        assertLive();
        if (s.status !== 'connected') {
          refuse(
            REFUSAL.notPossible,
            `Channel ${s.id} is ${s.status}, not connected: finish the setup (Meta must call the webhook, or scan the QR) before pairing.`,
          );
        }
        if (!/^[A-Z]{3}-\d{3}$/.test(code) || Number.isNaN(Date.parse(expiresAt)))
          refuse(REFUSAL.invalid, 'Malformed pairing code.');
      },
    },
  );

  setHandler(
    pairSender,
    async ({ code, address, messageId }) => {
      const wanted = normalizePairingCode(code);
      // A used code is dead for good, for its own sender too: only a retry of the admission that used it
      // (the same message) hears "paired" again. Histories from before message ids carry none, and a
      // retry there now answers "not paired" (the code was cleared either way, so no command changes).
      const last = s.lastPairing;
      if (last && messageId && last.messageId === messageId && last.address === address) return { paired: true };
      const live =
        s.pairing && Date.parse(s.pairing.expiresAt) > workflowNow() && wanted === normalizePairingCode(s.pairing.code);
      if (!live || !s.pairing) return { paired: false };
      s.lastPairing = { code: s.pairing.code, address, ...(messageId ? { messageId } : {}) };
      s.pairing = null; // one use
      if (!s.pairedAddresses.some((p) => p.address === address))
        s.pairedAddresses.push({ address, pairedAt: new Date(workflowNow()).toISOString() });
      await commit();
      return { paired: true };
    },
    { validator: (_input) => assertLive() },
  );

  setHandler(
    movePairedAddress,
    async ({ from, to }) => {
      const entry = s.pairedAddresses.find((p) => p.address === from);
      if (!entry) return { moved: false };
      s.pairedAddresses = s.pairedAddresses.filter((p) => p.address !== from && p.address !== to);
      s.pairedAddresses.push({ address: to, pairedAt: entry.pairedAt });
      await commit();
      return { moved: true };
    },
    {
      validator: ({ from, to }) => {
        assertLive();
        if (typeof from !== 'string' || typeof to !== 'string' || !from || !to)
          refuse(REFUSAL.invalid, 'from and to must be addresses.');
      },
    },
  );

  setHandler(
    unpair,
    async ({ address }) => {
      s.pairedAddresses = s.pairedAddresses.filter((p) => p.address !== address);
      await commit();
      return s;
    },
    {
      validator: ({ address }) => {
        assertLive();
        if (!s.pairedAddresses.some((p) => p.address === address))
          refuse(REFUSAL.notFound, `${address} is not paired with channel ${s.id}.`);
      },
    },
  );

  setHandler(
    disconnect,
    async ({ reason }) => {
      setStatus('disconnected', reason || 'Disconnected by the operator. Use reconnect to resume.');
      if (s.provider === 'whatsapp_user') {
        s.sessionStopped = true;
        s.sessionQueue = null;
        cancelSession();
      }
      await commit();
      return s;
    },
    { validator: (_input) => assertLive() },
  );

  setHandler(
    reconnect,
    async () => {
      if (s.provider === 'whatsapp_cloud') {
        if (s.configured && s.status !== 'connected') setStatus('connected', 'Reconnected by the operator.');
        else if (!s.configured) setStatus('setup', 'Save a complete config to continue.');
      } else if (s.sessionStopped) {
        s.sessionStopped = false;
        setStatus('disconnected', 'Reconnecting the WhatsApp session…');
      }
      await commit();
      return s;
    },
    { validator: (_input) => assertLive() },
  );

  setHandler(
    deleteChannel,
    async () => {
      deleted = true;
      setStatus('disconnected', 'Channel deleted.');
      cancelSession();
      await sessionDone;
      touch();
      await store.releaseChannel({ state: s });
      return { deleted: true } as const;
    },
    { validator: (_input) => assertLive() },
  );

  setHandler(webhookVerified, async () => {
    if (deleted || !s.configured || s.status !== 'setup') return;
    setStatus('connected', 'Meta called the webhook successfully.');
    await commit();
  });

  // ---- personal accounts: the Baileys session runs in one long-running, heartbeating activity ----------
  let stopping = false;
  let linkPhone: string | undefined;
  const sessionWanted = (): boolean => s.provider === 'whatsapp_user' && !deleted && !stopping && !s.sessionStopped;

  // Runs the session while it is wanted; Temporal restarts the activity (with backoff) if its worker dies.
  const sessionLoop = async (): Promise<void> => {
    while (s.provider === 'whatsapp_user') {
      await condition(() => sessionWanted() || deleted || stopping);
      if (deleted || stopping) return;
      const scope = new CancellationScope();
      sessionScope = scope;
      try {
        await scope.run(() => sessions.runSession({ channelId: s.id, phoneNumber: linkPhone }));
      } catch (err) {
        if (!isCancellation(err)) {
          const cause = err instanceof ActivityFailure && err.cause ? err.cause.message : String(err);
          s.sessionStopped = true;
          setStatus('failed', `The WhatsApp session stopped: ${cause}. Use reconnect or refresh the QR to try again.`);
          await commit();
        }
      } finally {
        sessionScope = null;
      }
      linkPhone = undefined;
    }
  };
  sessionDone = sessionLoop();

  setHandler(sessionUpdate, async (u) => {
    if (deleted) return;
    setStatus(u.status, u.reason);
    if (u.selfAddress) s.selfAddress = u.selfAddress;
    if (u.status === 'connected') s.sessionQueue = u.sessionQueue ?? s.sessionQueue ?? null;
    else s.sessionQueue = null;
    if (u.final) s.sessionStopped = true;
    await commit();
  });

  setHandler(
    relink,
    async ({ phoneNumber }) => {
      linkPhone = phoneNumber;
      s.sessionStopped = false;
      setStatus(
        'setup',
        phoneNumber ? `Requesting a pairing code for ${phoneNumber}…` : 'Waiting for a fresh QR code…',
      );
      // A fresh link starts from empty auth state; the running attempt (if any) is cancelled first.
      cancelSession();
      await store.clearSession({ channelId: s.id });
      await commit();
      return s;
    },
    {
      validator: ({ phoneNumber }) => {
        assertLive();
        if (s.provider !== 'whatsapp_user')
          refuse(REFUSAL.invalid, 'Only personal-account channels are linked by QR or pairing code.');
        if (s.status === 'connected')
          refuse(
            REFUSAL.notPossible,
            'The channel is linked and connected; disconnect or delete it before linking again.',
          );
        if (phoneNumber !== undefined && !/^\+?\d{7,15}$/.test(phoneNumber))
          refuse(REFUSAL.invalid, 'phoneNumber must be an E.164 number such as +15551234567.');
      },
    },
  );

  setHandler(reportProblem, async ({ status, reason }) => {
    // A reason alone (no status) never overwrites why a channel failed or was disconnected.
    if (!status && (s.status === 'failed' || s.status === 'disconnected')) return;
    const next = status ?? s.status;
    if (deleted || (s.status === next && s.statusReason === reason)) return;
    setStatus(next, reason);
    await commit();
  });

  // Re-checks a config whose check failed because a vault was down, with backoff, until it passes, fails
  // for another reason, the config is saved again, or the run ends (the wish is carried over).
  const recheckLoop = async (): Promise<void> => {
    for (;;) {
      await condition(() => recheck !== null || deleted || stopping);
      if (deleted || stopping || !recheck) return;
      const { save } = recheck;
      const current = (): boolean => recheck?.save === save && saves === save && !deleted && !stopping;
      for (let wait = RECHECK_FIRST_MS; current(); wait = Math.min(wait * 2, RECHECK_MAX_MS)) {
        if (await condition(() => !current(), wait)) break;
        const { check, vaultDown } = await checkConfig(s.config);
        if (!current()) break;
        if (vaultDown && !check.ok) {
          if (s.statusReason !== check.reason && s.status === 'failed') {
            s.statusReason = check.reason;
            await commit();
          }
          continue;
        }
        recheck = null;
        if (check.ok) {
          s.configured = true;
          s.selfAddress = check.selfAddress ?? s.selfAddress;
          if (s.status === 'failed')
            setStatus(
              'setup',
              'The vault answers again: config checked. Paste the webhook URL and verify token into Meta (WhatsApp → Configuration).',
            );
        } else {
          setStatus('failed', check.reason);
        }
        await commit();
      }
    }
  };
  const recheckDone = recheckLoop();

  const matches = (from: string | undefined, m: HandedOffMessage): boolean => !from || from === m.sender.address;
  const now = workflowNow;

  /** The oldest live waiter that wants `m` (expired waiters are dropped on the way); undefined when none. */
  const waiterFor = (m: HandedOffMessage): Waiter | undefined => {
    waiters = waiters.filter((w) => Date.parse(w.expiresAt) > now());
    return waiters.find((x) => matches(x.from, m));
  };
  /** `m` as the hold keeps it, for HOLD_MS from now. */
  const toHold = (m: HandedOffMessage): { message: HandedOffMessage; expiresAt: string } => ({
    message: m,
    expiresAt: new Date(now() + HOLD_MS).toISOString(),
  });

  // Gives `m` to the oldest live waiter that wants it; false when nobody took it.
  const dispatch = async (m: HandedOffMessage): Promise<boolean> => {
    for (;;) {
      const w = waiterFor(m);
      if (!w) return false;
      waiters = waiters.filter((x) => x !== w);
      if (w.workflowId) {
        try {
          await getExternalWorkflowHandle(w.workflowId).signal(channelSignal, { waiterId: w.waiterId, message: m });
        } catch {
          continue; // the waiting workflow is gone: try the next waiter
        }
        // Remembered briefly so a waiter that timed out at this very moment still learns what it was sent.
        signalled.set(w.waiterId, m);
        if (signalled.size > 100) signalled.delete(signalled.keys().next().value as string);
      } else {
        given.set(w.waiterId, m);
      }
      await handoffs.recordHandoff({
        channelId: s.id,
        chatId: m.chat.id,
        messageId: m.id,
        status: 'handed_off',
        detail: { to: w.workflowId ?? 'http' },
      });
      return true;
    }
  };

  const takeHeld = (from: string | undefined): HandedOffMessage | null => {
    held = held.filter((h) => Date.parse(h.expiresAt) > now());
    const i = held.findIndex((h) => matches(from, h.message));
    if (i < 0) return null;
    const [h] = held.splice(i, 1);
    return h.message;
  };

  /**
   * Hands `message` to a waiter, or `hold`s it. One nobody waits for is held at once, in the same step: a
   * waiter that registers in the same workflow task (an update after this signal) then finds it. Before the
   * `hold-at-once` patch it was held only after `dispatch`'s await, so such a waiter missed it and waited out
   * its timeout while the message sat held.
   */
  const handOn = async (message: HandedOffMessage, hold: () => void): Promise<void> => {
    if (deleted) return;
    if ((!waiterFor(message) && patched('hold-at-once')) || !(await dispatch(message))) hold();
  };

  setHandler(handOff, ({ message }) => handOn(message, () => held.push(toHold(message))));

  // A message whose receiver went away: the next waiter gets it, else it is held (first in line).
  setHandler(returnMessage, ({ message }) => handOn(message, () => held.unshift(toHold(message))));

  setHandler(
    addWaiter,
    async (w) => {
      const m = takeHeld(w.from);
      if (m) {
        try {
          await getExternalWorkflowHandle(w.workflowId).signal(channelSignal, { waiterId: w.waiterId, message: m });
          await handoffs.recordHandoff({
            channelId: s.id,
            chatId: m.chat.id,
            messageId: m.id,
            status: 'handed_off',
            detail: { to: w.workflowId },
          });
          return { queued: false };
        } catch {
          // The registering workflow is already gone: the message goes to the next waiter or back in line.
          if (!(await dispatch(m))) held.unshift(toHold(m));
          return { queued: false };
        }
      }
      waiters.push(w);
      return { queued: true };
    },
    { validator: (_input) => assertLive() },
  );

  setHandler(
    waitForMessage,
    async ({ waiterId, from, timeoutMs }) => {
      const ready = takeHeld(from);
      if (ready) {
        await handoffs.recordHandoff({
          channelId: s.id,
          chatId: ready.chat.id,
          messageId: ready.id,
          status: 'handed_off',
          detail: { to: 'http' },
        });
        return { message: ready };
      }
      waiters.push({ waiterId, from, expiresAt: new Date(now() + timeoutMs).toISOString() });
      await condition(() => given.has(waiterId) || deleted, timeoutMs);
      waiters = waiters.filter((w) => w.waiterId !== waiterId);
      const message = given.get(waiterId) ?? null;
      given.delete(waiterId);
      return { message };
    },
    {
      validator: ({ timeoutMs }) => {
        assertLive();
        if (!(timeoutMs >= 0 && timeoutMs <= 3_600_000))
          refuse(REFUSAL.invalid, 'timeout must be between 0 and 3600 seconds.');
      },
    },
  );

  setHandler(cancelWaiter, ({ waiterId }) => {
    waiters = waiters.filter((w) => w.waiterId !== waiterId);
    const message = given.get(waiterId) ?? signalled.get(waiterId) ?? null;
    given.delete(waiterId);
    signalled.delete(waiterId);
    return { message };
  });

  // Drops held messages nobody came for within HOLD_MS, with a log line and a message-log entry.
  const expireHeld = async (): Promise<void> => {
    const expired = held.filter((h) => Date.parse(h.expiresAt) <= now());
    if (!expired.length) return;
    held = held.filter((h) => Date.parse(h.expiresAt) > now());
    for (const h of expired) {
      await handoffs.recordHandoff({
        channelId: s.id,
        chatId: h.message.chat.id,
        messageId: h.message.id,
        status: 'dropped',
        detail: { reason: 'No task was waiting on the space within 5 minutes.' },
      });
    }
  };

  if (s.version === 0) await commit();

  const historyLimit = input.historyLimit ?? 2000;
  const done = (): boolean =>
    deleted || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyLimit;
  while (!done()) {
    const next = held.length ? Math.min(...held.map((h) => Date.parse(h.expiresAt))) - now() : undefined;
    if (next === undefined) await condition(() => done() || held.length > 0);
    else if (!(await condition(done, Math.max(next, 1)))) await expireHeld();
  }
  stopping = true;
  cancelSession();
  await sessionDone;
  await recheckDone;
  await condition(allHandlersFinished);
  if (deleted) return;
  // HTTP waiters live in their update handlers, which have finished by now; workflow waiters carry over.
  await continueAsNew<typeof channelWorkflow>({
    state: s,
    waiters: waiters.filter((w) => w.workflowId),
    held,
    historyLimit: input.historyLimit,
    ...(recheck ? { recheckConfig: true } : {}),
  });
}
