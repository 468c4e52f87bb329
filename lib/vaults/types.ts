/**
 * What every vault connection is (SPEC §8): one interface, one file per kind, and one error type whose
 * messages name the vault and say what went wrong in Wharf's own words — never a vendor's body verbatim
 * (it can echo the request) and never a value.
 */

/** The kinds of vault Wharf reads from. `local` always exists; the others are operator connections. */
export const VAULT_KINDS = ['local', 'keepass', 'hashicorp', 'onepassword', 'bitwarden'] as const;
/** A vault kind. */
export type VaultKind = (typeof VAULT_KINDS)[number];

/** One item as listed: its id, a name for people, and its field names — never a value. */
export interface VaultItemSummary {
  item: string;
  name: string;
  fields: string[];
}

/** A connection to one vault. Writing is optional: a connection without `create` is read-only. */
export interface VaultConnection {
  readonly id: string;
  readonly kind: VaultKind;
  /** Reaches the vault, authenticates and lists: what adding a connection checks. Throws {@link VaultError}. */
  check(): Promise<void>;
  /** Items and their field names. */
  listItems(): Promise<VaultItemSummary[]>;
  /** The value of one field of one item, read now. Throws {@link VaultError} (`not_found` when absent). */
  resolve(item: string, field: string): Promise<string>;
  /** Creates an item ("New credential"). */
  create?(input: { name: string; kind: string; fields: Record<string, string> }): Promise<VaultItemSummary>;
  /** Replaces (or adds) fields of an item: rotation. */
  rotate?(item: string, fields: Record<string, string>): Promise<VaultItemSummary>;
  /** Deletes an item. */
  remove?(item: string): Promise<void>;
  /** Drops whatever the connection holds in memory (sessions, an opened database). */
  close?(): void;
}

/** Why a vault could not answer. `retryable` problems are expected to clear up on their own. */
export const VAULT_PROBLEMS = {
  unreachable: { retryable: true, says: 'unreachable' },
  sealed: { retryable: true, says: 'is sealed or unavailable' },
  auth_failed: { retryable: true, says: "refused Wharf's credentials" },
  forbidden: { retryable: true, says: 'denied access' },
  not_found: { retryable: true, says: 'has no such item or field' },
  bad_config: { retryable: false, says: 'is misconfigured' },
  bad_response: { retryable: true, says: 'gave an answer Wharf cannot read' },
  read_only: { retryable: false, says: 'is read-only in Wharf' },
  exists: { retryable: false, says: 'already has that item' },
} as const;
/** A vault problem code. */
export type VaultProblem = keyof typeof VAULT_PROBLEMS;

/**
 * A vault failure, safe to show: `vault 'ops' unreachable (ECONNREFUSED)`. `detail` is Wharf's own short
 * description (an error code, an HTTP status, what was looked for), never a vendor's body or a value.
 */
export class VaultError extends Error {
  override readonly name = 'VaultError';
  constructor(
    readonly vault: string,
    readonly problem: VaultProblem,
    readonly detail: string,
  ) {
    super(`vault '${vault}' ${VAULT_PROBLEMS[problem].says} (${detail})`);
  }

  /** Whether trying again later may succeed (the vault comes back, an operator fixes access). */
  get retryable(): boolean {
    return VAULT_PROBLEMS[this.problem].retryable;
  }
}

/** Reads a connection's own secret (a ref into `local`) at the moment it is needed. */
export type LocalSecretReader = (setting: string, ref: unknown) => Promise<string>;

/** How long one HTTP call to a vault may take before it counts as unreachable (ms). */
export const VAULT_HTTP_TIMEOUT_MS = 5000;

/** Describes a network failure by its code only (`ECONNREFUSED`, `timeout`): never a URL or body. */
export function networkDetail(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError')
    return `no answer within ${VAULT_HTTP_TIMEOUT_MS / 1000} s`;
  return e?.cause?.code ?? e?.code ?? e?.cause?.name ?? 'network error';
}

/**
 * One JSON call to a vault's HTTP API. Network failures become `unreachable`; the caller maps statuses
 * (each vendor means different things by 403 or 404). The body is parsed but never quoted in errors.
 */
export async function vaultFetch(
  vault: string,
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method ?? 'GET',
      headers: {
        accept: 'application/json',
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(VAULT_HTTP_TIMEOUT_MS),
      redirect: 'error',
    });
  } catch (err) {
    throw new VaultError(vault, 'unreachable', networkDetail(err));
  }
  const text = await res.text().catch(() => '');
  let body: unknown = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined; // not JSON (a proxy's error page): treated as no body
    }
  }
  return { status: res.status, body };
}

/** Maps an HTTP status nobody handled more specifically to a problem, in Wharf's words. */
export function statusProblem(vault: string, status: number, what: string): VaultError {
  if (status === 401) return new VaultError(vault, 'auth_failed', `HTTP 401 for ${what}`);
  if (status === 403) return new VaultError(vault, 'forbidden', `HTTP 403 for ${what}`);
  if (status === 404) return new VaultError(vault, 'not_found', `HTTP 404 for ${what}`);
  if (status === 429 || status >= 500) return new VaultError(vault, 'unreachable', `HTTP ${status} for ${what}`);
  return new VaultError(vault, 'bad_response', `HTTP ${status} for ${what}`);
}
