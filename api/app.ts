/**
 * The HTTP API (Express 5): thin handlers that parse with zod, call the store or Temporal, and map the
 * result. Errors of every kind go through one handler. `server.ts`-style: this module builds the app,
 * `workers/main.ts` listens.
 */
import { STATUS_CODES, type Server } from 'node:http';
import express, { type Express } from 'express';
import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config.js';
import { createGraphClient, type GraphClient } from '../lib/graph/graph-client.js';
import { processDeliveries, type InboundDeliveries } from '../lib/inbound-delivery.js';
import type { Logger } from '../lib/logger.js';
import { metricsHandler, webhookMetrics } from '../lib/metrics.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import { catalogRouter } from './catalog.router.js';
import { createChannelGateway } from './channel-gateway.js';
import { createDrain } from './drain.js';
import { channelsRouter } from './channels.router.js';
import { consoleRouter } from './console.router.js';
import { diagnosticsRouter } from './diagnostics.router.js';
import { errorHandler, notFoundRoute } from './errors.js';
import { mediaRouter } from './media.router.js';
import { eventsRouter } from './events.router.js';
import { openApiDocument } from './openapi.js';
import { personalRouter } from './personal.router.js';
import { createRefusalCounter } from './refusal-counter.js';
import { policiesRouter } from './policies.router.js';
import { createSessionAuth } from './session-auth.js';
import { signalsRouter } from './signals.router.js';
import { createStrangerScreen } from './stranger-screen.js';
import { vaultsRouter } from './vaults.router.js';
import { webhookRouter } from './webhook.router.js';
import { describeChatsWith } from '../lib/chat-metadata.js';
import { within } from '../lib/deadline.js';

/** What the API needs. */
export interface ApiDeps {
  config: Config;
  store: Store;
  client: Client;
  policy: PolicyService;
  log: Logger;
  /** Where the Temporal server and its UI are, for /api/system. */
  temporal: { address: string; uiUrl: string | null; embedded: boolean };
  version: string;
  /** The Graph API client (default: one built from the config). */
  graph?: GraphClient;
  /** The process's inbound deliveries, shared with the worker (lib/inbound-delivery.ts). @default processDeliveries */
  deliveries?: InboundDeliveries;
}

/** The app, plus its part in a graceful stop. */
export type WharfApp = Express & {
  /**
   * Call when the process stops, before the Temporal connection closes: new requests get 503, those in flight
   * finish (at most `deadlineMs`, then 503), and counts held in memory are written to the store.
   */
  shutdown(deadlineMs?: number): Promise<{ cutOff: number }>;
};

/**
 * Requests Node's HTTP parser refuses before Express sees them (a request line and headers over 16 KB, a
 * malformed request line) get the usual error body too, instead of Node's bare status line.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const status = tooLarge ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({
      error: {
        code: tooLarge ? 'too_large' : 'bad_request',
        message: tooLarge
          ? 'The request line and headers are too large (at most 16 KB together).'
          : 'The request is not valid HTTP.',
        details: [],
      },
    });
    // Ended and then destroyed: a client that keeps its side open must not keep the server from closing.
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
      () => socket.destroy(),
    );
  });
}

/** Builds the Express app. */
export function createApp(deps: ApiDeps): WharfApp {
  const { config, store, client, policy, log } = deps;
  const gateway = createChannelGateway({ client, store, config, deliveries: deps.deliveries ?? processDeliveries });
  // Chat workflows started through this client name their channel in the Temporal UI (chat-metadata.ts).
  describeChatsWith(client, { channel: (id) => store.channels.get(id), consoleUrl: config.publicUrl });
  const refusals = createRefusalCounter({ store, log: log.child({ component: 'webhook' }) });
  const drain = createDrain();
  const app = Object.assign(express(), {
    async shutdown(deadlineMs?: number) {
      const cutOff = await drain.drain(deadlineMs);
      await refusals.close();
      return { cutOff };
    },
  });
  app.disable('x-powered-by');
  app.use(drain.middleware);
  // No browser may guess a content type: a webhook challenge or an error body must never render as HTML.
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.set('query parser', 'simple');
  const screen = createStrangerScreen({ store, policy });
  const webhook = webhookRouter({ gateway, store, screen, log: log.child({ component: 'webhook' }), refusals });
  // Meta's events, the per-message path, before every other route (webhook.router.ts).
  app.use(webhook.events);

  // Each part answers within HEALTH_CHECK_MS or counts as down: a store held by a stuck transaction, or a
  // Temporal frontend that takes calls but never answers, is reported (503) instead of hanging the probe.
  app.get('/healthz', async (_req, res) => {
    const [temporal, storeUp] = await Promise.all([
      within<'up' | 'down'>(
        client.connection.workflowService.getSystemInfo({}).then(
          () => 'up',
          () => 'down',
        ),
        HEALTH_CHECK_MS,
        () => 'down',
      ),
      within(store.db.ping(), HEALTH_CHECK_MS, () => false),
    ]);
    const body = { ok: temporal === 'up' && storeUp, temporal, store: storeUp ? 'up' : 'down' };
    res.status(body.ok ? 200 : 503).json(body);
  });

  app.get(
    '/metrics',
    metricsHandler({
      adminToken: config.adminToken,
      metricsToken: config.metricsToken,
      channelCounts: () => store.channels.countByStatus(),
    }),
  );
  app.use('/webhooks/whatsapp', webhookMetrics, webhook);

  const openApi = openApiDocument(deps.version);
  app.get('/api/openapi.json', (_req, res) => void res.json(openApi));

  // The bearer token (scripts) or a console session cookie; see session-auth.ts.
  const auth = createSessionAuth({ adminToken: config.adminToken, publicUrl: config.publicUrl });
  const api = express.Router();
  api.use('/session', auth.router);
  api.use(auth.authenticate);
  // Before the body parsers: a stored file's body is raw bytes of any type (POST /api/media).
  api.use('/media', mediaRouter({ store }));
  api.use(express.json({ limit: '2mb', type: ['application/json', 'application/*+json'] }));
  api.use(express.text({ limit: '2mb', type: ['text/plain', 'application/cedar'] }));
  api.get('/system', (_req, res) => {
    res.json({
      version: deps.version,
      temporal: {
        address: deps.temporal.address,
        namespace: config.temporal.namespace,
        taskQueue: config.temporal.taskQueue,
        uiUrl: deps.temporal.uiUrl,
        embedded: deps.temporal.embedded,
      },
      store: { kind: store.db.kind },
      publicUrl: config.publicUrl,
    });
  });
  api.use('/', catalogRouter({ store }));
  api.use('/vaults', vaultsRouter({ store, log: log.child({ component: 'vaults' }) }));
  api.use('/channels', channelsRouter({ gateway, store, publicUrl: config.publicUrl, refusals }));
  api.use('/channels', personalRouter({ store, gateway }));
  const graph = deps.graph ?? createGraphClient({ baseUrl: config.graph.baseUrl, version: config.graph.version });
  api.use('/channels', diagnosticsRouter({ store, gateway, graph }));
  api.use('/policies', policiesRouter({ policy, store }));
  api.use('/signals', signalsRouter({ gateway, store, log: log.child({ component: 'signals' }) }));
  api.use('/events', eventsRouter({ changes: store.changes }));
  api.use(notFoundRoute);
  app.use('/api', api);
  app.use('/', consoleRouter());

  app.use(notFoundRoute);
  app.use(errorHandler(log.child({ component: 'api' })));
  return app;
}

/** How long `/healthz` waits for the store and for Temporal before it counts one as down. */
export const HEALTH_CHECK_MS = 5000;
