/**
 * The OpenAPI 3.1 document of Wharf's HTTP API, built from the same zod schemas the handlers parse with
 * (`z.toJSONSchema`, JSON Schema 2020-12 as OpenAPI 3.1 uses it), so the document cannot drift from what the
 * API accepts. Served at `GET /api/openapi.json`; docs/api.md is checked against it by a test.
 */
import { z } from 'zod';
import {
  CloudConfigSchema,
  CreateAgentSchema,
  CreateChannelSchema,
  CreateVaultItemSchema,
  ListChannelsQuery,
  ListSpacesQuery,
  MessagesQuery,
  PatchChannelSchema,
  PolicyCheckSchema,
  PutPoliciesSchema,
  SignalWaitSchema,
} from './schemas.js';
import { CreateConnectionSchema, PatchConnectionSchema } from '../lib/vaults/settings.js';
import { LinkCodeSchema } from './personal.router.js';
import { LoginSchema } from './session-auth.js';
import { RotateItemSchema } from './vaults.router.js';

/** The error body every 4xx/5xx answer has (SPEC §4). */
export const ErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One route of the API as the document describes it. */
interface Route {
  method: Method;
  /** Express-style path (`/api/channels/:id`). */
  path: string;
  summary: string;
  /** Which credential the route takes. */
  auth: 'admin' | 'none' | 'metrics' | 'signature';
  body?: z.ZodType;
  /** A text body accepted besides JSON (the Cedar policies). */
  textBody?: boolean;
  /** A raw file body, of these content types (`POST /api/media`). */
  binaryBody?: string[];
  query?: z.ZodObject;
  /** Success statuses and their content types (`null`: no body). */
  ok: Record<number, Array<'application/json' | 'text/plain' | 'image/png'> | null>;
  /** Error statuses the route can answer, besides 401 and 400 where they apply. */
  errors?: number[];
}

const json = 'application/json' as const;

