/**
 * Troubleshooting made active (the guide's table): warnings computed from a channel's diagnostics, and
 * `POST /api/channels/:id/subscribe-app`, which subscribes the token's app to the WhatsApp Business
 * Account's webhooks when none is — the cause of "outbound works, inbound doesn't".
 */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import { GraphError, type GraphClient } from '../lib/graph/graph-client.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelDiagnostics, ChannelState } from '../lib/types.js';
import type { ChannelGateway } from './channel-gateway.js';

/** A connected channel that used to get webhooks and has had none for this long gets a warning. */
export const QUIET_WEBHOOK_HOURS = 6;

/** The operator-facing warnings a channel's diagnostics call for (empty when all is well). */
export function diagnosticWarnings(ch: ChannelState, d: ChannelDiagnostics, now = Date.now()): string[] {
  if (ch.provider !== 'whatsapp_cloud') return [];
  const warnings: string[] = [];
  if (ch.configured && d.subscribedApps?.count === 0) {
    warnings.push(
      'No app is subscribed to this WhatsApp Business Account’s webhooks, so Meta sends no events: outbound works, inbound doesn’t. ' +
        'Subscribe the app (POST /api/channels/:id/subscribe-app, or the console’s “Subscribe the app”) and make sure the “messages” webhook field is subscribed in Meta.',
    );
  }
  if (ch.status === 'connected' && d.lastWebhookAt) {
    const hours = Math.floor((now - Date.parse(d.lastWebhookAt)) / 3_600_000);
    if (hours >= QUIET_WEBHOOK_HOURS) {
      warnings.push(
        `No webhook from Meta in ${hours} hours (the last one came ${d.lastWebhookAt}). Check the webhook subscription and the “messages” field in Meta.`,
      );
    }
  }
  if (d.badSignatureEvents > 0 && ch.status === 'connected') {
    warnings.push(
      `${d.badSignatureEvents} event(s) were rejected for a bad X-Hub-Signature-256: app_secret is probably wrong.`,
    );
  }
  return warnings;
}

/** Builds the router mounted at `/api/channels`. */
export function diagnosticsRouter({
  store,
  gateway,
  graph,
}: {
  store: Store;
  gateway: ChannelGateway;
  graph: GraphClient;
}): Router {
  const r = Router();

  r.post('/:id/subscribe-app', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    if (ch.provider !== 'whatsapp_cloud' || !ch.configured) {
      throw new WharfError(
        'not_possible_now',
        'Only a configured Cloud API channel has a WhatsApp Business Account to subscribe to. Save its config first.',
      );
    }
    const ref = ch.config.access_token;
    const accessToken = ref && typeof ref === 'object' ? await store.vault.resolve(ref) : null;
    if (!accessToken)
      throw new WharfError('not_possible_now', 'The access_token credential cannot be read; configure it again.');
    const businessAccountId = String(ch.config.business_account_id);
    try {
      await graph.subscribeApp({ businessAccountId, accessToken });
      const apps = await graph.subscribedApps({ businessAccountId, accessToken });
      await store.diagnostics.subscribedApps(ch.id, apps.length);
      res.json({ subscribedApps: apps });
    } catch (err) {
      if (err instanceof GraphError) {
        const permission = err.code === 200 || err.code === 10;
        throw new WharfError(
          'provider_refused',
          permission
            ? 'Meta refused: the access token lacks whatsapp_business_management, which subscribing needs. Subscribe the app in Meta (WhatsApp → Configuration) instead, or use a token with that permission.'
            : `Meta refused the subscription: ${err.message}`,
        );
      }
      throw err;
    }
  });

  return r;
}
