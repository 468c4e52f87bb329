/**
 * Meta's webhook (SPEC §4): the verification handshake and signed events. The signature is checked on
 * the raw body bytes, in constant time, before anything else is looked at or recorded; a good request is
 * answered 200 only once every event in it is durably in Temporal.
 */
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { sameSecret } from '../lib/constant-time.js';
import { WharfError } from '../lib/errors.js';
import { parseWebhookPayload, verifySignature } from '../lib/graph/webhook.js';
import type { Logger } from '../lib/logger.js';
import { signatureFailures, webhookMetrics } from '../lib/metrics.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelState } from '../lib/types.js';
import { VaultError, vaultRegistry } from '../lib/vaults/index.js';
import type { ChannelGateway } from './channel-gateway.js';
import type { StrangerScreen } from './stranger-screen.js';
import { ID_PATTERN, idParam } from './params.js';
import type { RefusalCounter } from './refusal-counter.js';

/**
 * Builds the router mounted at `/webhooks/whatsapp` (with the metrics), and `events`, its event route as a
 * middleware for the app's front.
 */
export function webhookRouter({
  gateway,
  store,
  screen,
  log,
  refusals,
}: {
  gateway: ChannelGateway;
  store: Store;
  screen: StrangerScreen;
  log: Logger;
  refusals: RefusalCounter;
}): Router & { events: RequestHandler } {
  const r = Router();
  r.param('channelId', idParam('Cloud API channel'));

  // At 1,000 events a second the read model and the app secret would be read and decrypted for every
  // request; a short-lived in-memory copy (never logged, never persisted) takes that off the hot path.
  // Config changes through this process drop the entry at once. On a store shared by several nodes the
  // channel is read every time and the copy serves only while the channel's version is unchanged, so
  // another node's change (a new app secret, a disconnect) applies to the next request here too.
  // Not a second channel cache: what it keeps is the app secret resolved for a channel version (the channel
  // itself is re-read whenever the store is shared); the store's own copy (channels.getRecent) serves admission.
  const CONTEXT_MS = 2000;
  const eventContexts = new Map<string, { ch: ChannelState; appSecret: string | null; at: number }>();
  gateway.onChange((id) => eventContexts.delete(id));

  const cloudChannel = async (id: string): Promise<ChannelState> => {
    const ch = await store.channels.get(id);
    if (!ch || ch.provider !== 'whatsapp_cloud') throw new WharfError('not_found', `No Cloud API channel "${id}".`);
    return ch;
  };
  // During a vault outage the last good verify token and app secret keep checking Meta's calls for up to
  // SECRET_GRACE_MS: long enough to ride out a vault restart or failover without refusing (and counting
  // as bad) Meta's events; short enough that a secret rotated or revoked meanwhile is not trusted for
  // long. Past it the webhook answers 503, and Meta redelivers later (it retries for days), so nothing is lost.
  const SECRET_GRACE_MS = 10 * 60 * 1000;
  const lastGood = new Map<string, { value: string; at: number }>();
  const vaults = vaultRegistry(store);
  const secret = async (ch: ChannelState, field: 'verify_token' | 'app_secret'): Promise<string | null> => {
    const ref = ch.config[field];
    if (!ref || typeof ref !== 'object') return null;
    const key = `${ch.id}\u0000${field}\u0000${ref.vault}\u0000${ref.item}\u0000${ref.field}`;
    try {
      const value = await vaults.resolve(ref);
      if (lastGood.size > 10_000) lastGood.clear();
      lastGood.set(key, { value, at: Date.now() });
      return value;
    } catch (err) {
      if (!(err instanceof VaultError)) throw err;
      if (err.vault === 'local' && err.problem === 'not_found') return null; // a dangling ref: nothing matches
      const good = lastGood.get(key);
      if (good && Date.now() - good.at < SECRET_GRACE_MS) {
        log.warn(
          { channelId: ch.id, field, reason: err.message },
          'vault unavailable: checking with the last good secret',
        );
        return good.value;
      }
      log.warn(
        { channelId: ch.id, field, reason: err.message },
        'vault unavailable and no recent good secret: webhook refused with 503',
      );
      throw new WharfError('unavailable', `${field}: ${err.message}. Meta will deliver again later.`);
    }
  };
  const eventContext = async (id: string): Promise<{ ch: ChannelState; appSecret: string | null }> => {
    const hit = eventContexts.get(id);
    if (hit && !store.shared && Date.now() - hit.at < CONTEXT_MS) return hit;
    const ch = await cloudChannel(id);
    if (hit && ch.version === hit.ch.version && Date.now() - hit.at < CONTEXT_MS) return hit;
    const entry = { ch, appSecret: await secret(ch, 'app_secret'), at: Date.now() };
    if (eventContexts.size > 10_000) eventContexts.clear();
    eventContexts.set(id, entry);
    return entry;
  };
  // Misrouted events are logged at most once a minute per channel (each is on the message log anyway).
  const lastMisrouted = new Map<string, number>();
  // "Last webhook" is diagnostics, not data: written at most once a second per channel.
  const lastSeen = new Map<string, number>();
  const noteWebhook = async (id: string): Promise<void> => {
    const now = Date.now();
    if (now - (lastSeen.get(id) ?? 0) < 1000) return;
    lastSeen.set(id, now);
    await store.diagnostics.record(id, 'webhook');
  };

  r.get('/:channelId', async (req, res) => {
    const ch = await cloudChannel(req.params.channelId);
    const expected = await secret(ch, 'verify_token');
    const mode = req.query['hub.mode'];
    const token = req.query['hub.verify_token'];
    const challenge = req.query['hub.challenge'];
    if (
      !expected ||
      mode !== 'subscribe' ||
      typeof token !== 'string' ||
      typeof challenge !== 'string' ||
      !sameSecret(token, expected)
    ) {
      refusals.note(ch.id, 'verification_refused');
      throw new WharfError(
        'forbidden',
        'Verification refused: hub.verify_token does not match this channel’s verify_token.',
      );
    }
    await store.diagnostics.record(ch.id, 'verified');
    await gateway.verified(ch);
    res.type('text/plain').send(challenge);
  });

  /** `POST /:channelId`: signed events, answered 200 once every one of them is recorded or in Temporal. */
  const receive = async (req: Request, res: Response, channelId: string): Promise<void> => {
    const { ch, appSecret } = await eventContext(channelId);
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!appSecret || !verifySignature(raw, req.header('x-hub-signature-256'), appSecret)) {
      refusals.note(ch.id, 'bad_signature');
      signatureFailures.inc();
      throw new WharfError('bad_signature', 'Missing or invalid X-Hub-Signature-256; the event was not recorded.');
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new WharfError('invalid_json', 'The event body is not valid JSON.');
    }
    const phoneId = String(ch.config.phone_number_id ?? '');
    const parsed = parseWebhookPayload(ch.id, body, { phoneNumberId: phoneId });
    if (!parsed.ok)
      throw new WharfError(
        'bad_request',
        'The event is not a WhatsApp Business Account webhook payload.',
        parsed.issues as unknown[],
      );
    const elsewhere = parsed.phoneNumberIds.filter((p) => p !== phoneId);
    if (elsewhere.length && Date.now() - (lastMisrouted.get(ch.id) ?? 0) > 60_000) {
      lastMisrouted.set(ch.id, Date.now());
      log.warn(
        { channelId: ch.id, phoneNumberIds: elsewhere },
        'events for another phone_number_id were posted to this channel and recorded as ignored; point that number’s webhook at its own channel',
      );
    }
    // Everything the request carries is on record (or in Temporal) before the 200: what goes to no chat
    // (reactions, deletions, other numbers' events, items Wharf cannot read) is written here.
    const unhandled = [...parsed.unhandled];
    for (const change of parsed.numberChanges) unhandled.push(await gateway.moveNumber(ch, change));
    const { toChats, denied } = await screen.screen(ch, parsed.messages);
    unhandled.push(...denied);
    await store.messages.recordUnhandled(ch.id, unhandled);
    await gateway.deliver(ch.id, toChats, parsed.statuses);
    await Promise.all([
      noteWebhook(ch.id),
      ch.status === 'setup' ? gateway.verified(ch).then(() => eventContexts.delete(ch.id)) : undefined,
    ]);
    // Written as it is: Express's `json` would also hash the body for an ETag (and `type` look the type up),
    // which no webhook caller needs.
    const ack = {
      ok: true,
      messages: parsed.messages.length,
      statuses: parsed.statuses.length,
      recorded: unhandled.length,
    };
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json; charset=utf-8').end(JSON.stringify(ack));
  };
  const readBody = express.raw({ type: () => true, limit: '2mb' });
  r.post('/:channelId', readBody, (req, res) => receive(req, res, req.params.channelId));

  // The per-message path, without the router's walk: a request whose path is exactly
  // `/webhooks/whatsapp/<id>` (the form Meta calls) goes straight to the metrics, the body parser and
  // `receive`; any other spelling (a trailing slash, other case, %-escapes, a bad id) goes on to the router
  // above, which answers it as before. Mounted first, after the drain and the common headers.
  const events: RequestHandler = (req, res, next) => {
    const id = req.method === 'POST' ? EVENT_PATH.exec(req.url)?.[1] : undefined;
    if (!id) return next();
    webhookMetrics(req, res, () =>
      readBody(req, res, (err?: unknown) => {
        if (err) return next(err);
        receive(req, res, id).catch(next);
      }),
    );
  };
  return Object.assign(r, { events });
}

/** The path Meta posts events to, with a channel id as Wharf makes them (nothing to decode). */
const EVENT_PATH = new RegExp(`^/webhooks/whatsapp/(${ID_PATTERN.source.slice(1, -1)})(?:\\?.*)?$`);
