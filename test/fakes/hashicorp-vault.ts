/**
 * A fake HashiCorp Vault server, built from Vault's HTTP API documentation because no `vault` or
 * `openbao` binary can be installed from the registries reachable here (Debian bookworm has neither
 * package; no npm/PyPI package ships the server). It serves what Wharf uses, with Vault's shapes:
 * KV v2 (`GET|POST /v1/<mount>/data/<path>`, `LIST /v1/<mount>/metadata/<path>` also as `GET ?list=true`,
 * `DELETE /v1/<mount>/metadata/<path>`), KV v1 (`/v1/<mount>/<path>`), `auth/token/lookup-self`,
 * `auth/token/renew-self`, `auth/approle/login`, `X-Vault-Token`, `X-Vault-Namespace`, errors as
 * `{"errors": [...]}` with 400 (bad AppRole credentials), 403 (permission denied: unknown, expired or
 * revoked token, or a policy without the capability), 404 (`{"errors": []}`) and 503 while sealed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  startRestartableServer,
  type FakeAnswer,
  type FakeRequest,
  type RestartableServer,
} from './restartable-server.js';

/** A token the fake accepts. */
export interface FakeVaultToken {
  /** Seconds until it expires; 0 = never (root-like). */
  ttl?: number;
  renewable?: boolean;
  /** May write (create/update/delete) as well as read and list. */
  write?: boolean;
  /** The namespace it lives in ('' = root). */
  namespace?: string;
}

/** A running fake Vault. */
export interface FakeVault extends RestartableServer {
  /** Mounts a KV engine. */
  mount(path: string, version: 1 | 2, namespace?: string): void;
  /** Writes a secret directly, as an operator would in the Vault UI or CLI. */
  put(mount: string, path: string, data: Record<string, string>, namespace?: string): void;
  addToken(token: string, spec?: FakeVaultToken): void;
  revokeToken(token: string): void;
  /** An AppRole: `roleId` + `secretId` log in to a token with `spec`. */
  addAppRole(roleId: string, secretId: string, spec?: FakeVaultToken): void;
  seal(): void;
  unseal(): void;
  /** How many times each auth endpoint was called. */
  counts: { login: number; renew: number; lookup: number };
}

interface Token extends Required<FakeVaultToken> {
  expiresAt: number;
}
interface Secret {
  data: Record<string, string> | null;
  version: number;
  created: string;
}

