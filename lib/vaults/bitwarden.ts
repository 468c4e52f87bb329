/**
 * Bitwarden through the Vault Management API of `bw serve` (the official CLI's local REST server):
 * `GET /status`, `POST /unlock`, `GET /list/object/items`, `GET|PUT|DELETE /object/item/{id}`,
 * `POST /object/item`. Items are vault items by id; fields are `username`, `password`, `totp`, `uri`,
 * `notes` and the item's custom fields by name. A locked vault is unlocked with the master password (a
 * ref into `local`) when one is configured. Why `bw serve` and not Secrets Manager: see docs/vaults.md.
 */
import type { BitwardenSettings } from './settings.js';
import {
  VaultError,
  statusProblem,
  vaultFetch,
  type LocalSecretReader,
  type VaultConnection,
  type VaultItemSummary,
} from './types.js';

interface BwItem {
  id: string;
  name?: string;
  type?: number;
  notes?: string | null;
  login?: {
    username?: string | null;
    password?: string | null;
    totp?: string | null;
    uris?: Array<{ uri?: string | null }> | null;
  } | null;
  fields?: Array<{ name?: string | null; value?: string | null; type?: number }> | null;
  [k: string]: unknown;
}
type BwAnswer = { success?: boolean; message?: string; data?: unknown };

/** The fields of an item that hold a value, by name. */
function itemFields(it: BwItem): Map<string, string> {
  const out = new Map<string, string>();
  const put = (k: string, v: string | null | undefined): void => {
    if (typeof v === 'string') out.set(k, v);
  };
  put('username', it.login?.username);
  put('password', it.login?.password);
  put('totp', it.login?.totp);
  put('uri', it.login?.uris?.[0]?.uri);
  put('notes', it.notes);
  for (const f of it.fields ?? []) if (f.name) put(f.name, f.value);
  return out;
}

/** Opens a connection to a `bw serve` Vault Management API. */
export function createBitwardenVault(
  id: string,
  settings: BitwardenSettings,
  readLocal: LocalSecretReader,
): VaultConnection {
  const raw = async (
    method: string,
    path: string,
    what: string,
    body?: unknown,
  ): Promise<{ status: number; body: BwAnswer }> => {
    const r = await vaultFetch(id, `${settings.url}${path}`, { method, body });
    if (r.status >= 500) throw statusProblem(id, r.status, what);
    return { status: r.status, body: (r.body ?? {}) as BwAnswer };
  };
  const unlock = async (): Promise<void> => {
    if (!settings.password)
      throw new VaultError(
        id,
        'auth_failed',
        'bw serve is locked and the connection has no master password to unlock it',
      );
    const r = await raw('POST', '/unlock', 'unlock', { password: await readLocal('password', settings.password) });
    if (r.status !== 200 || r.body.success !== true)
      throw new VaultError(id, 'auth_failed', `unlock refused (HTTP ${r.status}): wrong master password?`);
  };
  // A locked vault answers with a "locked" message: unlock once and repeat the call.
  const call = async (
    method: string,
    path: string,
    what: string,
    body?: unknown,
  ): Promise<{ status: number; body: BwAnswer }> => {
    let r = await raw(method, path, what, body);
    if (r.body.success === false && /locked/i.test(String(r.body.message ?? ''))) {
      await unlock();
      r = await raw(method, path, what, body);
    }
    if (r.body.success === false && /locked|not logged in|unauthenticated/i.test(String(r.body.message ?? ''))) {
      throw new VaultError(id, 'auth_failed', `bw serve is locked or logged out (${what})`);
    }
    return r;
  };
  const getItem = async (item: string): Promise<BwItem | null> => {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(item)) throw new VaultError(id, 'not_found', `'${item}' is not an item id`);
    const r = await call('GET', `/object/item/${item}`, `item ${item}`);
    if (r.status === 404 || (r.body.success === false && /not found/i.test(String(r.body.message ?? '')))) return null;
    if (r.status !== 200 || r.body.success !== true)
      throw statusProblem(id, r.status === 200 ? 502 : r.status, `item ${item}`);
    const it = r.body.data as BwItem;
    if (!it || typeof it.id !== 'string') throw new VaultError(id, 'bad_response', `no item in the answer for ${item}`);
    return it;
  };
  const summary = (it: BwItem): VaultItemSummary => ({
    item: it.id,
    name: it.name ?? it.id,
    fields: [...itemFields(it).keys()],
  });
  const writable = (): void => {
    if (!settings.writable) throw new VaultError(id, 'read_only', 'the connection is not marked writable');
  };
  const list = async (): Promise<BwItem[]> => {
    const r = await call('GET', '/list/object/items', 'the item list');
    if (r.status !== 200 || r.body.success !== true)
      throw statusProblem(id, r.status === 200 ? 502 : r.status, 'the item list');
    const data = (r.body.data as { data?: unknown })?.data;
    if (!Array.isArray(data)) throw new VaultError(id, 'bad_response', 'the item list is not a list');
    return data as BwItem[];
  };

  return {
    id,
    kind: 'bitwarden',
    async check() {
      // The master password is tried even when bw serve is unlocked already: a wrong one would otherwise
      // go unnoticed until the next lock.
      if (settings.password) await unlock();
      await list();
    },
    async listItems() {
      return (await list()).map(summary);
    },
    async resolve(item, field) {
      const it = await getItem(item);
      if (!it) throw new VaultError(id, 'not_found', `no item ${item}`);
      const v = itemFields(it).get(field);
      if (v === undefined) throw new VaultError(id, 'not_found', `item ${item} has no field '${field}'`);
      return v;
    },
    async create({ name, fields }) {
      writable();
      // A login item (type 1): `username`/`password` go to the login, the rest to custom hidden fields.
      const { username, password, ...custom } = fields;
      const body = {
        type: 1,
        name,
        notes: null,
        login: { username: username ?? null, password: password ?? null, uris: [] },
        fields: Object.entries(custom).map(([n, value]) => ({ name: n, value, type: 1 })),
      };
      const r = await call('POST', '/object/item', 'new item', body);
      if (r.status !== 200 || r.body.success !== true)
        throw statusProblem(id, r.status === 200 ? 502 : r.status, 'new item');
      return summary(r.body.data as BwItem);
    },
    async rotate(item, fields) {
      writable();
      const it = await getItem(item);
      if (!it) throw new VaultError(id, 'not_found', `no item ${item}`);
      const next: BwItem = { ...it, login: it.login ? { ...it.login } : it.login, fields: [...(it.fields ?? [])] };
      for (const [k, value] of Object.entries(fields)) {
        if ((k === 'username' || k === 'password' || k === 'totp') && next.login) next.login[k] = value;
        else if (k === 'notes') next.notes = value;
        else {
          const at = next.fields!.findIndex((f) => f.name === k);
          if (at >= 0) next.fields![at] = { ...next.fields![at], value };
          else next.fields!.push({ name: k, value, type: 1 });
        }
      }
      const r = await call('PUT', `/object/item/${it.id}`, `item ${item}`, next);
      if (r.status !== 200 || r.body.success !== true)
        throw statusProblem(id, r.status === 200 ? 502 : r.status, `item ${item}`);
      return summary(r.body.data as BwItem);
    },
    async remove(item) {
      writable();
      if (!(await getItem(item))) throw new VaultError(id, 'not_found', `no item ${item}`);
      const r = await call('DELETE', `/object/item/${item}`, `item ${item}`);
      if (r.status !== 200 || r.body.success !== true)
        throw statusProblem(id, r.status === 200 ? 502 : r.status, `item ${item}`);
    },
  };
}
