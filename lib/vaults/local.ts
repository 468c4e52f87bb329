/**
 * The built-in `local` vault: items sealed with AES-256-GCM under WHARF_SECRET_KEY in the store
 * (lib/store/store.ts). Writable: items are created, rotated and deleted through the API.
 */
import type { Store } from '../store/store.js';
import { VaultError, type VaultConnection, type VaultItemSummary } from './types.js';

/** Wraps the store's local vault as a {@link VaultConnection}. */
export function createLocalVault(store: Store): VaultConnection {
  const summary = (i: { item: string; name: string; fields: string[] }): VaultItemSummary => ({
    item: i.item,
    name: i.name,
    fields: i.fields,
  });
  return {
    id: 'local',
    kind: 'local',
    async check() {
      await store.vault.list('local');
    },
    async listItems() {
      return (await store.vault.list('local')).map(summary);
    },
    async resolve(item, field) {
      const value = await store.vault.resolve({ vault: 'local', item, field });
      if (value === null) throw new VaultError('local', 'not_found', `no item '${item}' with a field '${field}'`);
      return value;
    },
    async create(input) {
      return summary(await store.vault.createLocal(input));
    },
    async rotate(item, fields) {
      const done = await store.vault.rotateLocal(item, fields);
      if (!done) throw new VaultError('local', 'not_found', `no item '${item}'`);
      return summary(done);
    },
    async remove(item) {
      if (!(await store.vault.removeLocal(item))) throw new VaultError('local', 'not_found', `no item '${item}'`);
    },
  };
}
