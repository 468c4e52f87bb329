/**
 * The channel entity workflow `channel-<id>` (SPEC §2): owns lifecycle, config (plain values and credential
 * refs only), pairing and paired addresses. It never sees message traffic — that goes to chat workflows —
 * so its history stays small; it still continues-as-new when Temporal suggests it.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ChannelActivities } from '../activities/channel-activities.js';
import { normalizePairingCode, PAIRING_TTL_MS } from '../lib/pairing.js';
import { WharfChannelStatus, WharfProvider, WharfSpace } from '../lib/search-attributes.js';
import { PROVIDER_INFO, type ChannelState, type ChannelStatus, type ConfigValue, type CredentialRef, INBOUND_MODES } from '../lib/types.js';
import {
  deleteChannel,
  disconnect,
  pairSender,
  patchChannel,
  reconnect,
  reportProblem,
  saveConfig,
  startPairing,
  state,
  unpair,
  webhookVerified,
} from './channel-messages.js';

/** Store writes: quick, retried until they succeed. */
const store = proxyActivities<ChannelActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '5 seconds' },
});
/** Provider checks: a few tries, then the operator is told. */
const provider = proxyActivities<ChannelActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: ['WharfMissingSecret'] },
});

/** Input of a run: the state carried over (new channel or continue-as-new). */
export interface ChannelWorkflowInput {
  state: ChannelState;
}

/** Refusal types the API maps to HTTP statuses. */
export const REFUSAL = { invalid: 'InvalidRequest', notPossible: 'NotPossibleNow', notFound: 'NotFound' } as const;

const refuse = (type: string, message: string): never => {
  throw ApplicationFailure.create({ type, message, nonRetryable: true });
};

const isRef = (v: ConfigValue): v is CredentialRef => typeof v === 'object' && v !== null;

/** Runs one channel until it is deleted. */
export async function channelWorkflow(input: ChannelWorkflowInput): Promise<void> {
  const s: ChannelState = input.state;
  let deleted = false;

  const touch = (): void => {
    s.version += 1;
    s.updatedAt = new Date().toISOString();
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
    await store.projectChannel(s);
  };
  const assertLive = (): void => {
    if (deleted) refuse(REFUSAL.notFound, `Channel ${s.id} has been deleted.`);
  };

  setHandler(state, () => s);

  setHandler(
    saveConfig,
    async ({ config }) => {
      s.config = config;
      s.configured = false;
      let check: Awaited<ReturnType<ChannelActivities['checkProviderConfig']>>;
      try {
        check = await provider.checkProviderConfig({ channelId: s.id, provider: s.provider, config });
      } catch (err) {
        const cause = err instanceof ActivityFailure && err.cause ? err.cause.message : String(err);
        check = { ok: false, reason: `Could not check the credentials with the provider (${cause}). Save the config again to retry.` };
      }
      if (check.ok) {
        s.configured = true;
        s.selfAddress = check.selfAddress ?? s.selfAddress;
        if (s.status === 'failed' || s.status === 'setup') {
          setStatus('setup', 'Config saved and checked. Paste the webhook URL and verify token into Meta (WhatsApp → Configuration).');
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
          } else if (f.secret && !isRef(v)) problems.push(`${f.name} must be a credential ref {vault, item, field}, not a value`);
          else if (!f.secret && typeof v !== 'string') problems.push(`${f.name} must be a string`);
        }
        for (const k of Object.keys(config ?? {})) if (!fields.some((f) => f.name === k)) problems.push(`${k} is not a field of ${s.provider}`);
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
        if (inbound !== undefined && !INBOUND_MODES.includes(inbound)) refuse(REFUSAL.invalid, `inbound must be one of ${INBOUND_MODES.join(', ')}.`);
        if (agent !== undefined && (typeof agent !== 'string' || !agent)) refuse(REFUSAL.invalid, 'agent must be a non-empty string.');
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
          refuse(REFUSAL.notPossible, `Channel ${s.id} is ${s.status}, not connected: finish the setup (Meta must call the webhook, or scan the QR) before pairing.`);
        }
        if (!/^[A-Z]{3}-\d{3}$/.test(code) || Number.isNaN(Date.parse(expiresAt))) refuse(REFUSAL.invalid, 'Malformed pairing code.');
      },
    },
  );

  setHandler(
    pairSender,
    async ({ code, address }) => {
      const wanted = normalizePairingCode(code);
      const last = s.lastPairing;
      if (last && last.address === address && normalizePairingCode(last.code) === wanted) return { paired: true };
      const live = s.pairing && Date.parse(s.pairing.expiresAt) > Date.now() && wanted === normalizePairingCode(s.pairing.code);
      if (!live || !s.pairing) return { paired: false };
      s.lastPairing = { code: s.pairing.code, address };
      s.pairing = null; // one use
      if (!s.pairedAddresses.some((p) => p.address === address)) s.pairedAddresses.push({ address, pairedAt: new Date().toISOString() });
      await commit();
      return { paired: true };
    },
    { validator: (_input) => assertLive() },
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
        if (!s.pairedAddresses.some((p) => p.address === address)) refuse(REFUSAL.notFound, `${address} is not paired with channel ${s.id}.`);
      },
    },
  );

  setHandler(
    disconnect,
    async ({ reason }) => {
      setStatus('disconnected', reason || 'Disconnected by the operator. Use reconnect to resume.');
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

  setHandler(reportProblem, async ({ status, reason }) => {
    if (deleted || (s.status === status && s.statusReason === reason)) return;
    setStatus(status, reason);
    await commit();
  });

  if (s.version === 0) await commit();

  await condition(() => deleted || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000);
  await condition(allHandlersFinished);
  if (deleted) return;
  await continueAsNew<typeof channelWorkflow>({ state: s });
}
