/**
 * Route parameters that name something Wharf made (a channel, an agent, a vault). Such ids are short runs of
 * letters, digits, `_`, `-` and `.`; a value with anything else (a NUL byte, a control character, a space, a
 * `%`) cannot name anything, so it is answered 404 before any handler passes it to the store — where a NUL
 * used to end the request in a 500 (PostgreSQL refuses it).
 */
import type { RequestParamHandler } from 'express';
import { WharfError } from '../lib/errors.js';

/** What an id Wharf made can look like (channel ids are `ch_` and 10 characters; agent ids follow the schema). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** An id for an error message: quoted, escaped and cut short, so a hostile value cannot shape the message. */
export const quoteId = (value: string): string => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);

/** `router.param` handler: 404 `not_found` (naming `what`) for a value that cannot be an id. */
export function idParam(what: string): RequestParamHandler {
  return (_req, _res, next, value: unknown) => {
    if (typeof value === 'string' && ID_PATTERN.test(value)) return next();
    next(
      new WharfError(
        'not_found',
        `${what} ${quoteId(String(value))} was not found: ids are letters, digits, "_", "-" and "." only.`,
      ),
    );
  };
}
