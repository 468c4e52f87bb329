/**
 * The closed list of Wharf's error vocabulary, in one place: the API's error codes and their HTTP statuses,
 * the failure types activities throw (and whether retrying can help), and the refusal types of workflow
 * updates. Activities turn provider failures into these (choosing retryable or not deliberately); the API
 * maps them to HTTP statuses in one place (api/errors.ts); docs/api.md's table is tested against
 * {@link ERROR_STATUS}. Imported by workflow code: no Node built-ins, no I/O. Messages say what a person should do.
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

/** What a failure type means for retries. */
interface FailureSpec {
  /** The `ApplicationFailure.type` on the wire. */
  readonly type: `Wharf${string}`;
  /**
   * `true`: retrying cannot help (bad credentials, unknown objects, refused data) — every retry policy lists it
   * in `nonRetryableErrorTypes` (see {@link FINAL_FAILURE_TYPES}). `false`: retried by the policy's backoff;
   * the activity that throws one may still mark a single failure final (e.g. a vault that refuses access).
   */
  readonly final: boolean;
}

/**
 * Every failure type that crosses the workflow/activity boundary as `ApplicationFailure.type`, with its
 * retry meaning. Nothing else in the tree spells a `Wharf…` failure type.
 */
export const FAILURES = {
  /** The access token is invalid or expired (Meta code 190 and other OAuth errors). */
  badToken: { type: 'WharfBadToken', final: true },
  /** The phone number id does not exist or the token cannot see it (Meta code 100). */
  unknownPhoneNumber: { type: 'WharfUnknownPhoneNumber', final: true },
  /** The token lacks a required permission (Meta codes 200/10, missing scope). */
  missingPermission: { type: 'WharfMissingPermission', final: true },
  /** Meta (or WhatsApp, for a personal account) refused one send for a reason specific to the message (131xxx). */
  sendRejected: { type: 'WharfSendRejected', final: true },
  /** Meta is rate limiting (codes 4, 80007, 130429, 131048, 131056); retried with backoff. */
  rateLimited: { type: 'WharfRateLimited', final: false },
  /** Meta could not be reached or answered with an error it did not classify (5xx, network); retried. */
  graphUnavailable: { type: 'WharfGraphUnavailable', final: false },
  /** A credential ref points at nothing. */
  missingSecret: { type: 'WharfMissingSecret', final: true },
  /** A vault could not give a secret now (down, sealed, access refused, item missing); retried with backoff. */
  vaultUnavailable: { type: 'WharfVaultUnavailable', final: false },
  /** An agent could not answer for good (e.g. 401 from an LLM endpoint, an answer that is not chat-completions). */
  agentFailed: { type: 'WharfAgentFailed', final: true },
  /** An agent's endpoint could not be reached or answered 408/409/429/5xx; retried. */
  agentUnavailable: { type: 'WharfAgentUnavailable', final: false },
  /** This worker holds no WhatsApp session for a personal channel (it is reconnecting or lives elsewhere); retried. */
  sessionUnavailable: { type: 'WharfSessionUnavailable', final: false },
  /** A personal session's attempt ran on a node that stopped noting it is alive; failed so Temporal restarts it elsewhere. */
  sessionHolderDead: { type: 'WharfSessionHolderDead', final: false },
  /** Another attempt (a retried task's first one) still holds the claim on a reply's parts; retried. */
  sendInProgress: { type: 'WharfSendInProgress', final: false },
  /** The store refused an inbound message's data for good: the message is recorded failed and skipped. */
  unprocessableMessage: { type: 'WharfUnprocessableMessage', final: true },
  /** `waitForChannelSignal`: the space does not exist or has no channel bound to it. */
  unknownSpace: { type: 'WharfUnknownSpace', final: true },
  /** A workflow helper was called with an argument it cannot read (e.g. `waitForChannelSignal`'s timeout). */
  invalidArgument: { type: 'WharfInvalidArgument', final: true },
} as const satisfies Record<string, FailureSpec>;

/** The failure type names by key: `FAILURE.badToken === 'WharfBadToken'`. */
export const FAILURE = Object.fromEntries(Object.entries(FAILURES).map(([key, f]) => [key, f.type])) as {
  readonly [K in keyof typeof FAILURES]: (typeof FAILURES)[K]['type'];
};

/** A failure type name. */
export type FailureType = (typeof FAILURES)[keyof typeof FAILURES]['type'];

/** The failure types retrying cannot help: every activity retry policy's `nonRetryableErrorTypes`. */
export const FINAL_FAILURE_TYPES: readonly FailureType[] = Object.values(FAILURES)
  .filter((f) => f.final)
  .map((f) => f.type);

/**
 * Why a workflow update refused its input (thrown synchronously by its validator, so no event is written),
 * with the API error code each becomes. The API maps them in one place (api/errors.ts, {@link refusalCode}).
 */
export const REFUSALS = {
  /** The input is malformed (bad code, bad address, unknown inbound mode, …). */
  invalid: { type: 'InvalidRequest', code: 'validation_failed' },
  /** The input is fine but the channel's state does not allow it (pairing a channel that is not connected). */
  notPossible: { type: 'NotPossibleNow', code: 'not_possible_now' },
  /** What the update names does not exist (a deleted channel, an address that is not paired). */
  notFound: { type: 'NotFound', code: 'not_found' },
} as const satisfies Record<string, { type: string; code: ErrorCode }>;

/** The refusal type names by key: `REFUSAL.invalid === 'InvalidRequest'`. */
export const REFUSAL = Object.fromEntries(Object.entries(REFUSALS).map(([key, r]) => [key, r.type])) as {
  readonly [K in keyof typeof REFUSALS]: (typeof REFUSALS)[K]['type'];
};

/** A refusal type name. */
export type RefusalType = (typeof REFUSALS)[keyof typeof REFUSALS]['type'];

/** The API error code of an update's refusal type; an unknown or missing type is `not_possible_now`. */
export function refusalCode(type: string | null | undefined): ErrorCode {
  return Object.values(REFUSALS).find((r) => r.type === type)?.code ?? 'not_possible_now';
}
