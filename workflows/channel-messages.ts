/**
 * Signals, queries and updates of the channel workflow. Client code (the API, activities) reuses these
 * constants: `handle.executeUpdate(saveConfig, { args: [input] })`.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ChannelState, ConfigValue, InboundMode, PairingState } from '../lib/types.js';

/** The channel's current state. */
export const state = defineQuery<ChannelState>('state');

/** Input of `saveConfig`: the provider's fields, secrets as credential refs. */
export interface SaveConfigInput {
  config: Record<string, ConfigValue>;
}
/** Saves the provider config and checks the credentials against the provider; returns the new state. */
export const saveConfig = defineUpdate<ChannelState, [SaveConfigInput]>('saveConfig');

/** Input of `patchChannel`. */
export interface PatchChannelInput {
  inbound?: InboundMode;
  agent?: string;
}
/** Changes the inbound mode or the agent; takes effect for the next message. */
export const patchChannel = defineUpdate<ChannelState, [PatchChannelInput]>('patchChannel');

/** Input of `startPairing`: a fresh code made by the caller with a CSPRNG. */
export interface StartPairingInput {
  code: string;
  expiresAt: string;
}
/** Starts (or restarts: "Re-pair") pairing; refused unless the channel is connected. */
export const startPairing = defineUpdate<PairingState, [StartPairingInput]>('startPairing');

/** Input of `pairSender`. */
export interface PairSenderInput {
  code: string;
  address: string;
}
/** Pairs `address` if `code` is the live pairing code (one use); `{ paired: false }` otherwise. */
export const pairSender = defineUpdate<{ paired: boolean }, [PairSenderInput]>('pairSender');

/** Input of `unpair`. */
export interface UnpairInput {
  address: string;
}
/** Removes one paired address; refused when it is not paired. */
export const unpair = defineUpdate<ChannelState, [UnpairInput]>('unpair');

/** Operator control: stop taking and sending messages. */
export const disconnect = defineUpdate<ChannelState, [{ reason?: string }]>('disconnect');
/** Operator control: resume after `disconnect` (or retry after a failure). */
export const reconnect = defineUpdate<ChannelState, [Record<string, never>]>('reconnect');

/** Stops the channel for good: frees its space, removes its auth state, ends the workflow. */
export const deleteChannel = defineUpdate<{ deleted: true }, [Record<string, never>]>('deleteChannel');

/** Meta called the webhook successfully (verification handshake or a signed event). */
export const webhookVerified = defineSignal<[{ at: string }]>('webhookVerified');

/** Input of `reportProblem`: a failure seen while sending that means the channel cannot work. */
export interface ReportProblemInput {
  status: 'failed' | 'disconnected';
  reason: string;
}
/** A chat workflow saw credentials rejected (e.g. Meta code 190) and reports it to the channel. */
export const reportProblem = defineSignal<[ReportProblemInput]>('reportProblem');
