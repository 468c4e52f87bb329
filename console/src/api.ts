/** Calls the Wharf API with the session cookie; failures become {@link ApiError} with the server's details. */

/** One entry of an error's `details` (zod issues and Cedar errors carry a path or a line). */
export interface ErrorDetail {
  path?: Array<string | number>;
  message?: string;
  line?: number;
  column?: number;
}

/** An API error: `{error: {code, message, details}}` from the server, or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
  }

  /** The messages of details about one input field (e.g. `phone_number_id`). */
  forField(field: string): string | undefined {
    const hits = this.details.filter((d) => d.path?.[0] === field).map((d) => d.message ?? '');
    return hits.length ? hits.join('; ') : undefined;
  }
}

/** Listeners told when the server answers 401 (the session expired or was logged out elsewhere). */
const unauthorizedListeners = new Set<() => void>();

/** Calls `fn` whenever a request finds the session gone. */
export function onUnauthorized(fn: () => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/** Sends a request to `/api…`; resolves with the parsed JSON (undefined for 204). */
export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Wharf did not answer. Is it running?');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string; details?: ErrorDetail[] } } | undefined)?.error;
    if (res.status === 401 && !path.startsWith('/api/session')) for (const fn of unauthorizedListeners) fn();
    throw new ApiError(
      res.status,
      e?.code ?? 'http_' + res.status,
      e?.message ?? `The server answered ${res.status}.`,
      e?.details ?? [],
    );
  }
  return data as T;
}

/** The message to show for any error. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
