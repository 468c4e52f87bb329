/**
 * The vault registry: `local` plus the operator's connections (SPEC §8), resolving credential refs by
 * vault id at the moment of use.
 *
 * @example
 * ```ts
 * const vaults = vaultRegistry(store);
 * const token = await vaults.resolve({ vault: 'ops', item: 'meta/whatsapp', field: 'access_token' });
 * ```
 *
 * Values read from an external vault are kept in memory only, for {@link VALUE_CACHE_MS}, and never
 * written anywhere; a rotation made through Wharf drops them at once, one made in the vault itself is
 * seen within that time. (Local items have their own sealed-row cache of the same length in the store.)
 */
import { WharfError } from '../errors.js';
import { vaultErrors } from '../metrics.js';
import type { Store, VaultConnectionRecord } from '../store/store.js';
import type { CredentialRef } from '../types.js';
import { createBitwardenVault } from './bitwarden.js';
import { createHashicorpVault } from './hashicorp.js';
import { createKeepassVault } from './keepass.js';
import { createLocalVault } from './local.js';
import { createOnePasswordVault } from './onepassword.js';
import {
  SETTINGS_SCHEMAS,
  type BitwardenSettings,
  type HashicorpSettings,
  type KeepassSettings,
  type OnePasswordSettings,
} from './settings.js';
import {
  VaultError,
  type LocalSecretReader,
  type VaultConnection,
  type VaultItemSummary,
  type VaultKind,
} from './types.js';

export { VaultError, type VaultConnection, type VaultItemSummary, type VaultKind } from './types.js';
export { findReferences } from './references.js';

/**
 * How long a value read from an external vault is served from memory (ms). Short enough that a value
 * rotated in the vault is used within seconds; long enough that a burst of sends costs one vault read.
 */
export const VALUE_CACHE_MS = 5000;
/** How long a connection's settings are trusted before the store is read again (PATCH/DELETE elsewhere). */
const CONNECTION_RECHECK_MS = 5000;

/** A vault as the API lists it: settings hold refs, never values. */
export interface VaultView {
  id: string;
  kind: VaultKind;
  label: string;
  writable: boolean;
  settings?: Record<string, unknown>;
  createdAt?: string;
  updatedAt?: string;
}

const LABELS: Record<VaultKind, string> = {
  local: 'Local (encrypted in the Wharf store)',
  keepass: 'KeePass',
  hashicorp: 'HashiCorp Vault',
  onepassword: '1Password (Connect)',
  bitwarden: 'Bitwarden (bw serve)',
};

/** Whether a connection lets Wharf write (create, rotate, delete). KeePass files are edited in KeePass. */
const writableOf = (kind: string, settings: Record<string, unknown>): boolean =>
  kind !== 'keepass' && settings.writable === true;

/** Builds a connection object from stored (or about to be stored) settings. */
export function openConnection(
  store: Store,
  record: { id: string; kind: string; settings: Record<string, unknown> },
): VaultConnection {
  const readLocal: LocalSecretReader = async (setting, ref) => {
    const r = ref as CredentialRef;
    const value = await store.vault.resolve({ vault: 'local', item: r.item, field: r.field });
    if (value === null)
      throw new VaultError(
        record.id,
        'bad_config',
        `${setting} points at local/${r.item}/${r.field}, which does not exist`,
      );
    return value;
  };
  const kind = record.kind as Exclude<VaultKind, 'local'>;
  const schema = SETTINGS_SCHEMAS[kind];
  if (!schema) throw new VaultError(record.id, 'bad_config', `unknown kind '${record.kind}'`);
  const parsed = schema.safeParse(record.settings);
  if (!parsed.success)
    throw new VaultError(
      record.id,
      'bad_config',
      `settings do not validate: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`,
    );
  switch (kind) {
    case 'keepass':
      return createKeepassVault(record.id, parsed.data as KeepassSettings, readLocal);
    case 'hashicorp':
      return createHashicorpVault(record.id, parsed.data as HashicorpSettings, readLocal);
    case 'onepassword':
      return createOnePasswordVault(record.id, parsed.data as OnePasswordSettings, readLocal);
    case 'bitwarden':
      return createBitwardenVault(record.id, parsed.data as BitwardenSettings, readLocal);
  }
}

