/**
 * A fake 1Password Connect server, built from 1Password's published Connect API (v1): bearer-token
 * auth; `GET /v1/vaults`; `GET|POST /v1/vaults/{vaultId}/items` (the list without fields);
 * `GET|PUT|DELETE /v1/vaults/{vaultId}/items/{itemId}` (full items with `fields: [{id, type, purpose,
 * label, value}]`); errors as `{status, message}` — 401 for a bad token, 403 for a vault the token may
 * not see, 404 for what does not exist.
 */
import { randomBytes } from 'node:crypto';
import {
  startRestartableServer,
  type FakeAnswer,
  type FakeRequest,
  type RestartableServer,
} from './restartable-server.js';

/** A field of a Connect item. */
export interface FakeOpField {
  id: string;
  type: 'STRING' | 'CONCEALED' | 'URL';
  purpose?: 'USERNAME' | 'PASSWORD' | 'NOTES';
  label: string;
  value?: string;
}

/** A running fake Connect server. */
export interface FakeConnect extends RestartableServer {
  /** Adds a vault; returns its id. */
  addVault(name: string): string;
  /** Adds an item with `fields` (label → value, all concealed); returns its id. */
  addItem(vaultId: string, title: string, fields: Record<string, string>): string;
  /** Sets a field's value directly, as someone editing the item in 1Password would. */
  setField(vaultId: string, itemId: string, label: string, value: string): void;
  /** A token that sees `vaults` (ids), read-only unless `write`. */
  addToken(token: string, vaults: string[], write?: boolean): void;
  revokeToken(token: string): void;
}

interface Item {
  id: string;
  title: string;
  vault: { id: string };
  category: string;
  version: number;
  fields: FakeOpField[];
  createdAt: string;
  updatedAt: string;
}

const newId = (): string =>
  randomBytes(16)
    .toString('hex')
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 26);

/** Starts a fake Connect server. */
export async function startFakeConnect(): Promise<FakeConnect> {
  const vaults = new Map<string, { id: string; name: string; items: Map<string, Item> }>();
  const tokens = new Map<string, { vaults: string[]; write: boolean }>();
  const err = (status: number, message: string): FakeAnswer => ({ status, body: { status, message } });
  const summary = (i: Item) => ({
    id: i.id,
    title: i.title,
    vault: i.vault,
    category: i.category,
    version: i.version,
    createdAt: i.createdAt,
    updatedAt: i.updatedAt,
  });
  const fieldsFrom = (input: unknown): FakeOpField[] =>
    (Array.isArray(input) ? input : []).map((f: Partial<FakeOpField>) => ({
      id: f.id ?? newId(),
      type: f.type ?? 'STRING',
      ...(f.purpose ? { purpose: f.purpose } : {}),
      label: f.label ?? '',
      ...(f.value !== undefined ? { value: f.value } : {}),
    }));

  const handle = (req: FakeRequest): FakeAnswer => {
    if (req.path === '/heartbeat') return { status: 200, body: '.' };
    const m = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
    const tok = m ? tokens.get(m[1]) : undefined;
    if (!tok) return err(401, 'Invalid token signature');
    if (req.path === '/v1/vaults' && req.method === 'GET') {
      return {
        status: 200,
        body: [...vaults.values()]
          .filter((v) => tok.vaults.includes(v.id))
          .map((v) => ({ id: v.id, name: v.name, type: 'USER_CREATED', items: v.items.size })),
      };
    }
    const p = /^\/v1\/vaults\/([^/]+)\/items(?:\/([^/]+))?$/.exec(req.path);
    if (!p) return err(404, 'Not found');
    const vault = vaults.get(p[1]);
    if (!vault || !tok.vaults.includes(vault.id)) return err(403, 'Authorization: Access denied');
    if (req.method !== 'GET' && !tok.write) return err(403, 'Authorization: Access denied');
    const now = new Date().toISOString();
    if (!p[2]) {
      if (req.method === 'GET') return { status: 200, body: [...vault.items.values()].map(summary) };
      if (req.method === 'POST') {
        const b = (req.body ?? {}) as Partial<Item>;
        if (!b.title) return err(400, 'Invalid item: title is required');
        const item: Item = {
          id: newId(),
          title: b.title,
          vault: { id: vault.id },
          category: b.category ?? 'LOGIN',
          version: 1,
          fields: fieldsFrom(b.fields),
          createdAt: now,
          updatedAt: now,
        };
        vault.items.set(item.id, item);
        return { status: 200, body: item };
      }
      return err(405, 'Method not allowed');
    }
    const item = vault.items.get(p[2]);
    if (!item) return err(404, 'item not found');
    if (req.method === 'GET') return { status: 200, body: item };
    if (req.method === 'PUT') {
      const b = (req.body ?? {}) as Partial<Item>;
      if (b.id !== undefined && b.id !== item.id) return err(400, 'Invalid item: id does not match');
      Object.assign(item, {
        title: b.title ?? item.title,
        fields: fieldsFrom(b.fields),
        version: item.version + 1,
        updatedAt: now,
      });
      return { status: 200, body: item };
    }
    if (req.method === 'DELETE') {
      vault.items.delete(item.id);
      return { status: 204 };
    }
    return err(405, 'Method not allowed');
  };

  const server = await startRestartableServer(handle);
  return {
    ...server,
    addVault(name) {
      const id = newId();
      vaults.set(id, { id, name, items: new Map() });
      return id;
    },
    addItem(vaultId, title, fields) {
      const now = new Date().toISOString();
      const item: Item = {
        id: newId(),
        title,
        vault: { id: vaultId },
        category: 'API_CREDENTIAL',
        version: 1,
        fields: Object.entries(fields).map(([label, value]) => ({ id: newId(), type: 'CONCEALED', label, value })),
        createdAt: now,
        updatedAt: now,
      };
      vaults.get(vaultId)!.items.set(item.id, item);
      return item.id;
    },
    setField(vaultId, itemId, label, value) {
      const f = vaults
        .get(vaultId)!
        .items.get(itemId)!
        .fields.find((x) => x.label === label)!;
      f.value = value;
    },
    addToken(token, v, write = false) {
      tokens.set(token, { vaults: v, write });
    },
    revokeToken(token) {
      tokens.delete(token);
    },
  };
}
