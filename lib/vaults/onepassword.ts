/**
 * 1Password through a Connect server (its REST API: `GET /v1/vaults`, `/v1/vaults/{id}/items`,
 * `/v1/vaults/{id}/items/{itemId}`, bearer token). Items are `<vaultId>/<itemId>`, fields the item's
 * field labels (a field's id works too). The service-account SDK is not used: it needs 1Password's
 * servers on the internet, where a Connect server runs beside Wharf.
 */
import type { OnePasswordSettings } from './settings.js';
import {
  VaultError,
  statusProblem,
  vaultFetch,
  type LocalSecretReader,
  type VaultConnection,
  type VaultItemSummary,
} from './types.js';

interface OpField {
  id: string;
  label?: string;
  value?: string;
  type?: string;
  purpose?: string;
}
interface OpItem {
  id: string;
  title?: string;
  category?: string;
  vault?: { id: string };
  fields?: OpField[];
  [k: string]: unknown;
}

/** Opens a connection to a 1Password Connect server. */
export function createOnePasswordVault(
  id: string,
  settings: OnePasswordSettings,
  readLocal: LocalSecretReader,
): VaultConnection {
  const call = async (
    method: string,
    path: string,
    what: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> => {
    const token = await readLocal('token', settings.token);
    const r = await vaultFetch(id, `${settings.connectUrl}/v1/${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
      body,
    });
    if (r.status === 401)
      throw new VaultError(id, 'auth_failed', `HTTP 401 for ${what}: the Connect token is invalid or revoked`);
    if (r.status === 403)
      throw new VaultError(id, 'forbidden', `HTTP 403 for ${what}: the Connect token has no access to that vault`);
    return r;
  };
  const split = (item: string): [string, string] => {
    const m = /^([A-Za-z0-9]+)\/([A-Za-z0-9]+)$/.exec(item);
    if (!m) throw new VaultError(id, 'not_found', `'${item}' is not a <vault>/<item> id`);
    return [m[1], m[2]];
  };
  const fieldName = (f: OpField): string => f.label || f.id;

  const getItem = async (item: string): Promise<OpItem | null> => {
    const [v, i] = split(item);
    const r = await call('GET', `vaults/${v}/items/${i}`, `item ${item}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw statusProblem(id, r.status, `item ${item}`);
    const body = r.body as OpItem;
    if (!body || typeof body.id !== 'string')
      throw new VaultError(id, 'bad_response', `no item in the answer for ${item}`);
    return body;
  };
  const summary = (vaultId: string, it: OpItem): VaultItemSummary => ({
    item: `${vaultId}/${it.id}`,
    name: it.title ?? it.id,
    fields: (it.fields ?? []).filter((f) => f.value !== undefined).map(fieldName),
  });
  const vaults = async (): Promise<string[]> => {
    const r = await call('GET', 'vaults', 'the vault list');
    if (r.status !== 200) throw statusProblem(id, r.status, 'the vault list');
    if (!Array.isArray(r.body)) throw new VaultError(id, 'bad_response', 'the vault list is not a list');
    return (r.body as Array<{ id?: unknown }>).map((v) => v.id).filter((v): v is string => typeof v === 'string');
  };
  const writable = (): void => {
    if (!settings.writable) throw new VaultError(id, 'read_only', 'the connection is not marked writable');
  };

  return {
    id,
    kind: 'onepassword',
    async check() {
      await vaults();
    },
    async listItems() {
      const out: VaultItemSummary[] = [];
      for (const v of await vaults()) {
        const r = await call('GET', `vaults/${v}/items`, `items of vault ${v}`);
        if (r.status !== 200) throw statusProblem(id, r.status, `items of vault ${v}`);
        if (!Array.isArray(r.body)) throw new VaultError(id, 'bad_response', `the items of vault ${v} are not a list`);
        // The list carries no fields: each item is read for its field names (values are dropped here).
        for (const s of r.body as OpItem[]) {
          const it = await getItem(`${v}/${s.id}`);
          if (it) out.push(summary(v, it));
        }
      }
      return out;
    },
    async resolve(item, field) {
      const it = await getItem(item);
      if (!it) throw new VaultError(id, 'not_found', `no item ${item}`);
      const f = (it.fields ?? []).find((x) => x.label === field) ?? (it.fields ?? []).find((x) => x.id === field);
      if (!f || f.value === undefined) throw new VaultError(id, 'not_found', `item ${item} has no field '${field}'`);
      return f.value;
    },
    async create({ name, fields }) {
      writable();
      const [v] = await vaults();
      if (!v) throw new VaultError(id, 'forbidden', 'the Connect token sees no vault');
      const body = {
        vault: { id: v },
        title: name,
        category: 'API_CREDENTIAL',
        fields: Object.entries(fields).map(([label, value]) => ({ label, value, type: 'CONCEALED' })),
      };
      const r = await call('POST', `vaults/${v}/items`, `new item in vault ${v}`, body);
      if (r.status !== 200 && r.status !== 201) throw statusProblem(id, r.status, `new item in vault ${v}`);
      return summary(v, r.body as OpItem);
    },
    async rotate(item, fields) {
      writable();
      const it = await getItem(item);
      if (!it) throw new VaultError(id, 'not_found', `no item ${item}`);
      const [v, i] = split(item);
      const next: OpField[] = [...(it.fields ?? [])];
      for (const [label, value] of Object.entries(fields)) {
        const at = next.findIndex((f) => f.label === label || f.id === label);
        if (at >= 0) next[at] = { ...next[at], value };
        else next.push({ id: label, label, value, type: 'CONCEALED' });
      }
      // PUT replaces the whole item: everything read is sent back, with the new values.
      const r = await call('PUT', `vaults/${v}/items/${i}`, `item ${item}`, { ...it, fields: next });
      if (r.status !== 200) throw statusProblem(id, r.status, `item ${item}`);
      return summary(v, r.body as OpItem);
    },
    async remove(item) {
      writable();
      const [v, i] = split(item);
      const r = await call('DELETE', `vaults/${v}/items/${i}`, `item ${item}`);
      if (r.status !== 204 && r.status !== 200) throw statusProblem(id, r.status, `item ${item}`);
    },
  };
}
