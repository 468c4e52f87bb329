/** zod schemas of the HTTP API's inputs (SPEC §4). Handlers receive the parsed values. */
import { z } from 'zod';
import { INBOUND_MODES, PROVIDERS, CHANNEL_STATUSES } from '../lib/types.js';

// NUL and the other C0/C1 control characters have no place in a name: PostgreSQL refuses NUL outright (the
// request used to end in a 500), and escape sequences in a name rewrite an operator's terminal when logs are
// read. A lone surrogate cannot be encoded as UTF-8 and would be stored as U+FFFD, so the name read back
// would differ from the one given. Refused at the edge, with the field named.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
// Free text (a system prompt) may hold line breaks and tabs.
const CONTROL_CHARS_BUT_LAYOUT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
// A high surrogate not followed by a low one, or a low one not preceded by a high one (String#isWellFormed
// is ES2024; the project targets ES2023).
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A string without control characters or lone surrogates (names, ids, refs, addresses). */
export const plainText = (): z.ZodString =>
  z
    .string()
    .refine((s) => !CONTROL_CHARS.test(s), 'control characters (NUL, escape, line breaks, …) are not allowed')
    .refine((s) => !LONE_SURROGATE.test(s), 'must be well-formed Unicode (no lone surrogates)');

/** Multi-line text: like {@link plainText} but line breaks and tabs are allowed. */
export const multilineText = (): z.ZodString =>
  z
    .string()
    .refine(
      (s) => !CONTROL_CHARS_BUT_LAYOUT.test(s),
      'control characters other than line breaks and tabs are not allowed',
    )
    .refine((s) => !LONE_SURROGATE.test(s), 'must be well-formed Unicode (no lone surrogates)');

/** `{vault, item, field}` pointing at a secret. */
export const CredentialRefSchema = z.object({
  vault: plainText().min(1).max(200),
  item: plainText().min(1).max(200),
  field: plainText().min(1).max(100),
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
  space: plainText().trim().min(1).max(200).optional(),
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
  phone_number_id: z
    .string()
    .trim()
    .regex(/^\d{5,32}$/, 'the numeric Phone Number ID from WhatsApp → API Setup'),
  business_account_id: z
    .string()
    .trim()
    .regex(/^\d{5,32}$/, 'the numeric WhatsApp Business Account ID'),
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
    model: plainText().min(1).max(200),
    apiKey: CredentialRefSchema,
    system: multilineText().max(20_000).optional(),
    /** Speech to text for audio (OpenAI's `/audio/transcriptions`); off when absent. Defaults: the agent's baseUrl and apiKey. */
    transcription: z
      .strictObject({
        baseUrl: z.url({ protocol: /^https?$/ }).optional(),
        model: plainText().min(1).max(200),
        apiKey: CredentialRefSchema.optional(),
      })
      .optional(),
  }),
  z.strictObject({
    id,
    kind: z.literal('temporal'),
    workflowType: plainText().min(1).max(200),
    taskQueue: plainText().min(1).max(200),
  }),
]);

/** POST /api/vaults/:vault/items ("New credential") */
export const CreateVaultItemSchema = z.strictObject({
  name: plainText().trim().min(1).max(200),
  kind: z.enum(['api_key', 'password', 'token', 'secret']).default('api_key'),
  // Values are secrets: any bytes, encrypted before they are stored and never shown.
  fields: z
    .record(plainText().min(1).max(100), z.string().max(65_536))
    .refine((f) => Object.keys(f).length > 0, 'give at least one field, e.g. {"value": "..."}'),
});

/** GET /api/channels/:id/messages */
export const MessagesQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) });

/** PUT /api/policies */
export const PutPoliciesSchema = z.object({ policies: z.string() }); // size: POLICY_MAX_BYTES, checked by the service (413)

/** POST /api/policies/check */
export const PolicyCheckSchema = z.object({
  channel: plainText().min(1).max(200),
  sender: plainText().min(1).max(200),
  agent: plainText().min(1).max(200).optional(),
  chat: z.object({
    kind: z.enum(['direct', 'group']),
    id: plainText().min(1).max(200),
    name: plainText().max(1000).optional(),
  }),
  name: plainText().max(1000).optional(),
});

/** POST /api/signals/wait */
export const SignalWaitSchema = z.object({
  space: plainText().min(1).max(200),
  timeoutSeconds: z.number().min(0).max(3600).default(30),
});
