/**
 * A fake of the Bitwarden CLI's `bw serve` Vault Management API, built from its published OpenAPI
 * description: `GET /status`, `POST /lock`, `POST /unlock {password}`, `GET /list/object/items`,
 * `GET|PUT|DELETE /object/item/{id}`, `POST /object/item`; answers `{success, data}` or
 * `{success: false, message}`. While locked, vault calls answer 400 "Vault is locked."
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  startRestartableServer,
  type FakeAnswer,
  type FakeRequest,
  type RestartableServer,
} from './restartable-server.js';

/** A running fake `bw serve`. */
export interface FakeBitwarden extends RestartableServer {
  /** Adds a login item with a username, a password and custom hidden fields; returns its id. */
  addLogin(name: string, login: { username?: string; password?: string }, fields?: Record<string, string>): string;
  /** Sets a custom field (or `password`) directly, as an edit in the Bitwarden app would. */
  setField(id: string, name: string, value: string): void;
  lock(): void;
  /** How many unlocks were attempted. */
  unlocks: number;
}

interface Item {
  object: 'item';
  id: string;
  organizationId: null;
  folderId: null;
  type: number;
  reprompt: number;
  name: string;
  notes: string | null;
  favorite: boolean;
  fields: Array<{ name: string; value: string | null; type: number; linkedId: null }>;
  login: {
    uris: Array<{ match: null; uri: string }>;
    username: string | null;
    password: string | null;
    totp: string | null;
    passwordRevisionDate: string | null;
  } | null;
  collectionIds: string[];
  revisionDate: string;
  creationDate: string;
  deletedDate: null;
}

/** Starts a fake `bw serve` whose master password is `masterPassword`; it starts locked. */
export async function startFakeBitwarden(masterPassword: string): Promise<FakeBitwarden> {
  const items = new Map<string, Item>();
  let unlocked = false;
  const state = { unlocks: 0 };
  const fail = (status: number, message: string): FakeAnswer => ({ status, body: { success: false, message } });
  const ok = (data?: unknown): FakeAnswer => ({
    status: 200,
    body: data === undefined ? { success: true } : { success: true, data },
  });
  const normalize = (b: Partial<Item>, base?: Item): Item => {
    const now = new Date().toISOString();
    return {
      object: 'item',
      id: base?.id ?? randomUUID(),
      organizationId: null,
      folderId: null,
      type: b.type ?? base?.type ?? 1,
      reprompt: 0,
      name: b.name ?? base?.name ?? '',
      notes: b.notes ?? null,
      favorite: false,
      fields: (b.fields ?? []).map((f) => ({
        name: f.name,
        value: f.value ?? null,
        type: f.type ?? 0,
        linkedId: null,
      })),
      login: b.login
        ? {
            uris: (b.login.uris ?? []).map((u) => ({ match: null, uri: u.uri })),
            username: b.login.username ?? null,
            password: b.login.password ?? null,
            totp: b.login.totp ?? null,
            passwordRevisionDate: null,
          }
        : null,
      collectionIds: [],
      revisionDate: now,
      creationDate: base?.creationDate ?? now,
      deletedDate: null,
    };
  };

  const handle = (req: FakeRequest): FakeAnswer => {
    if (req.path === '/status' && req.method === 'GET') {
      return ok({
        object: 'template',
        template: {
          serverUrl: 'https://vault.example',
          lastSync: new Date().toISOString(),
          userEmail: 'ops@example.com',
          status: unlocked ? 'unlocked' : 'locked',
        },
      });
    }
    if (req.path === '/unlock' && req.method === 'POST') {
      state.unlocks++;
      if ((req.body as { password?: string })?.password !== masterPassword)
        return fail(400, 'Invalid master password.');
      unlocked = true;
      return ok({
        noColor: false,
        object: 'message',
        title: 'Your vault is now unlocked!',
        message: 'export BW_SESSION=…',
        raw: randomBytes(32).toString('base64'),
      });
    }
    if (req.path === '/lock' && req.method === 'POST') {
      unlocked = false;
      return ok({ noColor: false, object: 'message', title: 'Your vault is locked.', message: null });
    }
    if (!unlocked) return fail(400, 'Vault is locked.');
    if (req.path === '/list/object/items' && req.method === 'GET')
      return ok({ object: 'list', data: [...items.values()] });
    if (req.path === '/object/item' && req.method === 'POST') {
      const item = normalize((req.body ?? {}) as Partial<Item>);
      items.set(item.id, item);
      return ok(item);
    }
    const m = /^\/object\/item\/([^/]+)$/.exec(req.path);
    if (!m) return fail(404, 'Not found.');
    const item = items.get(m[1]);
    if (!item) return fail(404, 'Not found.');
    if (req.method === 'GET') return ok(item);
    if (req.method === 'PUT') {
      const next = normalize((req.body ?? {}) as Partial<Item>, item);
      items.set(item.id, next);
      return ok(next);
    }
    if (req.method === 'DELETE') {
      items.delete(item.id);
      return ok();
    }
    return fail(405, 'Method not allowed.');
  };

  const server = await startRestartableServer(handle);
  return {
    ...server,
    get unlocks() {
      return state.unlocks;
    },
    addLogin(name, login, fields = {}) {
      const item = normalize({
        type: 1,
        name,
        login: {
          username: login.username ?? null,
          password: login.password ?? null,
          uris: [],
          totp: null,
          passwordRevisionDate: null,
        },
        fields: Object.entries(fields).map(([n, value]) => ({ name: n, value, type: 1, linkedId: null })),
      });
      items.set(item.id, item);
      return item.id;
    },
    setField(id, name, value) {
      const item = items.get(id)!;
      if (name === 'password' && item.login) item.login.password = value;
      else item.fields.find((f) => f.name === name)!.value = value;
    },
    lock() {
      unlocked = false;
    },
  };
}
