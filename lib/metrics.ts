/**
 * Wharf's Prometheus metrics (prom-client), served at `GET /metrics` on the API port. One registry per
 * process: webhooks, the inbound message log, replies, Graph calls and pairing move as they happen; the
 * channel gauges are read from the store at scrape time. The Temporal worker's own metrics (task
 * latencies, slots, sticky cache) are the SDK's, on WHARF_METRICS_ADDRESS.
 */
import { sameSecret } from './constant-time.js';
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { WharfError } from './errors.js';
import { CLOUD_MESSAGE_TYPES } from './graph/webhook.js';
import { normalizePairingCode } from './pairing.js';

/** The process's registry (Node process metrics included, prefixed `wharf_process_`/`wharf_nodejs_`). */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'wharf_' });

/** Hand-backs of the C allocator's free pages to the system (workers/memory-trim.ts) and what they gave back. */
export const memoryTrims = new Counter({
  name: 'wharf_memory_trims_total',
  help: "Hand-backs of the C allocator's free pages to the system (malloc_trim)",
  registers: [registry],
});
export const memoryTrimmedBytes = new Counter({
  name: 'wharf_memory_trimmed_bytes_total',
  help: 'Resident memory given back to the system by malloc_trim (bytes, measured as the fall of RSS)',
  registers: [registry],
});

/** The SQLite store's group commit (lib/store/sqlite.ts): commits, and the writes they carried. */
export const storeCommits = new Counter({
  name: 'wharf_store_commits_total',
  help: 'Commits of the SQLite store (each carries the writes made in one turn of the event loop)',
  registers: [registry],
});
/** How long the operation running now has held the SQLite store (workers/store-watchdog.ts). */
export const storeHeldSeconds = new Gauge({
  name: 'wharf_store_held_seconds',
  help: 'Seconds the operation running now has held the embedded SQLite store (every other store call waits); 0 when free',
  registers: [registry],
});
export const storeGroupedWrites = new Counter({
  name: 'wharf_store_writes_total',
  help: 'Writes (statements and transactions) committed by the SQLite store; divided by commits: writes per commit',
  registers: [registry],
});

/** Webhook requests by kind (`verify` handshake, `event`) and outcome (`accepted`, `bad_signature`, …). */
export const webhookRequests = new Counter({
  name: 'wharf_webhook_requests_total',
  help: 'Webhook requests from Meta, by kind (verify, event) and outcome',
  labelNames: ['kind', 'outcome'] as const,
  registers: [registry],
});

