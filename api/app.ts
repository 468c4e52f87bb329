/**
 * The HTTP API (Express 5): thin handlers that parse with zod, call the store or Temporal, and map the
 * result. Errors of every kind go through one handler. `server.ts`-style: this module builds the app,
 * `workers/main.ts` listens.
 */
import { timingSafeEqual } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config.js';
import { WharfError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { metricsHandler, webhookMetrics } from '../lib/metrics.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import { catalogRouter } from './catalog.router.js';
import { createChannelGateway } from './channel-gateway.js';
import { channelsRouter } from './channels.router.js';
import { errorHandler, notFoundRoute } from './errors.js';
import { openApiDocument } from './openapi.js';
import { refuseUnstorableText } from './text-guard.js';
import { personalRouter } from './personal.router.js';
import { policiesRouter } from './policies.router.js';
import { signalsRouter } from './signals.router.js';
import { webhookRouter } from './webhook.router.js';

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
}

function bearerAuth(token: string): RequestHandler {
  const expected = Buffer.from(token);
  return (req, _res, next) => {
    const m = /^Bearer\s+(.+)$/i.exec(req.header('authorization') ?? '');
    const given = Buffer.from(m?.[1]?.trim() ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return next(new WharfError('unauthorized', 'Missing or wrong bearer token: send Authorization: Bearer <WHARF_ADMIN_TOKEN>.'));
    }
    next();
  };
}

/** Builds the Express app. */
export function createApp(deps: ApiDeps): Express {
  const { config, store, client, policy, log } = deps;
  const gateway = createChannelGateway({ client, store, config });
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.get('/healthz', async (_req, res) => {
    const [temporal, storeUp] = await Promise.all([
      client.connection.workflowService
        .getSystemInfo({})
        .then(() => 'up' as const)
        .catch(() => 'down' as const),
      store.db.ping(),
    ]);
    const body = { ok: temporal === 'up' && storeUp, temporal, store: storeUp ? 'up' : 'down' };
    res.status(body.ok ? 200 : 503).json(body);
  });

  app.get('/metrics', metricsHandler({ adminToken: config.adminToken, metricsToken: config.metricsToken, channelCounts: () => store.channels.countByStatus() }));
  app.use('/webhooks/whatsapp', webhookMetrics, webhookRouter({ gateway, store, log: log.child({ component: 'webhook' }) }));

  const openApi = openApiDocument(deps.version);
  app.get('/api/openapi.json', (_req, res) => void res.json(openApi));

  const api = express.Router();
  api.use(bearerAuth(config.adminToken));
  api.use(express.json({ limit: '2mb', type: ['application/json', 'application/*+json'] }));
  api.use(express.text({ limit: '2mb', type: ['text/plain', 'application/cedar'] }));
  api.use(refuseUnstorableText);
  api.get('/system', (_req, res) => {
    res.json({
      version: deps.version,
      temporal: { address: deps.temporal.address, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, uiUrl: deps.temporal.uiUrl, embedded: deps.temporal.embedded },
      store: { kind: store.db.kind },
      publicUrl: config.publicUrl,
    });
  });
  api.use('/', catalogRouter({ store }));
  api.use('/channels', channelsRouter({ gateway, store, publicUrl: config.publicUrl }));
  api.use('/channels', personalRouter({ store, gateway }));
  api.use('/policies', policiesRouter({ policy, store }));
  api.use('/signals', signalsRouter({ gateway, store, log: log.child({ component: 'signals' }) }));
  api.use(notFoundRoute);
  app.use('/api', api);

  app.use(notFoundRoute);
  app.use(errorHandler(log.child({ component: 'api' })));
  return app;
}
