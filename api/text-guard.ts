/**
 * Text PostgreSQL cannot store: a NUL character, or a lone UTF-16 surrogate (which `JSON.parse` lets
 * through from a `\ud800` escape). Either one in a body or a path made the store fail with a 500; this guard
 * refuses it up front with a 400 that names where it is.
 */
import type { RequestHandler } from 'express';
import { WharfError } from '../lib/errors.js';

// A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const storable = (s: string): boolean => !UNSTORABLE.test(s);

/** The path (as zod would give it) of the first string or key in `value` that cannot be stored, or null. */
function firstUnstorable(value: unknown, path: Array<string | number> = [], depth = 0): Array<string | number> | null {
  if (typeof value === 'string') return storable(value) ? null : path;
  if (depth > 64 || value === null || typeof value !== 'object') return null;
  for (const [k, v] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    if (typeof k === 'string' && !storable(k)) return [...path, k];
    const found = firstUnstorable(v, [...path, k], depth + 1);
    if (found) return found;
  }
  return null;
}

/** Refuses a request whose path or parsed body holds text that cannot be stored (400 `validation_failed`). */
export const refuseUnstorableText: RequestHandler = (req, _res, next) => {
  let path: string;
  try {
    path = decodeURIComponent(req.path);
  } catch {
    return next(new WharfError('bad_request', 'The request path is not valid percent-encoded UTF-8.'));
  }
  if (!storable(path))
    return next(new WharfError('bad_request', 'The request path holds a NUL character or invalid Unicode.'));
  const at = firstUnstorable(req.body);
  if (at)
    return next(
      new WharfError(
        'validation_failed',
        `Invalid request: ${at.join('.') || 'body'}: text must be valid Unicode without NUL characters`,
        [{ path: at, message: 'NUL character or lone surrogate' }],
      ),
    );
  next();
};
