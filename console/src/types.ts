/**
 * The API's shapes, derived from the server's own code: request bodies from its zod schemas
 * (api/schemas.ts), answers from the functions that build them. Nothing here is copied by hand.
 */
import type { z } from 'zod';
import type { channelView } from '../../api/channels.router';
import type {
  CloudConfigSchema,
  CreateAgentSchema,
  CreateChannelSchema,
  CreateVaultItemSchema,
  PolicyCheckSchema,
} from '../../api/schemas';
import type { AgentRecord, MessageLogEntry, Space, VaultItemInfo } from '../../lib/store/store';
import type { PolicyError } from '../../lib/policy/engine';
import type { PolicyWarning } from '../../api/policies.router';
import type { SignalQueueView } from '../../workflows/channel-messages';
import type { ChannelStatus, CredentialRef, Provider, ProviderInfo } from '../../lib/types';

/** A channel as `GET /api/channels/:id` answers it. */
export type Channel = Awaited<ReturnType<typeof channelView>>;
/** `POST /api/channels` body. */
export type CreateChannelInput = z.input<typeof CreateChannelSchema>;
/** `PUT /api/channels/:id/config` body. */
export type CloudConfigInput = z.input<typeof CloudConfigSchema>;
/** `POST /api/agents` body. */
export type CreateAgentInput = z.input<typeof CreateAgentSchema>;
/** `POST /api/vaults/local/items` body. */
export type CreateVaultItemInput = z.input<typeof CreateVaultItemSchema>;
/** `POST /api/policies/check` body. */
export type PolicyCheckInput = z.input<typeof PolicyCheckSchema>;

/** `GET /api/system`. */
export interface SystemInfo {
  version: string;
  temporal: { address: string; namespace: string; taskQueue: string; uiUrl: string | null; embedded: boolean };
  store: { kind: string };
  publicUrl: string;
}

/** `GET /api/vaults` entries. */
export interface VaultConnection {
  id: string;
  kind: string;
  label?: string;
  writable?: boolean;
}

/** `GET/PUT /api/policies`. */
export interface PolicySet {
  policies: string;
  updatedAt: string | null;
  builtin: string;
  warnings?: PolicyWarning[];
}

/** `POST /api/policies/check` answer. */
export interface PolicyCheckResult {
  decision: 'allow' | 'deny';
  reasons: string[];
  errors: unknown[];
  paired: boolean;
  agent: string;
}

/** `GET /api/channels/:id/qr` answer. */
export interface QrCode {
  qr: string;
  dataUrl: string;
  expiresAt: string;
}

/** One space of `GET /api/signals`: its channel and the channel workflow's signal queue. */
export type SpaceQueue = SignalQueueView & {
  space: string;
  channelId: string | null;
  inbound: 'message' | 'signal' | null;
};

export type {
  AgentRecord,
  PolicyWarning,
  ChannelStatus,
  CredentialRef,
  MessageLogEntry,
  PolicyError,
  Provider,
  ProviderInfo,
  Space,
  VaultItemInfo,
};