/** Creates a registry over a store. Prefer {@link vaultRegistry}, which keeps one per store. */
export function createVaultRegistry(store: Store) {
  const local = createLocalVault(store);
  const connections = new Map<string, { conn: VaultConnection; updatedAt: string; loadedAt: number }>();
  const values = new Map<string, { value: string; at: number }>();
  const valueKey = (vault: string, item: string, field: string): string => `${vault}\u0000${item}\u0000${field}`;

  const drop = (id: string): void => {
    connections.get(id)?.conn.close?.();
    connections.delete(id);
  };

  /** The connection `id` (local included); `not_found` WharfError when there is none. */
  const get = async (id: string): Promise<VaultConnection> => {
    if (id === 'local') return local;
    const hit = connections.get(id);
    if (hit && Date.now() - hit.loadedAt < CONNECTION_RECHECK_MS) return hit.conn;
    const record = await store.vaultConnections.get(id);
    if (!record) {
      drop(id);
      throw new WharfError('not_found', `Vault "${id}" is not connected. GET /api/vaults lists the connections.`);
    }
    if (hit && hit.updatedAt === record.updatedAt) {
      hit.loadedAt = Date.now();
      return hit.conn;
    }
    drop(id);
    const conn = openConnection(store, record);
    connections.set(id, { conn, updatedAt: record.updatedAt, loadedAt: Date.now() });
    return conn;
  };

  /** Reads a ref's value; tells `onKind` the vault's kind once its connection is known (for the metrics). */
  const resolveFrom = async (ref: CredentialRef, onKind: (kind: string) => void): Promise<string> => {
    const conn = await get(ref.vault).catch((err: unknown) => {
      if (err instanceof WharfError && err.code === 'not_found')
        throw new VaultError(ref.vault, 'not_found', 'no such vault connection');
      throw err;
    });
    onKind(conn.kind);
    // Local values are not copied here: the store keeps only the sealed row (see SEALED_CACHE_MS).
    if (conn.kind === 'local') return conn.resolve(ref.item, ref.field);
    const key = valueKey(ref.vault, ref.item, ref.field);
    const hit = values.get(key);
    if (hit && Date.now() - hit.at < VALUE_CACHE_MS) return hit.value;
    values.delete(key);
    const value = await conn.resolve(ref.item, ref.field);
    if (values.size > 10_000) values.clear();
    values.set(key, { value, at: Date.now() });
    return value;
  };

  const view = (r: VaultConnectionRecord): VaultView => ({
    id: r.id,
    kind: r.kind as VaultKind,
    label: LABELS[r.kind as VaultKind] ?? r.kind,
    writable: writableOf(r.kind, r.settings),
    settings: r.settings,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  });

  return {
    get,

    /** `local` first, then the connections by id. */
    async list(): Promise<VaultView[]> {
      return [
        { id: 'local', kind: 'local', label: LABELS.local, writable: true },
        ...(await store.vaultConnections.list()).map(view),
      ];
    },

    /** One vault's listing. */
    async view(id: string): Promise<VaultView> {
      if (id === 'local') return { id: 'local', kind: 'local', label: LABELS.local, writable: true };
      const r = await store.vaultConnections.get(id);
      if (!r)
        throw new WharfError('not_found', `Vault "${id}" is not connected. GET /api/vaults lists the connections.`);
      return view(r);
    },

    /** Reads the value a ref points at now (or from the short in-memory copy). Throws {@link VaultError}. */
    async resolve(ref: CredentialRef): Promise<string> {
      let kind = 'unknown';
      try {
        return await resolveFrom(ref, (k) => (kind = k));
      } catch (err) {
        if (err instanceof VaultError) vaultErrors.inc({ vault_kind: kind, problem: err.problem });
        throw err;
      }
    },

    /** Whether a ref names an item and field that exist; `unknown` when the vault cannot be asked now. */
    async refExists(ref: CredentialRef): Promise<boolean | 'unknown'> {
      if (ref.vault === 'local') return store.vault.refExists(ref);
      let conn: VaultConnection;
      try {
        conn = await get(ref.vault);
      } catch (err) {
        if (err instanceof WharfError && err.code === 'not_found') return false;
        throw err;
      }
      // One read of the field (the value is dropped here) costs less than listing a whole vault.
      try {
        await conn.resolve(ref.item, ref.field);
        return true;
      } catch (err) {
        if (err instanceof VaultError) return err.problem === 'not_found' ? false : 'unknown';
        throw err;
      }
    },

    /** Drops the in-memory copies of a vault's values (of one item) and, without `item`, its connection. */
    forget(vault: string, item?: string): void {
      for (const k of values.keys())
        if (k.startsWith(`${vault}\u0000${item === undefined ? '' : `${item}\u0000`}`)) values.delete(k);
      if (item === undefined) drop(vault);
    },

    /** Items of a vault (names and field names only). */
    async listItems(vault: string): Promise<VaultItemSummary[]> {
      return (await get(vault)).listItems();
    },
  };
}

/** The registry's API. */
export type VaultRegistry = ReturnType<typeof createVaultRegistry>;

const registries = new WeakMap<Store, VaultRegistry>();

/**
 * The one registry of a store (so the API and the activities of one process share connections and the
 * value cache). Keyed by the store object: each in-process Wharf of the tests gets its own.
 */
export function vaultRegistry(store: Store): VaultRegistry {
  let r = registries.get(store);
  if (!r) registries.set(store, (r = createVaultRegistry(store)));
  return r;
}