/** Every route Wharf serves. */
export const ROUTES: Route[] = [
  {
    method: 'get',
    path: '/healthz',
    summary: 'Liveness of Temporal and the store',
    auth: 'none',
    ok: { 200: [json] },
    errors: [503],
  },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics', auth: 'metrics', ok: { 200: ['text/plain'] } },
  { method: 'get', path: '/api/openapi.json', summary: 'This document', auth: 'none', ok: { 200: [json] } },
  {
    method: 'get',
    path: '/api/system',
    summary: 'Version, Temporal connection and store kind',
    auth: 'admin',
    ok: { 200: [json] },
  },
  {
    method: 'get',
    path: '/api/providers',
    summary: 'The providers and their config fields',
    auth: 'admin',
    ok: { 200: [json] },
  },
  {
    method: 'get',
    path: '/api/spaces',
    summary: 'Spaces (optionally only unbound ones)',
    auth: 'admin',
    query: ListSpacesQuery,
    ok: { 200: [json] },
  },
  { method: 'get', path: '/api/agents', summary: 'Built-in and operator agents', auth: 'admin', ok: { 200: [json] } },
  {
    method: 'post',
    path: '/api/agents',
    summary: 'Add an agent',
    auth: 'admin',
    body: CreateAgentSchema,
    ok: { 201: [json] },
    errors: [409],
  },
  {
    method: 'delete',
    path: '/api/agents/:id',
    summary: 'Remove an operator agent',
    auth: 'admin',
    ok: { 204: null },
    errors: [404, 409],
  },
  { method: 'get', path: '/api/vaults', summary: 'Vaults', auth: 'admin', ok: { 200: [json] } },
  {
    method: 'get',
    path: '/api/vaults/:vault/items',
    summary: 'Items of a vault (names and field names, never values)',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/vaults',
    summary: 'Add a vault connection (checked: reach, authenticate, list)',
    auth: 'admin',
    body: CreateConnectionSchema,
    ok: { 201: [json] },
    errors: [409, 422],
  },
  {
    method: 'get',
    path: '/api/vaults/:vault',
    summary: 'One vault connection',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404],
  },
  {
    method: 'patch',
    path: '/api/vaults/:vault',
    summary: "Change a connection's settings (checked again)",
    auth: 'admin',
    body: PatchConnectionSchema,
    ok: { 200: [json] },
    errors: [404, 409, 422],
  },
  {
    method: 'delete',
    path: '/api/vaults/:vault',
    summary: 'Remove a vault connection (409 while something refers to it)',
    auth: 'admin',
    ok: { 204: null },
    errors: [404, 409],
  },
  {
    method: 'post',
    path: '/api/vaults/:vault/items',
    summary: 'New credential, where the vault can write',
    auth: 'admin',
    body: CreateVaultItemSchema,
    ok: { 201: [json] },
    errors: [404, 409, 422],
  },
  {
    method: 'put',
    path: '/api/vaults/:vault/items/:item',
    summary: 'Rotate a credential',
    auth: 'admin',
    body: RotateItemSchema,
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'delete',
    path: '/api/vaults/:vault/items/:item',
    summary: 'Delete a credential (409 while referenced)',
    auth: 'admin',
    ok: { 204: null },
    errors: [404, 409, 422],
  },
  {
    method: 'post',
    path: '/api/media',
    summary: 'Store a file (the raw body, typed by its content-type) for an agent to send; answers its id',
    auth: 'admin',
    binaryBody: ['image/jpeg', 'image/png', 'application/pdf', 'audio/ogg'],
    ok: { 201: [json] },
    errors: [400],
  },
  {
    method: 'get',
    path: '/api/media/:id',
    summary: 'A stored inbound file, with its content type',
    auth: 'admin',
    ok: { 200: null },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/events',
    summary: 'Live changes (server-sent events) for the console',
    auth: 'admin',
    ok: { 200: null },
  },
  {
    method: 'get',
    path: '/api/session',
    summary: 'Whether the console session is valid',
    auth: 'admin',
    ok: { 200: [json] },
  },
  {
    method: 'post',
    path: '/api/session',
    summary: 'Exchange the admin token for a console session cookie',
    auth: 'none',
    body: LoginSchema,
    ok: { 200: [json] },
    errors: [403],
  },
  { method: 'delete', path: '/api/session', summary: 'Log out', auth: 'none', ok: { 204: null } },
  {
    method: 'get',
    path: '/api/signals',
    summary: 'Per space: waiting tasks and held messages',
    auth: 'admin',
    ok: { 200: [json] },
  },
  {
    method: 'post',
    path: '/api/channels/:id/subscribe-app',
    summary: "Subscribe the token's app to the WABA's webhooks",
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404, 422, 502],
  },
  { method: 'get', path: '/', summary: "The operators' console", auth: 'none', ok: { 200: null } },
  {
    method: 'post',
    path: '/api/channels',
    summary: 'Create a channel',
    auth: 'admin',
    body: CreateChannelSchema,
    ok: { 201: [json] },
    errors: [409],
  },
  {
    method: 'get',
    path: '/api/channels',
    summary: 'List channels',
    auth: 'admin',
    query: ListChannelsQuery,
    ok: { 200: [json] },
  },
  {
    method: 'get',
    path: '/api/channels/:id',
    summary: 'One channel',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404],
  },
  {
    method: 'patch',
    path: '/api/channels/:id',
    summary: 'Change inbound mode and/or agent',
    auth: 'admin',
    body: PatchChannelSchema,
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'put',
    path: '/api/channels/:id/config',
    summary: 'Save and check Cloud API config',
    auth: 'admin',
    body: CloudConfigSchema,
    ok: { 200: [json] },
    errors: [404, 422, 502],
  },
  {
    method: 'post',
    path: '/api/channels/:id/pair',
    summary: 'Issue a pairing code',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'delete',
    path: '/api/channels/:id/paired/:address',
    summary: 'Un-pair a sender',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'post',
    path: '/api/channels/:id/disconnect',
    summary: 'Disconnect a channel',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'post',
    path: '/api/channels/:id/reconnect',
    summary: 'Reconnect a channel',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'delete',
    path: '/api/channels/:id',
    summary: 'Delete a channel',
    auth: 'admin',
    ok: { 204: null },
    errors: [404, 422],
  },
  {
    method: 'get',
    path: '/api/channels/:id/messages',
    summary: 'Recent message log',
    auth: 'admin',
    query: MessagesQuery,
    ok: { 200: [json] },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/channels/:id/qr',
    summary: 'The pending QR code of a personal-account channel',
    auth: 'admin',
    query: z.object({ format: z.enum(['png']).optional() }),
    ok: { 200: [json, 'image/png'] },
    errors: [404, 422],
  },
  {
    method: 'post',
    path: '/api/channels/:id/qr/refresh',
    summary: 'Ask for a new QR code',
    auth: 'admin',
    ok: { 202: [json] },
    errors: [404, 422],
  },
  {
    method: 'get',
    path: '/api/channels/:id/link-code',
    summary: 'The pending phone-number link code',
    auth: 'admin',
    ok: { 200: [json] },
    errors: [404, 422],
  },
  {
    method: 'post',
    path: '/api/channels/:id/link-code',
    summary: 'Link by phone number instead of QR',
    auth: 'admin',
    body: LinkCodeSchema,
    ok: { 200: [json] },
    errors: [404, 422],
  },
  { method: 'get', path: '/api/policies', summary: 'The Cedar policies in force', auth: 'admin', ok: { 200: [json] } },
  {
    method: 'put',
    path: '/api/policies',
    summary: 'Replace the Cedar policies',
    auth: 'admin',
    body: PutPoliciesSchema,
    textBody: true,
    ok: { 200: [json] },
  },
  {
    method: 'post',
    path: '/api/policies/check',
    summary: 'Ask for a decision without a message',
    auth: 'admin',
    body: PolicyCheckSchema,
    ok: { 200: [json] },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/signals/wait',
    summary: 'Long-poll the next handed-off message of a space',
    auth: 'admin',
    body: SignalWaitSchema.extend({ from: z.string().min(1).optional() }),
    ok: { 200: [json], 204: null },
    errors: [404],
  },
  {
    method: 'get',
    path: '/webhooks/whatsapp/:channelId',
    summary: "Meta's verification handshake",
    auth: 'none',
    ok: { 200: ['text/plain'] },
    errors: [403, 404],
  },
  {
    method: 'post',
    path: '/webhooks/whatsapp/:channelId',
    summary: 'Signed webhook events from Meta',
    auth: 'signature',
    ok: { 200: [json] },
    errors: [404, 413],
  },
];

