/**
 * The tests' HTTP client for a Wharf API: the admin token unless `auth: false`, JSON bodies, and answers
 * parsed as JSON when they are JSON (else the text). One copy for the in-process, spawned and cluster Wharfs.
 */

/** Calls one API route; `data` is loosely typed because tests read JSON answers field by field. */
export type ApiCall = (
  method: string,
  path: string,
  body?: unknown,
  opts?: { auth?: boolean; raw?: boolean; headers?: Record<string, string> },
) => // eslint-disable-next-line @typescript-eslint/no-explicit-any -- loosely typed JSON answers
Promise<{ status: number; data: any; headers: Headers }>;

/** Builds the client for the API at `url` with the admin `token`. */
export function apiClient(url: string, token: string): ApiCall {
  return async (method, path, body, o = {}) => {
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
