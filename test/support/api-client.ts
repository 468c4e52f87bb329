/**
 * The tests' HTTP client for a Wharf API: the admin token unless `auth: false`, JSON bodies, and answers
 * parsed as JSON when they are JSON (else the text). One home for the in-process, spawned and cluster Wharfs.
 * Plain `fetch` and no vitest: `npm run bench` compiles the cluster helpers that use it.
 */

/** Calls one API route; `data` is loosely typed because tests read JSON answers field by field. */
export type ApiCall = (
  method: string,
  path: string,
  body?: unknown,
  opts?: { auth?: boolean; raw?: boolean; headers?: Record<string, string> },
) => // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read loosely typed JSON answers
Promise<{ status: number; data: any; headers: Headers }>;

/** Where an API call goes and with which admin token. */
export interface ApiTarget {
  url: string;
  token: string;
}

/**
 * Builds the client for the API that `target()` names. It is asked on every call, not once: a harness that
 * restarts a Wharf on another port or with another token keeps handing out the same client.
 */
export function apiClient(target: () => ApiTarget): ApiCall {
  return async (method, path, body, o = {}) => {
    const { url, token } = target();
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.auth !== false) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const r = await fetch(url + path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: r.status, data, headers: r.headers };
  };
}
