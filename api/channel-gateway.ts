/**
 * The API's way into channels: starts channel workflows, sends them updates and signals, hands webhook
 * events to chat workflows. Holds no channel state; reads come from the store's read model.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Config } from '../lib/config.js';
import { notFound } from '../lib/errors.js';
import { PAIRING_TTL_MS } from '../lib/pairing.js';
import type { InboundDeliveries } from '../lib/inbound-delivery.js';
import { WharfChannelStatus, WharfProvider, WharfSpace } from '../lib/search-attributes.js';
import type { Store } from '../lib/store/store.js';
import { channelDetails, channelSummary } from '../lib/workflow-metadata.js';
import type {
  ChannelState,
  DeliveryStatus,
  InboundMessage,
  InboundMode,
  NumberChange,
  Provider,
  UnhandledInbound,
} from '../lib/types.js';
import { PROVIDER_INFO } from '../lib/types.js';
import { channelWorkflowId } from '../lib/workflow-ids.js';
import { movePairedAddress, webhookVerified } from '../workflows/channel-messages.js';
import type { channelWorkflow } from '../workflows/channel-workflow.js';

/** A new channel id: `ch_` and 10 lowercase base32 characters. */
export function newChannelId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bytes = randomBytes(10);
  return 'ch_' + Array.from(bytes, (b) => alphabet[b % 32]).join('');
}

/** The state of a channel that was just created (status `setup`, nothing configured or paired). */
export function newChannelState(input: {
  id: string;
  provider: Provider;
  agent: string;
  space?: string;
  inbound?: InboundMode;
  now?: string;
}): ChannelState {
  const now = input.now ?? new Date().toISOString();
  return {
    id: input.id,
    provider: input.provider,
    space: input.space ?? PROVIDER_INFO[input.provider].label,
    agent: input.agent,
    inbound: input.inbound ?? 'message',
    status: 'setup',
    statusReason:
      input.provider === 'whatsapp_cloud'
        ? 'Fill in the config (phone_number_id, business_account_id and the three secrets) and save it.'
        : 'Waiting for the QR code to be scanned.',
    config: {},
    configured: false,
    selfAddress: null,
    pairedAddresses: [],
    pairing: null,
    lastPairing: null,
    createdAt: now,
    updatedAt: now,
    version: 0,
  };
}

/** A pairing code such as `XYZ-123`, from a CSPRNG. */
export function newPairingCode(): { code: string; expiresAt: string } {
  const letters = Array.from({ length: 3 }, () => String.fromCharCode(65 + randomInt(26))).join('');
  const digits = String(randomInt(1000)).padStart(3, '0');
  return { code: `${letters}-${digits}`, expiresAt: new Date(Date.now() + PAIRING_TTL_MS).toISOString() };
}

/** Creates the gateway. */
export function createChannelGateway({
  client,
  store,
  config,
  deliveries,
}: {
  client: Client;
  store: Store;
  config: Config;
  deliveries: InboundDeliveries;
}) {
  const taskQueue = config.temporal.taskQueue;
  const listeners: Array<(id: string) => void> = [];

  return {
    /** Subscribes to "this channel changed through this process" (for caches). */
    onChange(fn: (id: string) => void): void {
      listeners.push(fn);
    },
    /** Tells subscribers a channel changed. */
    changed(id: string): void {
      for (const fn of listeners) fn(id);
    },

    /** The handle of a channel's workflow. */
    handle(id: string): WorkflowHandle<typeof channelWorkflow> {
      return client.workflow.getHandle<typeof channelWorkflow>(channelWorkflowId(id));
    },

    /** The read model of a live channel; 404 when unknown or deleted. */
    async get(id: string): Promise<ChannelState> {
      const ch = await store.channels.get(id);
      if (!ch) throw notFound(`Channel "${id}"`);
      return ch;
    },

    /**
     * Creates a channel: binds (or creates) its space and writes its read model in one transaction, then
     * starts its workflow. If the start fails, the transaction's effects are undone: all or nothing.
     */
    async create(input: {
      provider: Provider;
      agent: string;
      space?: string;
      inbound?: InboundMode;
    }): Promise<ChannelState> {
      const id = newChannelId();
      const state = newChannelState({ id, ...input });
      await store.db.transaction(async (tx) => {
        await store.spaces.bind(state.space, id, tx);
        await store.channels.project(state, false, tx);
      });
      try {
        await client.workflow.start<typeof channelWorkflow>('channelWorkflow', {
          workflowId: channelWorkflowId(id),
          taskQueue,
          args: [{ state }],
          typedSearchAttributes: [
            { key: WharfChannelStatus, value: state.status },
            { key: WharfProvider, value: state.provider },
            { key: WharfSpace, value: state.space },
          ],
          memo: { space: state.space, agent: state.agent, provider: state.provider },
          // What the Temporal UI's workflow list shows without clicking in; the workflow keeps its current details.
          staticSummary: channelSummary(state),
          staticDetails: channelDetails(state, config.publicUrl),
        });
      } catch (err) {
        await store.db.transaction(async (tx) => {
          await store.spaces.unbind(id, tx);
          await store.channels.purge(id, tx);
        });
        throw err;
      }
      return state;
    },

    /** Meta called the webhook successfully: a configured `setup` channel becomes `connected`. */
    async verified(ch: ChannelState): Promise<void> {
      if (ch.status === 'setup' && ch.configured)
        await this.handle(ch.id).signal(webhookVerified, { at: new Date().toISOString() });
    },

    /**
     * Applies Meta's signed notice that a user moved to a new number: a paired address moves with them.
     * Returns the notice's message-log entry, saying what was done (never throws: the rest of the webhook
     * goes on).
     */
    async moveNumber(ch: ChannelState, change: NumberChange): Promise<UnhandledInbound> {
      const entry = { id: change.id, chatId: change.from, address: change.from, type: 'system', text: change.body };
      try {
        const { moved } = await this.handle(ch.id).executeUpdate(movePairedAddress, {
          args: [{ from: change.from, to: change.to }],
        });
        if (moved) this.changed(ch.id);
        const reason = moved
          ? `The user changed number from ${change.from} to ${change.to}: the pairing moved to ${change.to}.`
          : `The user changed number from ${change.from} to ${change.to}; ${change.from} was not paired, so nothing moved.`;
        return { ...entry, status: moved ? 'applied' : 'ignored', reason };
      } catch (err) {
        return {
          ...entry,
          status: 'failed',
          reason: `The number change from ${change.from} to ${change.to} could not be applied: ${(err as Error).message}`,
        };
      }
    },

    /** Hands a webhook's messages and statuses durably to their chat workflows (see lib/inbound-delivery). */
    deliver(channelId: string, messages: InboundMessage[], deliveryStatuses: DeliveryStatus[]): Promise<void> {
      return deliveries.of(client, taskQueue).deliver(channelId, messages, deliveryStatuses);
    },
  };
}

/** The gateway's type. */
export type ChannelGateway = ReturnType<typeof createChannelGateway>;
