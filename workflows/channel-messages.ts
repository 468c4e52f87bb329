/**
 * Signals, queries and updates of the channel workflow. Client code (the API, activities) reuses these
 * constants: `handle.executeUpdate(saveConfig, { args: [input] })`.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ChannelState, ConfigValue, InboundMessage, InboundMode, PairingState } from '../lib/types.js';
import type { MediaRef } from '../lib/media.js';

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
  /**
   * The inbound message that carried the code. Only a retry for this same message is answered `paired`
   * again once the code is used: the code itself is dead for everyone, its sender included.
   */
  messageId?: string;
}
/** Pairs `address` if `code` is the live pairing code (one use); `{ paired: false }` otherwise. */
export const pairSender = defineUpdate<{ paired: boolean }, [PairSenderInput]>('pairSender');

/** Input of `movePairedAddress`. */
export interface MovePairedAddressInput {
  from: string;
  to: string;
}
/**
 * A paired user moved to a new number (Meta's signed `user_changed_number` notice): the pairing moves with
 * them. `{ moved: false }` when `from` was not paired.
 */
export const movePairedAddress = defineUpdate<{ moved: boolean }, [MovePairedAddressInput]>('movePairedAddress');

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

/**
 * Input of `reportProblem`: a failure seen while sending that means the channel cannot work; or, without
 * `status`, a new reason only (a vault outage being retried, and its end) for a channel that is not
 * failed or disconnected.
 */
export interface ReportProblemInput {
  status?: 'failed' | 'disconnected';
  reason: string;
}
/** A chat workflow saw credentials rejected (e.g. Meta code 190) and reports it to the channel. */
export const reportProblem = defineSignal<[ReportProblemInput]>('reportProblem');

/** A message handed off to a waiting task (inbound mode `signal`). */
export interface HandedOffMessage {
  id: string;
  channelId: string;
  space: string;
  chat: InboundMessage['chat'];
  sender: InboundMessage['sender'];
  text: string;
  timestamp: number;
  /** A media message's stored file (`GET /api/media/:id`), or why it is missing. */
  media?: MediaRef;
}

/** A chat workflow hands a message that passed pairing and policy to the channel's waiting tasks. */
export const handOff = defineSignal<[{ message: HandedOffMessage }]>('handOff');

/** Input of `addWaiter`: a workflow waiting (from `waitForChannelSignal`) for the next message. */
export interface AddWaiterInput {
  waiterId: string;
  workflowId: string;
  /** Only messages from this sender address. */
  from?: string;
  /** ISO time after which the waiter is forgotten. */
  expiresAt: string;
}
/** Registers a waiting workflow; a held message is signalled to it at once. */
export const addWaiter = defineUpdate<{ queued: boolean }, [AddWaiterInput]>('addWaiter');

/** Input of `waitForMessage`: an HTTP long-poll waiting for the next message. */
export interface WaitForMessageInput {
  waiterId: string;
  from?: string;
  timeoutMs: number;
}
/** Waits (inside the update) for the next handed-off message, oldest waiter first. */
export const waitForMessage = defineUpdate<{ message: HandedOffMessage | null }, [WaitForMessageInput]>(
  'waitForMessage',
);

/** Withdraws a waiter; returns the message it had already been given, if any, so nothing is lost. */
export const cancelWaiter = defineUpdate<{ message: HandedOffMessage | null }, [{ waiterId: string }]>('cancelWaiter');

/** What the signal queue of a channel holds: tasks waiting for a message and messages waiting for a task. */
export interface SignalQueueView {
  waiters: Array<{
    waiterId: string;
    kind: 'workflow' | 'http';
    workflowId?: string;
    from?: string;
    expiresAt: string;
  }>;
  held: Array<{ id: string; sender: string; text: string; expiresAt: string }>;
}
/** Reads the waiting tasks and held messages (the console's Signals page). */
export const signalQueue = defineQuery<SignalQueueView>('signalQueue');

/** Puts back a message whose receiver went away before it could take it (kept for the next waiter). */
export const returnMessage = defineSignal<[{ message: HandedOffMessage }]>('returnMessage');

/** The signal a waiting workflow receives (see `waitForChannelSignal`). */
export const channelSignal = defineSignal<[{ waiterId: string; message: HandedOffMessage }]>('wharfChannelSignal');

/** What a personal-account session reports to its channel. */
export interface SessionUpdate {
  status: 'setup' | 'connected' | 'disconnected' | 'failed';
  reason: string;
  /** The linked number, E.164, once the session is open. */
  selfAddress?: string;
  /** The task queue of the worker that holds the socket: sends for this channel go there. */
  sessionQueue?: string;
  /** True when the session ended for good (logged out / bad session): the workflow stops restarting it. */
  final?: boolean;
}
/** A personal-account session's state changed (QR pending, open, closed with a reason). */
export const sessionUpdate = defineSignal<[SessionUpdate]>('sessionUpdate');

/** Input of `relink`: start a fresh link attempt, by QR or by phone-number pairing code. */
export interface RelinkInput {
  /** E.164 number for Baileys' pairing-code linking instead of a QR. */
  phoneNumber?: string;
}
/** Restarts the personal-account link attempt (fresh QR, or a pairing code for `phoneNumber`). */
export const relink = defineUpdate<ChannelState, [RelinkInput]>('relink');
