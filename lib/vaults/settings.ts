/**
 * Settings of each connection kind (SPEC §8), validated with zod when a connection is added or patched.
 * A connection's own secret is always a credential ref into `local`, never a value.
 */
import { z } from 'zod';

/** A ref into the local vault: where a connection's own secret (password, token) lives. */
export const LocalRefSchema = z.strictObject({
  vault: z.literal('local', { error: 'a connection’s own secret must live in the local vault ("vault": "local")' }),
  item: z.string().min(1),
  field: z.string().min(1),
});
/** A ref into `local`. */
export type LocalRef = z.infer<typeof LocalRefSchema>;

const httpUrl = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));

/** `keepass`: a .kdbx file on this machine, its master password (ref) and an optional key file. */
export const KeepassSettingsSchema = z.strictObject({
  path: z.string().min(1).max(4096),
  password: LocalRefSchema.optional(),
  keyFile: z.string().min(1).max(4096).optional(),
});

/** `hashicorp`: a KV secrets engine (v2 by default) with token or AppRole auth. */
export const HashicorpSettingsSchema = z.strictObject({
  address: httpUrl,
  mount: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9_.\-/]+$/, 'a mount path such as "secret" or "kv/team"')
    .transform((m) => m.replace(/^\/+|\/+$/g, '')),
  kvVersion: z.union([z.literal(1), z.literal(2)]).default(2),
  namespace: z.string().min(1).max(200).optional(),
  auth: z.union([
    z.strictObject({ token: LocalRefSchema }),
    z.strictObject({
      roleId: z.string().min(1).max(200),
      secretId: LocalRefSchema,
      mount: z.string().min(1).max(100).default('approle'),
    }),
  ]),
  /** Let Wharf write (create, rotate, delete); off by default so a read-only policy suffices. */
  writable: z.boolean().default(false),
});

/** `onepassword`: a 1Password Connect server and its access token (ref). */
export const OnePasswordSettingsSchema = z.strictObject({
  connectUrl: httpUrl,
  token: LocalRefSchema,
  /** Let Wharf write (create, rotate, delete); needs a token with write access to the vault. */
  writable: z.boolean().default(false),
});

/** `bitwarden`: the Vault Management API of a `bw serve` next to Wharf, unlocked with the master password (ref). */
export const BitwardenSettingsSchema = z.strictObject({
  url: httpUrl.default('http://127.0.0.1:8087'),
  password: LocalRefSchema.optional(),
  /** Let Wharf write (create, rotate, delete). */
  writable: z.boolean().default(false),
});

const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, "_", "-" and "." only, starting with a letter or digit')
  .refine((v) => v !== 'local', '"local" is the built-in vault');

/** POST /api/vaults */
export const CreateConnectionSchema = z.discriminatedUnion('kind', [
  z.strictObject({ id, kind: z.literal('keepass'), settings: KeepassSettingsSchema }),
  z.strictObject({ id, kind: z.literal('hashicorp'), settings: HashicorpSettingsSchema }),
  z.strictObject({ id, kind: z.literal('onepassword'), settings: OnePasswordSettingsSchema }),
  z.strictObject({ id, kind: z.literal('bitwarden'), settings: BitwardenSettingsSchema }),
]);
/** A parsed POST /api/vaults body. */
export type CreateConnection = z.infer<typeof CreateConnectionSchema>;

/** PATCH /api/vaults/:vault — new settings (merged over the old ones at the top level). */
export const PatchConnectionSchema = z.strictObject({ settings: z.record(z.string(), z.unknown()) });

/** The settings schema of a kind. */
export const SETTINGS_SCHEMAS = {
  keepass: KeepassSettingsSchema,
  hashicorp: HashicorpSettingsSchema,
  onepassword: OnePasswordSettingsSchema,
  bitwarden: BitwardenSettingsSchema,
} as const;

/** Parsed settings per kind. */
export type KeepassSettings = z.infer<typeof KeepassSettingsSchema>;
/** Parsed `hashicorp` settings. */
export type HashicorpSettings = z.infer<typeof HashicorpSettingsSchema>;
/** Parsed `onepassword` settings. */
export type OnePasswordSettings = z.infer<typeof OnePasswordSettingsSchema>;
/** Parsed `bitwarden` settings. */
export type BitwardenSettings = z.infer<typeof BitwardenSettingsSchema>;

/** Every local ref a connection's settings hold (for "who refers to this item"). */
export function settingsRefs(settings: Record<string, unknown>): LocalRef[] {
  const out: LocalRef[] = [];
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.vault === 'string' && typeof o.item === 'string' && typeof o.field === 'string')
      out.push(o as unknown as LocalRef);
    else for (const x of Object.values(o)) walk(x);
  };
  walk(settings);
  return out;
}