const REASONS: Record<number, string> = {
  400: 'Bad request',
  401: 'Missing or wrong credentials',
  403: 'Refused',
  404: 'Not found',
  409: 'Conflict',
  413: 'Too large',
  422: 'Not possible now',
  502: 'The provider refused',
  503: 'Unavailable',
};

/** A zod schema as a JSON Schema 2020-12 object (what the API accepts, before transforms and defaults). */
const schemaOf = (s: z.ZodType): Record<string, unknown> => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return rest;
};

/** Builds the document; `version` is Wharf's. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorBody = { content: { [json]: { schema: { $ref: '#/components/schemas/Error' } } } };
  for (const r of ROUTES) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const params = [...r.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string', minLength: 1 },
    }));
    const query = r.query
      ? Object.entries((schemaOf(r.query).properties ?? {}) as Record<string, unknown>).map(([name, schema]) => ({
          name,
          in: 'query',
          required: false,
          schema,
        }))
      : [];
    const responses: Record<string, unknown> = {};
    for (const [status, types] of Object.entries(r.ok)) {
      const content = Object.fromEntries(
        (types ?? []).map((t) => [t, { schema: t === json ? {} : { type: 'string' } }]),
      );
      responses[status] = { description: 'Success', ...(types ? { content } : {}) };
    }
    const errors = new Set([
      ...(r.errors ?? []),
      ...(r.auth === 'none' ? [] : [401]),
      ...(r.body || r.query || params.length ? [400] : []),
    ]);
    if (r.path.startsWith('/api/') || r.path === '/metrics') errors.add(404); // an unknown id, or a mistyped route under /api
    if (r.body || r.textBody || r.binaryBody || r.auth === 'signature') errors.add(413); // every body has a size limit
    for (const status of [...errors].sort())
      responses[status] = { description: REASONS[status] ?? 'Error', ...errorBody };
    const bodyContent: Record<string, unknown> = {};
    if (r.body) bodyContent[json] = { schema: schemaOf(r.body) };
    if (r.textBody) bodyContent['text/plain'] = { schema: { type: 'string' } };
    for (const t of r.binaryBody ?? []) bodyContent[t] = { schema: { type: 'string', format: 'binary' } };
    if (r.auth === 'signature') bodyContent[json] = { schema: { type: 'object' } };
    paths[path] ??= {};
    paths[path][r.method] = {
      summary: r.summary,
      operationId: `${r.method}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      ...(params.length || query.length ? { parameters: [...params, ...query] } : {}),
      ...(Object.keys(bodyContent).length ? { requestBody: { required: true, content: bodyContent } } : {}),
      security: {
        admin: [{ adminToken: [] }],
        none: [],
        metrics: [{ metricsToken: [] }, { adminToken: [] }],
        signature: [{ metaSignature: [] }],
      }[r.auth],
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Wharf',
      version,
      description: 'Durable WhatsApp channels for AI agents. Errors have the shape of the Error schema.',
    },
    paths,
    components: {
      schemas: { Error: schemaOf(ErrorBodySchema) },
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'WHARF_ADMIN_TOKEN' },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'WHARF_METRICS_TOKEN' },
        metaSignature: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Hub-Signature-256',
          description: "HMAC-SHA256 of the raw body with the channel's app_secret",
        },
      },
    },
  };
}