/** Time from a webhook event's arrival to its 200 (every event in it durably in Temporal). */
export const webhookAckSeconds = new Histogram({
  name: 'wharf_webhook_ack_seconds',
  help: 'Time from a webhook event arriving to its acknowledgement (events durably in Temporal)',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/** Webhook events refused for a missing or wrong X-Hub-Signature-256. */
export const signatureFailures = new Counter({
  name: 'wharf_webhook_signature_failures_total',
  help: 'Webhook events refused for a missing or invalid X-Hub-Signature-256',
  registers: [registry],
});

/** Inbound messages as the message log records them: `received`, then their outcome; by message type. */
export const inboundMessages = new Counter({
  name: 'wharf_inbound_messages_total',
  help: 'Inbound messages by status as recorded in the message log (received, answered, denied, paired, held, ignored, failed, …) and type (text, image, reaction, …; other for types Wharf does not know)',
  labelNames: ['status', 'type'] as const,
  registers: [registry],
});

/**
 * Message types that get a label of their own (the Cloud API's, and the personal account's and Wharf's
 * names); anything else is `other`, so whatever a provider puts in `type` cannot grow the label set without
 * bound.
 */
const KNOWN_TYPES = new Set([...CLOUD_MESSAGE_TYPES, 'deleted', 'poll', 'unknown', 'request_welcome']);

/** The `type` label of a message type. */
export const typeLabel = (type: string | null | undefined): string =>
  !type ? 'text' : KNOWN_TYPES.has(type) ? type : 'other';

/** Vault failures by the vault's kind and the problem (unreachable, sealed, auth_failed, not_found, …). */
export const vaultErrors = new Counter({
  name: 'wharf_vault_errors_total',
  help: 'Failed reads of credential refs, by vault kind (local, hashicorp, onepassword, bitwarden, keepass) and problem (unreachable, sealed, auth_failed, forbidden, not_found, bad_config, bad_response)',
  labelNames: ['vault_kind', 'problem'] as const,
  registers: [registry],
});

/** Reply parts by outcome: `accepted` by the provider, or the status a refused or retried send was recorded with. */
export const replies = new Counter({
  name: 'wharf_replies_total',
  help: 'Reply parts by outcome (accepted by the provider, failed, …)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

/** Graph API calls by operation and Meta error code (`ok` on success, `network` without an answer). */
export const graphCalls = new Counter({
  name: 'wharf_graph_requests_total',
  help: "Meta Graph API calls by endpoint (operation) and Meta's error code (ok on success, network when no answer came)",
  labelNames: ['endpoint', 'code'] as const,
  registers: [registry],
});

/** Pairing: codes issued through the API, senders paired by a code. */
export const pairingAttempts = new Counter({
  name: 'wharf_pairing_attempts_total',
  help: 'Pairing: codes issued (code_issued), senders paired by sending one (paired), and code-shaped texts from unpaired senders that were not the live code (wrong_code: wrong or expired)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

/** Personal-account channels by state, from the store (the same on every node). */
export const personalSessions = new Gauge({
  name: 'wharf_personal_sessions',
  help: 'Personal-account (whatsapp_user) channels by state, read from the store at scrape time',
  labelNames: ['state'] as const,
  registers: [registry],
});

/** Channels by provider and status, from the store (the same on every node). */
export const channelsByStatus = new Gauge({
  name: 'wharf_channels',
  help: 'Channels by provider and status, read from the store at scrape time',
  labelNames: ['provider', 'status'] as const,
  registers: [registry],
});

/** Counts inbound statuses (with the message's type) as they are written to the message log. */
export function countInbound(rows: Iterable<{ status: string; type?: string | null }>): void {
  for (const { status, type } of rows) {
    inboundMessages.inc({ status, type: typeLabel(type) });
    if (status === 'paired') pairingAttempts.inc({ outcome: 'paired' });
  }
}

/**
 * Counts a text from an unpaired sender that has a pairing code's shape (`XYZ-123`, as the API issues them)
 * but is not the channel's live code: someone guessing, or a code that expired.
 */
export function countWrongPairingCode(text: string): void {
  if (/^[A-Z]{3}\d{3}$/.test(normalizePairingCode(text))) pairingAttempts.inc({ outcome: 'wrong_code' });
}

/** The outcome label of a webhook answer's status code. */
function webhookOutcome(status: number): string {
  if (status >= 200 && status < 300) return 'accepted';
  return (
    { 400: 'invalid', 401: 'bad_signature', 403: 'refused', 404: 'not_found', 413: 'too_large' }[status] ??
    (status >= 500 ? 'error' : 'other')
  );
}

/** Middleware for the webhook mount: counts every request by outcome and times acknowledged events. */
export const webhookMetrics: RequestHandler = (req, res, next) => {
  const start = process.hrtime.bigint();
  res.once('finish', () => {
    const kind = req.method === 'POST' ? 'event' : 'verify';
    webhookRequests.inc({ kind, outcome: webhookOutcome(res.statusCode) });
    if (kind === 'event' && res.statusCode === 200)
      webhookAckSeconds.observe(Number(process.hrtime.bigint() - start) / 1e9);
  });
  next();
};

/**
 * `GET /metrics`: the Prometheus text. Needs `Authorization: Bearer` with WHARF_METRICS_TOKEN when set (so
 * a scraper never holds the admin token), or the admin token.
 */
export function metricsHandler(opts: {
  adminToken: string;
  metricsToken?: string;
  channelCounts: () => Promise<Array<{ provider: string; status: string; count: number }>>;
}): RequestHandler {
  const accepted = [opts.adminToken, opts.metricsToken].filter((t): t is string => !!t).map((t) => Buffer.from(t));
  return async (req, res) => {
    const m = /^Bearer\s+(.+)$/i.exec(req.header('authorization') ?? '');
    const given = Buffer.from(m?.[1]?.trim() ?? '');
    if (!accepted.some((t) => sameSecret(given, t))) {
      throw new WharfError(
        'unauthorized',
        'Missing or wrong bearer token: send Authorization: Bearer <WHARF_METRICS_TOKEN> (or the admin token).',
      );
    }
    const counts = await opts.channelCounts();
    channelsByStatus.reset();
    personalSessions.reset();
    for (const c of counts) {
      channelsByStatus.set({ provider: c.provider, status: c.status }, c.count);
      if (c.provider === 'whatsapp_user') personalSessions.set({ state: c.status }, c.count);
    }
    res.type(registry.contentType).send(await registry.metrics());
  };
}
