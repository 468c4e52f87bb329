/**
 * Meta's webhook (SPEC §4): the verification handshake and signed events. The signature is checked on
 * the raw body bytes, in constant time, before anything else is looked at or recorded; a good request is
 * answered 200 only once every event in it is durably in Temporal.
 */
import { timingSafeEqual } from 'node:crypto';
import express, { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import { parseWebhookPayload, verifySignature } from '../lib/graph/webhook.js';
import type { Logger } from '../lib/logger.js';
import { signatureFailures } from '../lib/metrics.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelState } from '../lib/types.js';
import type { ChannelGateway } from './channel-gateway.js';

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** Builds the router mounted at `/webhooks/whatsapp`. */
export function webhookRouter({ gateway, store, log }: { gateway: ChannelGateway; store: Store; log: Logger }): Router {
  const r = Router();

  // At 1,000 events a second the read model and the app secret would be read and decrypted for every
  // request; a short-lived in-memory copy (never logged, never persisted) takes that off the hot path.
  // Config changes through this process drop the entry at once. On a store shared by several nodes the
  // channel is read every time and the copy serves only while the channel's version is unchanged, so
  // another node's change (a new app secret, a disconnect) applies to the next request here too.
  const CACHE_MS = 2000;
  const cache = new Map<string, { ch: ChannelState; appSecret: string | null; at: number }>();
  gateway.onChange((id) => cache.delete(id));

  const cloudChannel = async (id: string): Promise<ChannelState> => {
    const ch = await store.channels.get(id);
    if (!ch || ch.provider !== 'whatsapp_cloud') throw new WharfError('not_found', `No Cloud API channel "${id}".`);
    return ch;
  };
  const secret = async (ch: ChannelState, field: 'verify_token' | 'app_secret'): Promise<string | null> => {
    const ref = ch.config[field];
    return ref && typeof ref === 'object' ? store.vault.resolve(ref) : null;
  };
  const eventContext = async (id: string): Promise<{ ch: ChannelState; appSecret: string | null }> => {
    const hit = cache.get(id);
    if (hit && !store.shared && Date.now() - hit.at < CACHE_MS) return hit;
    const ch = await cloudChannel(id);
    if (hit && ch.version === hit.ch.version && Date.now() - hit.at < CACHE_MS) return hit;
    const entry = { ch, appSecret: await secret(ch, 'app_secret'), at: Date.now() };
    if (cache.size > 10_000) cache.clear();
    cache.set(id, entry);
    return entry;
  };
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
    if (!expected || mode !== 'subscribe' || typeof token !== 'string' || typeof challenge !== 'string' || !sameSecret(token, expected)) {
      await store.diagnostics.record(ch.id, 'verification_refused');
      log.warn({ channelId: ch.id }, 'webhook verification refused: the verify_token does not match the one saved in Wharf');
      throw new WharfError('forbidden', 'Verification refused: hub.verify_token does not match this channel’s verify_token.');
    }
    await store.diagnostics.record(ch.id, 'verified');
    await gateway.verified(ch);
    res.type('text/plain').send(challenge);
  });

  r.post('/:channelId', express.raw({ type: () => true, limit: '2mb' }), async (req, res) => {
    const { ch, appSecret } = await eventContext(req.params.channelId);
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!appSecret || !verifySignature(raw, req.header('x-hub-signature-256'), appSecret)) {
      signatureFailures.inc();
      await store.diagnostics.record(ch.id, 'bad_signature');
      log.warn({ channelId: ch.id }, 'webhook event rejected: missing or bad X-Hub-Signature-256 (is app_secret right?)');
      throw new WharfError('bad_signature', 'Missing or invalid X-Hub-Signature-256; the event was not recorded.');
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new WharfError('invalid_json', 'The event body is not valid JSON.');
    }
    const parsed = parseWebhookPayload(ch.id, body);
    if (!parsed.ok) throw new WharfError('bad_request', 'The event is not a WhatsApp Business Account webhook payload.', parsed.issues as unknown[]);
    const phoneId = String(ch.config.phone_number_id ?? '');
    if (parsed.phoneNumberIds.some((p) => p !== phoneId)) {
      log.warn({ channelId: ch.id, phoneNumberIds: parsed.phoneNumberIds }, 'event names another phone_number_id than the channel’s; check the webhook wiring in Meta');
    }
    await gateway.deliver(ch.id, parsed.messages, parsed.statuses);
    await Promise.all([noteWebhook(ch.id), ch.status === 'setup' ? gateway.verified(ch).then(() => cache.delete(ch.id)) : undefined]);
    res.status(200).json({ ok: true, messages: parsed.messages.length, statuses: parsed.statuses.length });
  });

  return r;
}
