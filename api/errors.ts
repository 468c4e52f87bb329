/**
 * The one error handler: every error becomes `{error: {code, message, details}}` with a fitting status
 * (SPEC §4) — zod issues, malformed JSON, Wharf errors, Temporal update refusals, unknown workflows.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ZodError } from 'zod';
import { WharfError, refusalCode, type ErrorCode } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { InvalidPolicyError, type PolicyError } from '../lib/policy/engine.js';

/** Our code for a 4xx status set by Express or a body parser. */
const CLIENT_ERROR_CODES: Record<number, ErrorCode> = {
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'too_large',
};

/** Converts anything thrown by a handler into a WharfError that is safe to show. */
export function toWharfError(err: unknown): WharfError {
  if (err instanceof WharfError) return err;
  if (err instanceof ZodError) {
    return new WharfError(
      'validation_failed',
      `Invalid request: ${err.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
      err.issues.map((i) => ({ path: i.path, message: i.message, code: i.code })),
    );
  }
  if (err instanceof InvalidPolicyError) {
    const errors: PolicyError[] = err.errors;
    return new WharfError(
      'invalid_policy',
      `The policies were refused by Cedar: ${errors.map((e) => e.message).join('; ')}. The previous policies stay in force.`,
      errors,
    );
  }
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    return new WharfError(refusalCode(err.cause.type), err.cause.message);
  }
  if (err instanceof WorkflowNotFoundError) return new WharfError('not_found', 'That channel was not found.');
  const e = err as { type?: string; status?: number; statusCode?: number; limit?: number; body?: unknown };
  if (e?.type === 'entity.parse.failed') return new WharfError('invalid_json', 'The request body is not valid JSON.');
  if (e?.type === 'entity.too.large')
    return new WharfError(
      'too_large',
      `The request body is too large${typeof e.limit === 'number' ? ` (at most ${e.limit} bytes)` : ''}.`,
    );
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported')
    return new WharfError('bad_request', 'Unsupported body encoding; send UTF-8 JSON.');
  // Express and its body parsers mark what the client got wrong with a 4xx `status` (a malformed %-escape in
  // the path is a URIError with status 400, an aborted body a 400): the client's fault, so a 4xx with our body
  // and our words — their messages can quote the input and are not written for operators.
  const status = e?.status ?? e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (err instanceof URIError)
      return new WharfError(
        'bad_request',
        'The URL is not valid: it has a malformed %-escape. Encode the path as UTF-8 and percent-encode it once.',
      );
    return new WharfError(
      CLIENT_ERROR_CODES[status] ?? 'bad_request',
      `The request was refused (HTTP ${status}): check its URL, headers and body.`,
    );
  }
  return new WharfError(
    'internal',
    'Something went wrong inside Wharf; the error was logged. Try again, and check the logs if it persists.',
  );
}

/** Express error middleware producing the error shape. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const w = toWharfError(err);
    if (w.code === 'internal') log.error({ err, method: req.method, path: req.path }, 'unhandled error in request');
    else log.debug({ code: w.code, method: req.method, path: req.path }, w.message);
    if (res.headersSent) return;
    res.status(w.status).json({ error: { code: w.code, message: w.message, details: w.details } });
  };
}

/** 404 for routes that do not exist. */
export const notFoundRoute: RequestHandler = (req, _res, next) => {
  next(new WharfError('not_found', `No route ${req.method} ${req.path}. See the API table in the README.`));
};
