/**
 * HashiCorp Vault (and OpenBao, which keeps its API): a KV secrets engine, v2 or v1, over HTTP. Items
 * are secret paths under the mount, fields their keys. Token auth, or AppRole (`auth/<mount>/login`);
 * a renewable token is renewed with `auth/token/renew-self` once two thirds of its lease have passed, and
 * an AppRole login is repeated when renewal is refused. Enterprise namespaces go in `X-Vault-Namespace`.
 */
import type { HashicorpSettings } from './settings.js';
import {
  VaultError,
  statusProblem,
  vaultFetch,
  type LocalSecretReader,
  type VaultConnection,
  type VaultItemSummary,
} from './types.js';

/** Most secrets listed (each one is read to learn its keys). */
const LIST_LIMIT = 500;

interface Session {
  token: string;
  /** When to renew (ms since epoch); Infinity for a token that does not expire. */
  renewAt: number;
  renewable: boolean;
}

/** Opens a connection to a KV engine of a Vault server. */
export function createHashicorpVault(
  id: string,
  settings: HashicorpSettings,
  readLocal: LocalSecretReader,
): VaultConnection {
  const base = `${settings.address}/v1`;
  const mount = settings.mount;
  let session: Session | null = null;
  let loggingIn: Promise<Session> | null = null;

  const headers = (token?: string): Record<string, string> => ({
    ...(token ? { 'x-vault-token': token } : {}),
    ...(settings.namespace ? { 'x-vault-namespace': settings.namespace } : {}),
  });
  // Vault answers 503 while sealed (and from a standby that cannot forward): its own reason.
  const fail = (status: number, what: string): VaultError =>
    status === 503 ? new VaultError(id, 'sealed', `HTTP 503 for ${what}`) : statusProblem(id, status, what);

  const sessionFrom = (
    auth: { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } | undefined,
    what: string,
  ): Session => {
    if (!auth || typeof auth.client_token !== 'string')
      throw new VaultError(id, 'bad_response', `no client token in the ${what} answer`);
    const lease = Number(auth.lease_duration) || 0;
    return {
      token: auth.client_token,
      renewable: auth.renewable === true,
      renewAt: lease > 0 ? Date.now() + (lease * 1000 * 2) / 3 : Infinity,
    };
  };

  const login = async (): Promise<Session> => {
    if ('token' in settings.auth) {
      const token = await readLocal('auth.token', settings.auth.token);
      const r = await vaultFetch(id, `${base}/auth/token/lookup-self`, { headers: headers(token) });
      if (r.status === 403)
        throw new VaultError(
          id,
          'auth_failed',
          'HTTP 403 for auth/token/lookup-self: the token is invalid, expired or revoked',
        );
      if (r.status !== 200) throw fail(r.status, 'auth/token/lookup-self');
      const data = (r.body as { data?: { ttl?: unknown; renewable?: unknown } })?.data ?? {};
      return sessionFrom({ client_token: token, lease_duration: data.ttl, renewable: data.renewable }, 'token lookup');
    }
    const { roleId, secretId, mount: authMount } = settings.auth;
    const r = await vaultFetch(id, `${base}/auth/${authMount}/login`, {
      method: 'POST',
      headers: headers(),
      body: { role_id: roleId, secret_id: await readLocal('auth.secretId', secretId) },
    });
    if (r.status === 400 || r.status === 403)
      throw new VaultError(
        id,
        'auth_failed',
        `HTTP ${r.status} for auth/${authMount}/login: role_id or secret_id refused`,
      );
    if (r.status !== 200) throw fail(r.status, `auth/${authMount}/login`);
    return sessionFrom((r.body as { auth?: Session & Record<string, unknown> })?.auth, 'AppRole login');
  };

  // One login at a time; a token due for renewal is renewed, and a refused renewal means a new login.
  const token = async (): Promise<string> => {
    if (session && Date.now() >= session.renewAt && session.renewable) {
      const r = await vaultFetch(id, `${base}/auth/token/renew-self`, {
        method: 'POST',
        headers: headers(session.token),
        body: {},
      });
      session = r.status === 200 ? sessionFrom((r.body as { auth?: Record<string, unknown> })?.auth, 'renewal') : null;
    } else if (session && Date.now() >= session.renewAt) {
      session = null;
    }
    if (session) return session.token;
    loggingIn ??= login().finally(() => (loggingIn = null));
    session = await loggingIn;
    return session.token;
  };

  // Every call with the session's token; a 403 drops the session and tries once more with a fresh login
  // (the token may have been revoked or expired early), then reports.
  const call = async (
    method: string,
    path: string,
    what: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> => {
    for (let attempt = 0; ; attempt++) {
      const r = await vaultFetch(id, `${base}/${path}`, { method, headers: headers(await token()), body });
      if (r.status === 403 && attempt === 0) {
        session = null;
        continue;
      }
      if (r.status === 403)
        throw new VaultError(id, 'forbidden', `HTTP 403 for ${what}: the token's policy does not allow it`);
      return r;
    }
  };

  const enc = (p: string): string => p.split('/').map(encodeURIComponent).join('/');
  const dataPath = (item: string): string =>
    settings.kvVersion === 2 ? `${mount}/data/${enc(item)}` : `${mount}/${enc(item)}`;
  const listPath = (prefix: string): string =>
    settings.kvVersion === 2 ? `${mount}/metadata/${enc(prefix)}` : `${mount}/${enc(prefix)}`;
  const checkItem = (item: string): void => {
    if (!item || item.split('/').some((s) => s === '' || s === '.' || s === '..'))
      throw new VaultError(id, 'not_found', `'${item}' is not a secret path`);
  };

  const read = async (item: string): Promise<Record<string, unknown> | null> => {
    checkItem(item);
    const r = await call('GET', dataPath(item), `${mount}/${item}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw fail(r.status, `${mount}/${item}`);
    const data = (r.body as { data?: { data?: unknown } | Record<string, unknown> })?.data;
    const secret = settings.kvVersion === 2 ? (data as { data?: unknown })?.data : data;
    // KV v2 answers 200 with data null for a deleted latest version: the same as absent.
    if (secret === null) return null;
    if (!secret || typeof secret !== 'object')
      throw new VaultError(id, 'bad_response', `no data in the answer for ${mount}/${item}`);
    return secret as Record<string, unknown>;
  };

  const list = async (prefix: string, out: string[]): Promise<void> => {
    if (out.length >= LIST_LIMIT) return;
    let r: { status: number; body: unknown };
    try {
      r = await call('GET', `${listPath(prefix)}?list=true`, `list ${mount}/${prefix}`);
    } catch (err) {
      // A least-privilege policy lists only some folders: the others are left out, not an error.
      if (prefix && err instanceof VaultError && err.problem === 'forbidden') return;
      throw err;
    }
    if (r.status === 404) return; // an empty mount or folder
    if (r.status !== 200) throw fail(r.status, `list ${mount}/${prefix}`);
    const keys = (r.body as { data?: { keys?: unknown } })?.data?.keys;
    if (!Array.isArray(keys))
      throw new VaultError(id, 'bad_response', `no keys in the list answer for ${mount}/${prefix}`);
    for (const k of keys) {
      if (typeof k !== 'string') continue;
      if (k.endsWith('/')) await list(prefix + k, out);
      else if (out.length < LIST_LIMIT) out.push(prefix + k);
    }
  };

  const summary = (item: string, data: Record<string, unknown>): VaultItemSummary => ({
    item,
    name: item,
    fields: Object.keys(data),
  });

  const write = async (item: string, data: Record<string, unknown>): Promise<void> => {
    if (!settings.writable) throw new VaultError(id, 'read_only', 'the connection is not marked writable');
    checkItem(item);
    const r = await call('POST', dataPath(item), `write ${mount}/${item}`, settings.kvVersion === 2 ? { data } : data);
    if (r.status !== 200 && r.status !== 204) throw fail(r.status, `write ${mount}/${item}`);
  };

  return {
    id,
    kind: 'hashicorp',
    async check() {
      await list('', []);
    },
    async listItems() {
      const paths: string[] = [];
      await list('', paths);
      const out: VaultItemSummary[] = [];
      for (const p of paths) {
        const data = await read(p).catch((err: unknown) => {
          if (err instanceof VaultError && err.problem === 'forbidden') return null; // listable, not readable
          throw err;
        });
        if (data) out.push(summary(p, data));
      }
      return out;
    },
    async resolve(item, field) {
      const data = await read(item);
      if (!data) throw new VaultError(id, 'not_found', `no secret at ${mount}/${item}`);
      const v = data[field];
      if (v === undefined) throw new VaultError(id, 'not_found', `${mount}/${item} has no key '${field}'`);
      return typeof v === 'string' ? v : JSON.stringify(v);
    },
    async create({ name, fields }) {
      if (await read(name)) throw new VaultError(id, 'exists', `a secret already exists at ${mount}/${name}`);
      await write(name, fields);
      return summary(name, fields);
    },
    async rotate(item, fields) {
      const current = await read(item);
      if (!current) throw new VaultError(id, 'not_found', `no secret at ${mount}/${item}`);
      const next = { ...current, ...fields };
      await write(item, next);
      return summary(item, next);
    },
    async remove(item) {
      if (!settings.writable) throw new VaultError(id, 'read_only', 'the connection is not marked writable');
      checkItem(item);
      // KV v2: the metadata delete removes every version, which is what "delete the credential" means.
      const r = await call(
        'DELETE',
        settings.kvVersion === 2 ? `${mount}/metadata/${enc(item)}` : dataPath(item),
        `delete ${mount}/${item}`,
      );
      if (r.status !== 204 && r.status !== 200) throw fail(r.status, `delete ${mount}/${item}`);
    },
    close() {
      session = null;
    },
  };
}
