/**
 * The closed list of Wharf's error types. Activities turn provider failures into these (choosing retryable
 * or not deliberately); the API maps them to HTTP statuses in one place. Messages say what a person should do.
 */

/** Every error code Wharf produces, with its HTTP status. */
export const ERROR_STATUS = {
  bad_request: 400,
  validation_failed: 400,
  invalid_json: 400,
  invalid_policy: 400,
  unauthorized: 401,
  bad_signature: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  not_possible_now: 422,
  not_available: 422,
  provider_refused: 502,
  unavailable: 503,
  internal: 500,
} as const;

/** A Wharf error code. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** An error with a code, a person-facing message and optional details; safe to show (never holds secrets). */
export class WharfError extends Error {
  override readonly name = 'WharfError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: unknown[] = [],
  ) {
    super(message);
  }

  /** The HTTP status this error maps to. */
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/** Shorthand constructors for the common cases. */
export const notFound = (what: string): WharfError => new WharfError('not_found', `${what} was not found.`);
/** A conflict with existing state. */
export const conflict = (message: string): WharfError => new WharfError('conflict', message);

/**
 * Failure types that cross the workflow/activity boundary as `ApplicationFailure.type`. Non-retryable ones
 * mean that retrying cannot help (bad credentials, unknown objects); the rest are retried by the policy.
 */
export const FAILURE = {
  /** The access token is invalid or expired (Meta code 190 and other OAuth errors). */
  badToken: 'WharfBadToken',
  /** The phone number id does not exist or the token cannot see it (Meta code 100). */
  unknownPhoneNumber: 'WharfUnknownPhoneNumber',
  /** The token lacks a required permission (Meta codes 200/10, missing scope). */
  missingPermission: 'WharfMissingPermission',
  /** Meta refused one send for a reason specific to the message (131xxx). */
  sendRejected: 'WharfSendRejected',
  /** Meta is rate limiting (codes 4, 80007, 130429, 131048, 131056); retried with backoff. */
  rateLimited: 'WharfRateLimited',
  /** A credential ref points at nothing. */
  missingSecret: 'WharfMissingSecret',
  /** A vault could not give a secret now (down, sealed, access refused, item missing); retried with backoff. */
  vaultUnavailable: 'WharfVaultUnavailable',
  /** An agent could not answer (e.g. 401 from an LLM endpoint). */
  agentFailed: 'WharfAgentFailed',
  /** Another attempt (a retried task's first one) still holds the claim on a reply's parts; retried. */
  sendInProgress: 'WharfSendInProgress',
  /** The store refused an inbound message's data for good: the message is recorded failed and skipped. */
  unprocessableMessage: 'WharfUnprocessableMessage',
} as const;

/** A failure type name. */
export type FailureType = (typeof FAILURE)[keyof typeof FAILURE];
