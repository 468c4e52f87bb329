/**
 * Who refers to a vault or an item: channel configs, agents (their apiKey) and other connections (their
 * own secret lives in `local`). Deleting something still referred to is refused with these names.
 */
import type { Store } from '../store/store.js';
import type { CredentialRef } from '../types.js';
import { settingsRefs } from './settings.js';

const isRef = (v: unknown): v is CredentialRef =>
  !!v &&
  typeof v === 'object' &&
  typeof (v as CredentialRef).vault === 'string' &&
  typeof (v as CredentialRef).item === 'string';

/**
 * Names what refers to `vault` (any item) or to one of `items` in it (an item's id and name both count:
 * local refs may use either). Returns e.g. `channel ch_1 (access_token)`.
 */
export async function findReferences(store: Store, vault: string, items?: string[]): Promise<string[]> {
  const hits = (ref: unknown): boolean => isRef(ref) && ref.vault === vault && (!items || items.includes(ref.item));
  const out: string[] = [];
  const channels = await store.channels.configs();
  for (const c of channels)
    for (const [field, v] of Object.entries(c.config ?? {})) if (hits(v)) out.push(`channel ${c.id} (${field})`);
  for (const a of await store.agents.list())
    for (const [field, v] of Object.entries(a.config)) if (hits(v)) out.push(`agent ${a.id} (${field})`);
  for (const c of await store.vaultConnections.list()) {
    if (c.id === vault && !items) continue;
    if (settingsRefs(c.settings).some(hits)) out.push(`vault connection ${c.id}`);
  }
  return out;
}