/** Starts a fake Vault, unsealed, with no mounts. */
export async function startFakeVault(): Promise<FakeVault> {
  const mounts = new Map<string, { version: 1 | 2; secrets: Map<string, Secret> }>(); // key: `${ns}|${path}`
  const tokens = new Map<string, Token>();
  const roles = new Map<string, { secretId: string; spec: FakeVaultToken }>();
  const counts = { login: 0, renew: 0, lookup: 0 };
  let sealed = false;

  const errors = (status: number, ...list: string[]): FakeAnswer => ({ status, body: { errors: list } });
  const denied = (): FakeAnswer => errors(403, 'permission denied');
  const envelope = (data: unknown, auth: unknown = null): unknown => ({
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: null,
    auth,
  });
  const issue = (spec: FakeVaultToken = {}): { token: string; t: Token } => {
    const token = 'hvs.' + randomBytes(18).toString('base64url');
    const t = newToken(spec);
    tokens.set(token, t);
    return { token, t };
  };
  const newToken = (spec: FakeVaultToken): Token => ({
    ttl: spec.ttl ?? 0,
    renewable: spec.renewable ?? false,
    write: spec.write ?? false,
    namespace: spec.namespace ?? '',
    expiresAt: spec.ttl ? Date.now() + spec.ttl * 1000 : Infinity,
  });
  const authBlock = (token: string, t: Token): unknown => ({
    client_token: token,
    accessor: randomBytes(8).toString('hex'),
    policies: ['default', t.write ? 'wharf-write' : 'wharf-read'],
    token_policies: ['default', t.write ? 'wharf-write' : 'wharf-read'],
    lease_duration: t.ttl,
    renewable: t.renewable,
    entity_id: '',
    token_type: 'service',
    orphan: true,
  });

  const handle = (req: FakeRequest): FakeAnswer => {
    if (sealed) return errors(503, 'Vault is sealed');
    const ns = String(req.headers['x-vault-namespace'] ?? '').replace(/^\/+|\/+$/g, '');
    const path = req.path.replace(/^\/v1\//, '');
    if (!req.path.startsWith('/v1/')) return errors(404);

    const login = /^auth\/([^/]+)\/login$/.exec(path);
    if (login && req.method === 'POST') {
      counts.login++;
      const b = (req.body ?? {}) as { role_id?: string; secret_id?: string };
      const role = roles.get(String(b.role_id));
      if (!role || role.secretId !== b.secret_id || (role.spec.namespace ?? '') !== ns)
        return errors(400, 'invalid role or secret ID');
      const { token, t } = issue(role.spec);
      return {
        status: 200,
        body: envelope(null, { ...(authBlock(token, t) as object), metadata: { role_name: 'wharf' } }),
      };
    }

    const token = String(req.headers['x-vault-token'] ?? '');
    const t = tokens.get(token);
    if (!t || t.expiresAt <= Date.now() || t.namespace !== ns) return denied();

    if (path === 'auth/token/lookup-self' && req.method === 'GET') {
      counts.lookup++;
      const ttl = t.expiresAt === Infinity ? 0 : Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000));
      return {
        status: 200,
        body: envelope({
          ttl,
          renewable: t.renewable,
          policies: ['default'],
          type: 'service',
          namespace_path: ns ? `${ns}/` : '',
        }),
      };
    }
    if (path === 'auth/token/renew-self' && (req.method === 'POST' || req.method === 'PUT')) {
      counts.renew++;
      if (!t.renewable) return errors(400, 'lease is not renewable');
      t.expiresAt = Date.now() + t.ttl * 1000;
      return { status: 200, body: envelope(null, authBlock(token, t)) };
    }

    // The KV engine: the longest mount that prefixes the path.
    const mountPath = [...mounts.keys()]
      .filter((k) => k.startsWith(`${ns}|`))
      .map((k) => k.slice(ns.length + 1))
      .filter((m) => path === m || path.startsWith(`${m}/`))
      .sort((a, b) => b.length - a.length)[0];
    if (mountPath === undefined) return denied(); // Vault: no such route is "permission denied" for non-root tokens
    const kv = mounts.get(`${ns}|${mountPath}`)!;
    let rest = path.slice(mountPath.length + 1);
    const isList = req.method === 'LIST' || (req.method === 'GET' && req.query.get('list') === 'true');
    let section: 'data' | 'metadata' | null = null;
    if (kv.version === 2) {
      const m = /^(data|metadata)\/?(.*)$/.exec(rest);
      if (!m) return errors(404);
      section = m[1] as 'data' | 'metadata';
      rest = m[2];
    }
    const write = req.method === 'POST' || req.method === 'PUT' || req.method === 'DELETE';
    if (write && !t.write) return denied();

    if (isList) {
      if (kv.version === 2 && section !== 'metadata') return errors(405);
      const prefix = rest && !rest.endsWith('/') ? `${rest}/` : rest;
      const keys = new Set<string>();
      for (const [p, s] of kv.secrets) {
        if (!s.data || !p.startsWith(prefix)) continue;
        const tail = p.slice(prefix.length);
        keys.add(tail.includes('/') ? tail.slice(0, tail.indexOf('/') + 1) : tail);
      }
      if (!keys.size) return errors(404);
      return { status: 200, body: envelope({ keys: [...keys].sort() }) };
    }
    const existing = kv.secrets.get(rest);
    if (req.method === 'GET') {
      if (!existing || (kv.version === 1 && !existing.data)) return errors(404);
      if (kv.version === 1) return { status: 200, body: envelope(existing.data) };
      return {
        status: existing.data ? 200 : 404,
        body: envelope({
          data: existing.data,
          metadata: {
            created_time: existing.created,
            custom_metadata: null,
            deletion_time: '',
            destroyed: false,
            version: existing.version,
          },
        }),
      };
    }
    if (req.method === 'POST' || req.method === 'PUT') {
      const body = (req.body ?? {}) as { data?: Record<string, string>; options?: { cas?: number } };
      const data = kv.version === 2 ? body.data : (req.body as Record<string, string>);
      if (!data || typeof data !== 'object') return errors(400, 'no data provided');
      if (kv.version === 2 && body.options?.cas !== undefined && body.options.cas !== (existing?.version ?? 0)) {
        return errors(400, 'check-and-set parameter did not match the current version');
      }
      const version = (existing?.version ?? 0) + 1;
      const created = new Date().toISOString();
      kv.secrets.set(rest, { data: { ...data }, version, created });
      if (kv.version === 1) return { status: 204 };
      return {
        status: 200,
        body: envelope({ created_time: created, custom_metadata: null, deletion_time: '', destroyed: false, version }),
      };
    }
    if (req.method === 'DELETE') {
      kv.secrets.delete(rest);
      return { status: 204 };
    }
    return errors(405);
  };

  const server = await startRestartableServer(handle);
  return {
    ...server,
    counts,
    mount(path, version, namespace = '') {
      mounts.set(`${namespace}|${path}`, { version, secrets: new Map() });
    },
    put(mount, path, data, namespace = '') {
      const kv = mounts.get(`${namespace}|${mount}`);
      if (!kv) throw new Error(`no mount ${mount}`);
      const existing = kv.secrets.get(path);
      kv.secrets.set(path, {
        data: { ...data },
        version: (existing?.version ?? 0) + 1,
        created: new Date().toISOString(),
      });
    },
    addToken(token, spec = {}) {
      tokens.set(token, newToken(spec));
    },
    revokeToken(token) {
      tokens.delete(token);
    },
    addAppRole(roleId, secretId, spec = {}) {
      roles.set(roleId, { secretId, spec });
    },
    seal() {
      sealed = true;
    },
    unseal() {
      sealed = false;
    },
  };
}
