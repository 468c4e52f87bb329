/** zod schemas of the HTTP API's inputs (SPEC §4). Handlers receive the parsed values. */
import { z } from 'zod';
import { INBOUND_MODES, PROVIDERS, CHANNEL_STATUSES } from '../lib/types.js';

/** `{vault, item, field}` pointing at a secret. */
export const CredentialRefSchema = z.object({
  vault: z.string().min(1),
  item: z.string().min(1),
  field: z.string().min(1),
});

const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, "_", "-" and "." only, starting with a letter or digit');

/** POST /api/channels */
export const CreateChannelSchema = z.object({
  provider: z.enum(PROVIDERS),
  agent: id,
  space: z.string().trim().min(1).max(200).optional(),
  inbound: z.enum(INBOUND_MODES).optional(),
});

/** PATCH /api/channels/:id */
export const PatchChannelSchema = z
  .object({ inbound: z.enum(INBOUND_MODES).optional(), agent: id.optional() })
  .refine((v) => v.inbound !== undefined || v.agent !== undefined, 'give inbound and/or agent');

/** GET /api/channels filters */
export const ListChannelsQuery = z.object({
  status: z.enum(CHANNEL_STATUSES).optional(),
  provider: z.enum(PROVIDERS).optional(),
});

/** PUT /api/channels/:id/config for the Cloud API. */
export const CloudConfigSchema = z.strictObject({
  phone_number_id: z.string().trim().regex(/^\d{5,32}$/, 'the numeric Phone Number ID from WhatsApp → API Setup'),
  business_account_id: z.string().trim().regex(/^\d{5,32}$/, 'the numeric WhatsApp Business Account ID'),
  access_token: CredentialRefSchema,
  verify_token: CredentialRefSchema,
  app_secret: CredentialRefSchema,
});

/** GET /api/spaces */
export const ListSpacesQuery = z.object({ unbound: z.enum(['true', 'false']).optional() });

/** POST /api/agents */
export const CreateAgentSchema = z.discriminatedUnion('kind', [
  z.strictObject({ id, kind: z.literal('echo') }),
  z.strictObject({
    id,
    kind: z.literal('openai'),
    baseUrl: z.url({ protocol: /^https?$/ }),
    model: z.string().min(1),
    apiKey: CredentialRefSchema,
    system: z.string().max(20_000).optional(),
  }),
  z.strictObject({ id, kind: z.literal('temporal'), workflowType: z.string().min(1), taskQueue: z.string().min(1) }),
]);

/** POST /api/vaults/:vault/items ("New credential") */
export const CreateVaultItemSchema = z.strictObject({
  name: z.string().trim().min(1).max(200),
  kind: z.enum(['api_key', 'password', 'token', 'secret']).default('api_key'),
  fields: z.record(z.string().min(1).max(100), z.string().max(65_536)).refine((f) => Object.keys(f).length > 0, 'give at least one field, e.g. {"value": "..."}'),
});

/** GET /api/channels/:id/messages */
export const MessagesQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) });

/** PUT /api/policies */
export const PutPoliciesSchema = z.object({ policies: z.string().max(1_000_000) });

/** POST /api/policies/check */
export const PolicyCheckSchema = z.object({
  channel: z.string().min(1),
  sender: z.string().min(1),
  agent: z.string().min(1).optional(),
  chat: z.object({ kind: z.enum(['direct', 'group']), id: z.string().min(1), name: z.string().optional() }),
  name: z.string().optional(),
});

/** POST /api/signals/wait */
export const SignalWaitSchema = z.object({
  space: z.string().min(1),
  timeoutSeconds: z.number().min(0).max(3600).default(30),
});
