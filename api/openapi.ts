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
/** A `201 Created` answer with a JSON body. */
const CREATED: Route['ok'] = { 201: [json] };
/** A `204 No Content` answer. */
const NO_CONTENT: Route['ok'] = { 204: null };

/** A route of the table: the admin token and a `200` JSON answer unless `more` says otherwise. */
const route = (method: Method, path: string, summary: string, more: Partial<Route> = {}): Route => ({
  method,
  path,
  summary,
  auth: 'admin',
  ok: { 200: [json] },
  ...more,
});

/** Every route Wharf serves. */
export const ROUTES: Route[] = [
  route('get', '/healthz', 'Liveness of Temporal and the store', { auth: 'none', errors: [503] }),
  route('get', '/metrics', 'Prometheus metrics', { auth: 'metrics', ok: { 200: ['text/plain'] } }),
  route('get', '/api/openapi.json', 'This document', { auth: 'none' }),
  route('get', '/api/system', 'Version, Temporal connection and store kind'),
  route('get', '/api/providers', 'The providers and their config fields'),
  route('get', '/api/spaces', 'Spaces (optionally only unbound ones)', { query: ListSpacesQuery }),
  route('get', '/api/agents', 'Built-in and operator agents'),
  route('post', '/api/agents', 'Add an agent', { body: CreateAgentSchema, ok: CREATED, errors: [409] }),
  route('delete', '/api/agents/:id', 'Remove an operator agent', { ok: NO_CONTENT, errors: [404, 409] }),
  route('get', '/api/vaults', 'Vaults'),
  route('get', '/api/vaults/:vault/items', 'Items of a vault (names and field names, never values)', { errors: [404] }),
  route('post', '/api/vaults', 'Add a vault connection (checked: reach, authenticate, list)', {
    body: CreateConnectionSchema,
    ok: CREATED,
    errors: [409, 422],
  }),
  route('get', '/api/vaults/:vault', 'One vault connection', { errors: [404] }),
  route('patch', '/api/vaults/:vault', "Change a connection's settings (checked again)", {
    body: PatchConnectionSchema,
    errors: [404, 409, 422],
  }),
  route('delete', '/api/vaults/:vault', 'Remove a vault connection (409 while something refers to it)', {
    ok: NO_CONTENT,
    errors: [404, 409],
  }),
  route('post', '/api/vaults/:vault/items', 'New credential, where the vault can write', {
    body: CreateVaultItemSchema,
    ok: CREATED,
    errors: [404, 409, 422],
  }),
  route('put', '/api/vaults/:vault/items/:item', 'Rotate a credential', { body: RotateItemSchema, errors: [404, 422] }),
  route('delete', '/api/vaults/:vault/items/:item', 'Delete a credential (409 while referenced)', {
    ok: NO_CONTENT,
    errors: [404, 409, 422],
  }),
  route(
    'post',
    '/api/media',
    'Store a file (the raw body, typed by its content-type) for an agent to send; answers its id',
    { binaryBody: ['image/jpeg', 'image/png', 'application/pdf', 'audio/ogg'], ok: CREATED, errors: [400] },
  ),
  route('get', '/api/media/:id', 'A stored inbound file, with its content type', { ok: { 200: null }, errors: [404] }),
  route('get', '/api/events', 'Live changes (server-sent events) for the console', { ok: { 200: null } }),
  route('get', '/api/session', 'Whether the console session is valid'),
  route('post', '/api/session', 'Exchange the admin token for a console session cookie', {
    auth: 'none',
    body: LoginSchema,
    errors: [403],
  }),
  route('delete', '/api/session', 'Log out', { auth: 'none', ok: NO_CONTENT }),
  route('get', '/api/signals', 'Per space: waiting tasks and held messages'),
  route('post', '/api/channels/:id/subscribe-app', "Subscribe the token's app to the WABA's webhooks", {
    errors: [404, 422, 502],
  }),
  route('get', '/', "The operators' console", { auth: 'none', ok: { 200: null } }),
  route('post', '/api/channels', 'Create a channel', { body: CreateChannelSchema, ok: CREATED, errors: [409] }),
  route('get', '/api/channels', 'List channels', { query: ListChannelsQuery }),
  route('get', '/api/channels/:id', 'One channel', { errors: [404] }),
  route('patch', '/api/channels/:id', 'Change inbound mode and/or agent', {
    body: PatchChannelSchema,
    errors: [404, 422],
  }),
  route('put', '/api/channels/:id/config', 'Save and check Cloud API config', {
    body: CloudConfigSchema,
    errors: [404, 422, 502],
  }),
  route('post', '/api/channels/:id/pair', 'Issue a pairing code', { errors: [404, 422] }),
  route('delete', '/api/channels/:id/paired/:address', 'Un-pair a sender', { errors: [404, 422] }),
  route('post', '/api/channels/:id/disconnect', 'Disconnect a channel', { errors: [404, 422] }),
  route('post', '/api/channels/:id/reconnect', 'Reconnect a channel', { errors: [404, 422] }),
  route('delete', '/api/channels/:id', 'Delete a channel', { ok: NO_CONTENT, errors: [404, 422] }),
  route('get', '/api/channels/:id/messages', 'Recent message log', { query: MessagesQuery, errors: [404] }),
  route('get', '/api/channels/:id/qr', 'The pending QR code of a personal-account channel', {
    query: z.object({ format: z.enum(['png']).optional() }),
    ok: { 200: [json, 'image/png'] },
    errors: [404, 422],
  }),
  route('post', '/api/channels/:id/qr/refresh', 'Ask for a new QR code', { ok: { 202: [json] }, errors: [404, 422] }),
  route('get', '/api/channels/:id/link-code', 'The pending phone-number link code', { errors: [404, 422] }),
  route('post', '/api/channels/:id/link-code', 'Link by phone number instead of QR', {
    body: LinkCodeSchema,
    errors: [404, 422],
  }),
  route('get', '/api/policies', 'The Cedar policies in force'),
  route('put', '/api/policies', 'Replace the Cedar policies', { body: PutPoliciesSchema, textBody: true }),
  route('post', '/api/policies/check', 'Ask for a decision without a message', {
    body: PolicyCheckSchema,
    errors: [404],
  }),
  route('post', '/api/signals/wait', 'Long-poll the next handed-off message of a space', {
    body: SignalWaitSchema.extend({ from: z.string().min(1).optional() }),
    ok: { 200: [json], 204: null },
    errors: [404],
  }),
  route('get', '/webhooks/whatsapp/:channelId', "Meta's verification handshake", {
    auth: 'none',
    ok: { 200: ['text/plain'] },
    errors: [403, 404],
  }),
  route('post', '/webhooks/whatsapp/:channelId', 'Signed webhook events from Meta', {
    auth: 'signature',
    errors: [404, 413],
  }),
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
