/**
 * A fake of the slice of Meta's Graph API that Wharf uses (debug_token, the phone number node, and the
 * messages edge for sends and read receipts), served over real HTTP with node:http. It speaks Meta's request,
 * response and error shapes, including the exact error texts, so the real client is exercised end to end.
 * Also exports helpers that build and sign webhook payloads the way Meta does.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the fake treats one access token. Tokens not configured at all are unparseable (190). */
export interface FakeTokenSpec {
  /** Granted scopes; defaults to whatsapp_business_messaging and whatsapp_business_management. */
  scopes?: string[];
  /** WABA ids the messaging scope is limited to (debug_token's granular_scopes); absent = all. */
  wabaIds?: string[];
  /** Invalidated session (190, subcode 460). */
  invalid?: boolean;
  /** Expired token (190, subcode 463). */
  expired?: boolean;
  /** False makes debug_token refuse this caller (Meta wants an app or app-developer token there). */
  canDebug?: boolean;
  /** `SYSTEM_USER` by default. */
  type?: string;
}

/** A phone number the fake knows. */
export interface FakePhoneSpec {
  displayPhoneNumber: string;
  verifiedName?: string;
  /** The WABA the number belongs to; checked against a token's granular `wabaIds`. */
  wabaId?: string;
}

/** An error to inject into upcoming message calls. Unset fields take Meta's real values for the code. */
export interface FakeErrorSpec {
  status?: number;
  code?: number;
  subcode?: number;
  title?: string;
  details?: string;
  type?: string;
  /** A raw, non-JSON body instead of Meta's error JSON (e.g. a load balancer's HTML page). */
  rawBody?: string;
  /** Which message calls consume the injection; `send` by default (`upload`: `POST /{phone-number-id}/media`). */
  on?: 'send' | 'read' | 'upload' | 'any';
}

/** Knobs for `startFakeGraph`. */
export interface FakeGraphOptions {
  tokens?: Record<string, FakeTokenSpec>;
  phoneNumbers?: Record<string, FakePhoneSpec>;
  /** Delay before every response, in ms. */
  latencyMs?: number;
  /** App id reported by debug_token. */
  appId?: string;
}

/** A message the fake accepted: a text, or a media message (`type`, `media`; `text` is then its caption or ''). */
export interface SentRecord {
  phoneNumberId: string;
  to: string;
  text: string;
  /** `text` (default) or the media type: `image`, `document`, `audio`, `video`, `sticker`. */
  type?: string;
  /** A media message's object as posted: `{id}` (an upload of this fake) or `{link}`, with caption/filename. */
  media?: { id?: string; link?: string; caption?: string; filename?: string };
  replyTo?: string;
  wamid: string;
  /** The request body as received. */
  body: Record<string, unknown>;
  at: number;
}

/** A read receipt the fake accepted. */
export interface ReadRecord {
  phoneNumberId: string;
  messageId: string;
  at: number;
}

/** One request the fake saw, with its answer. */
export interface CallRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  /** The bearer token (or `access_token` query parameter), if any. */
  auth?: string;
  status: number;
  at: number;
}

/** An inbound media object the fake serves. */
export interface FakeMediaSpec {
  bytes: Buffer;
  mime: string;
  sha256?: string;
  urlTtlMs?: number;
  expiredUrls?: number;
  /** Report this size in the lookup instead of the real one. */
  fileSize?: number;
}

/** A file uploaded with `POST /{phone-number-id}/media`. */
export interface UploadRecord {
  id: string;
  phoneNumberId: string;
  bytes: Buffer;
  mime: string;
  /** The multipart `type` field (Meta wants the MIME type there too). */
  type: string;
  filename: string;
  at: number;
}

/** A running fake Graph API. */
export interface FakeGraph {
  /** Files uploaded for sending. */
  uploads: UploadRecord[];
  /** Base URL to use as META_GRAPH_URL (no trailing slash, no version). */
  url: string;
  sent: SentRecord[];
  reads: ReadRecord[];
  calls: CallRecord[];
  /** Adds or replaces a token. */
  setToken(token: string, spec?: FakeTokenSpec): void;
  /** Forgets a token, so it answers 190 from then on. */
  revokeToken(token: string): void;
  /** Adds or replaces a phone number. */
  setPhoneNumber(id: string, spec: FakePhoneSpec): void;
  /**
   * Sets the apps subscribed to a WABA's webhooks (`GET/POST /{waba-id}/subscribed_apps`). A WABA of a known
   * phone number starts with the fake app subscribed, as Meta's dashboard does when the number is set up.
   */
  setSubscribedApps(wabaId: string, apps: Array<{ id: string; name: string }>): void;
  /** Makes the next `n` matching message calls fail with `error`. */
  failNext(n: number, error: FakeErrorSpec): void;
  setLatency(ms: number): void;
  /** Delay before an upload (`POST /{phone-number-id}/media`) is stored and answered: a large file on a slow link. */
  setUploadLatency(ms: number): void;
  /** Resolves with the first sent record matching `predicate` (already sent or arriving within the timeout). */
  waitForSent(predicate: (s: SentRecord) => boolean, timeoutMs?: number): Promise<SentRecord>;
  /**
   * Makes an inbound media object available (`GET /{media-id}` and its download URL). Its URLs live
   * `urlTtlMs` (Meta: five minutes); `expiredUrls` makes that many first URLs already expired. `sha256`
   * overrides the hash the lookup reports (to provoke a mismatch).
   */
  addMedia(id: string, spec: FakeMediaSpec): void;
  /** Clears records and pending injections; keeps tokens and phone numbers. */
  reset(): void;
  close(): Promise<void>;
}

const DEFAULT_SCOPES = ['whatsapp_business_messaging', 'whatsapp_business_management'];
const MESSAGING = 'whatsapp_business_messaging';
const TEXT_LIMIT = 4096;
/** Media message types of the Messages API. */
const MEDIA_TYPES = ['image', 'document', 'audio', 'video', 'sticker'];
/** Types Meta's upload accepts ("Supported media types"). */
const UPLOAD_TYPES = [
  'image/jpeg',
  'image/png',
  'image/webp',
  'audio/aac',
  'audio/amr',
  'audio/mpeg',
  'audio/mp4',
  'audio/ogg',
  'video/mp4',
  'video/3gpp',
  'text/plain',
  'application/pdf',
  'application/msword',
  'application/vnd.ms-excel',
  'application/vnd.ms-powerpoint',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
];

// Meta's texts and HTTP statuses for the codes tests inject most; unknown codes get a generic title.
const KNOWN_ERRORS: Record<number, { status: number; title: string; details?: string; transient?: boolean }> = {
  1: { status: 500, title: 'An unknown error occurred', transient: true },
  2: { status: 503, title: 'An unexpected error has occurred. Please retry your request later.', transient: true },
  4: { status: 400, title: '(#4) Application request limit reached' },
  10: { status: 403, title: '(#10) Application does not have permission for this action' },
  80007: {
    status: 400,
    title: '(#80007) Rate limit issues',
    details: 'The WhatsApp Business Account has reached its rate limit.',
  },
  130429: { status: 400, title: '(#130429) Rate limit hit', details: 'Cloud API message throughput has been reached.' },
  131000: {
    status: 500,
    title: '(#131000) Something went wrong',
    details: 'Message failed to send due to an unknown error.',
  },
  131005: {
    status: 403,
    title: '(#131005) Access denied',
    details: 'Permission is either not granted or has been removed.',
  },
  131008: {
    status: 400,
    title: '(#131008) Required parameter is missing',
    details: 'The request is missing a required parameter.',
  },
  131009: {
    status: 400,
    title: '(#131009) Parameter value is not valid',
    details: 'One or more parameter values are invalid.',
  },
  131021: {
    status: 400,
    title: '(#131021) Recipient cannot be sender',
    details: 'Sender and recipient phone number is the same.',
  },
  131026: { status: 400, title: '(#131026) Message undeliverable', details: 'Unable to deliver message.' },
  131031: {
    status: 400,
    title: '(#131031) Account has been locked',
    details: 'Business Account is restricted from messaging users.',
  },
  131047: {
    status: 400,
    title: '(#131047) Re-engagement message',
    details:
      'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
  },
  131051: {
    status: 400,
    title: '(#131051) Unsupported message type',
    details: 'Message type is not currently supported.',
  },
  131056: {
    status: 400,
    title: '(#131056) (Business Account, Consumer Account) pair rate limit hit',
    details:
      'Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.',
  },
  133010: {
    status: 400,
    title: '(#133010) Account not registered',
    details: 'The phone number is not registered on the WhatsApp Business Platform.',
  },
};

const fbtrace = (): string => randomBytes(9).toString('base64url');

interface GraphErrorJson {
  message: string;
  type: string;
  code: number;
  error_subcode?: number;
  error_data?: Record<string, unknown>;
  is_transient?: boolean;
  fbtrace_id: string;
}

class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

const graphError = (status: number, err: Omit<GraphErrorJson, 'fbtrace_id'>, headers?: Record<string, string>): Reply =>
  new Reply(status, { error: { ...err, fbtrace_id: fbtrace() } }, headers);

function badTokenReply(token: string | undefined, spec: FakeTokenSpec | undefined): Reply {
  const wwwAuth = { 'www-authenticate': 'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token"' };
  if (!token) {
    return graphError(400, {
      message: 'An access token is required to request this resource.',
      type: 'OAuthException',
      code: 104,
    });
  }
  if (spec?.expired) {
    return graphError(
      401,
      {
        message: `Error validating access token: Session has expired on Monday, 01-Jan-24 00:00:00 PST. The current time is ${new Date().toUTCString()}.`,
        type: 'OAuthException',
        code: 190,
        error_subcode: 463,
      },
      wwwAuth,
    );
  }
  if (spec?.invalid) {
    return graphError(
      401,
      {
        message:
          'Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.',
        type: 'OAuthException',
        code: 190,
        error_subcode: 460,
      },
      wwwAuth,
    );
  }
  return graphError(
    401,
    { message: 'Invalid OAuth access token - Cannot parse access token', type: 'OAuthException', code: 190 },
    wwwAuth,
  );
}

const unknownObject = (method: string, id: string): Reply =>
  graphError(400, {
    message: `Unsupported ${method.toLowerCase()} request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
    type: 'GraphMethodException',
    code: 100,
    error_subcode: 33,
  });

const invalidParam = (message: string): Reply =>
  graphError(400, { message: `(#100) ${message}`, type: 'OAuthException', code: 100 });

function injectedReply(spec: FakeErrorSpec): Reply {
  const code = spec.code ?? ((spec.status ?? 500) >= 500 ? 2 : 131000);
  const known = KNOWN_ERRORS[code];
  const status = spec.status ?? known?.status ?? 400;
  if (spec.rawBody !== undefined)
    return new Reply(status, spec.rawBody, { 'content-type': 'text/html; charset=utf-8' });
  const title = spec.title ?? known?.title ?? `(#${code}) Error ${code}`;
  const details = spec.details ?? known?.details;
  const isWhatsApp = code >= 130000 && code < 140000;
  return graphError(status, {
    // Meta prefixes WhatsApp error messages with the code; keep a caller's plain title in the same form.
    message: isWhatsApp && !title.startsWith('(#') ? `(#${code}) ${title}` : title,
    type: spec.type ?? 'OAuthException',
    code,
    ...(spec.subcode === undefined ? {} : { error_subcode: spec.subcode }),
    ...(details || isWhatsApp ? { error_data: { messaging_product: 'whatsapp', details: details ?? title } } : {}),
    ...(known?.transient ? { is_transient: true } : {}),
  });
}

const PHONE_FIELDS = [
  'id',
  'display_phone_number',
  'verified_name',
  'quality_rating',
  'code_verification_status',
  'platform_type',
];

/** Starts the fake on a random local port. */
export async function startFakeGraph(opts: FakeGraphOptions = {}): Promise<FakeGraph> {
  const tokens = new Map(Object.entries(opts.tokens ?? {}));
  const phones = new Map(Object.entries(opts.phoneNumbers ?? {}));
  const appId = opts.appId ?? '100000000000001';
  let latencyMs = opts.latencyMs ?? 0;
  let wamidCounter = 0;
  const injections: { remaining: number; spec: FakeErrorSpec }[] = [];
  const subscriptions = new Map<string, Array<{ id: string; name: string }>>();
  const sent: SentRecord[] = [];
  const reads: ReadRecord[] = [];
  const calls: CallRecord[] = [];
  const waiters = new Set<(s: SentRecord) => void>();
  const timers = new Set<NodeJS.Timeout>();
  const mediaFiles = new Map<string, FakeMediaSpec & { issued: number }>();
  const uploads: UploadRecord[] = [];
  let uploadLatencyMs = 0;
  let hostHeader = '127.0.0.1';

  /** `GET /{media-id}`: Meta's media lookup (any valid token of the app may read it). */
  function mediaNode(id: string, m: FakeMediaSpec & { issued: number }): Reply {
    m.issued++;
    const expired = m.issued <= (m.expiredUrls ?? 0);
    const exp = expired ? Date.now() - 1000 : Date.now() + (m.urlTtlMs ?? 300_000);
    return new Reply(200, {
      messaging_product: 'whatsapp',
      url: `http://${hostHeader}/media-download/${encodeURIComponent(id)}?exp=${exp}`,
      mime_type: m.mime,
      sha256: m.sha256 ?? createHash('sha256').update(m.bytes).digest('hex'),
      file_size: m.fileSize ?? m.bytes.length,
      id,
    });
  }

  const scopesOf = (spec: FakeTokenSpec): string[] => spec.scopes ?? DEFAULT_SCOPES;
  const canUsePhone = (spec: FakeTokenSpec, phone: FakePhoneSpec): boolean =>
    scopesOf(spec).includes(MESSAGING) && (!spec.wabaIds || !phone.wabaId || spec.wabaIds.includes(phone.wabaId));

  function takeInjection(kind: 'send' | 'read' | 'upload'): FakeErrorSpec | undefined {
    const idx = injections.findIndex((i) => (i.spec.on ?? 'send') === kind || i.spec.on === 'any');
    if (idx < 0) return undefined;
    const inj = injections[idx];
    inj.remaining -= 1;
    if (inj.remaining <= 0) injections.splice(idx, 1);
    return inj.spec;
  }

  function newWamid(to: string): string {
    wamidCounter += 1;
    // Real wamids are base64 protobufs that embed the recipient; this keeps the look and the uniqueness.
    const raw = Buffer.concat([
      Buffer.from(`\x18\x0b${to}\x15\x02\x00\x11\x18\x12`),
      randomBytes(9),
      Buffer.from([wamidCounter & 0xff]),
    ]);
    return `wamid.${raw.toString('base64')}`;
  }

  function route(
    method: string,
    segments: string[],
    query: Record<string, string>,
    token: string | undefined,
    body: unknown,
  ): Reply {
    // Graph answers token problems before it looks at the path.
    const spec = token ? tokens.get(token) : undefined;
    if (!token || !spec || spec.invalid || spec.expired) return badTokenReply(token, spec);

    const [node, edge, ...rest] = segments;
    if (!node) return invalidParam('Missing object id');
    if (rest.length > 0) {
      return graphError(400, {
        message: `Unknown path components: /${[edge, ...rest].join('/')}`,
        type: 'OAuthException',
        code: 2500,
      });
    }

    if (node === 'debug_token' && !edge && method === 'GET') return debugToken(spec, query.input_token);

    const mediaFile = mediaFiles.get(node);
    if (mediaFile && !edge && method === 'GET') return mediaNode(node, mediaFile);
    if (edge === 'subscribed_apps') return subscribedAppsEdge(method, node, spec);

    const phone = phones.get(node);
    if (!phone || !canUsePhone(spec, phone)) {
      // Meta hides objects you may not use behind the same text, but a token without the scope is told so.
      if (phone && !scopesOf(spec).includes(MESSAGING)) {
        return method === 'GET'
          ? graphError(403, { message: '(#200) Permissions error', type: 'OAuthException', code: 200 })
          : graphError(403, { message: KNOWN_ERRORS[10].title, type: 'OAuthException', code: 10 });
      }
      return unknownObject(method, node);
    }

    if (!edge) {
      if (method !== 'GET') return unknownObject(method, node);
      return phoneNode(node, phone, query.fields);
    }
    if (edge === 'messages' && method === 'POST') return messagesEdge(node, body);
    if (method === 'GET') {
      return invalidParam(`Tried accessing nonexisting field (${edge}) on node type (WhatsAppBusinessPhoneNumber)`);
    }
    return unknownObject(method, node);
  }

  // WABA webhooks subscriptions: read and write need whatsapp_business_management (Meta's (#200) otherwise).
  function subscribedAppsEdge(method: string, wabaId: string, spec: FakeTokenSpec): Reply {
    const known = subscriptions.has(wabaId) || [...phones.values()].some((p) => p.wabaId === wabaId);
    if (!known || (spec.wabaIds && !spec.wabaIds.includes(wabaId))) return unknownObject(method, wabaId);
    if (!scopesOf(spec).includes('whatsapp_business_management')) {
      return graphError(403, { message: '(#200) Permissions error', type: 'OAuthException', code: 200 });
    }
    const apps = subscriptions.get(wabaId) ?? [{ id: appId, name: 'Wharf Fake App' }];
    if (method === 'GET') {
      return new Reply(200, {
        data: apps.map((a) => ({
          whatsapp_business_api_data: {
            id: a.id,
            name: a.name,
            link: `https://www.facebook.com/games/?app_id=${a.id}`,
          },
        })),
      });
    }
    if (method === 'POST') {
      if (!apps.some((a) => a.id === appId))
        subscriptions.set(wabaId, [...apps, { id: appId, name: 'Wharf Fake App' }]);
      return new Reply(200, { success: true });
    }
    return unknownObject(method, wabaId);
  }

  function debugToken(caller: FakeTokenSpec, inputToken: string | undefined): Reply {
    if (caller.canDebug === false) {
      return invalidParam(
        'You must provide an app access token, or a user access token that is an owner or developer of the app',
      );
    }
    if (!inputToken) return invalidParam('The parameter input_token is required');
    const spec = tokens.get(inputToken);
    if (!spec || spec.invalid || spec.expired) {
      const message = spec?.expired
        ? 'Error validating access token: Session has expired.'
        : spec?.invalid
          ? 'Error validating access token: The session has been invalidated.'
          : 'Invalid OAuth access token.';
      return new Reply(200, { data: { is_valid: false, error: { code: 190, message }, scopes: [] } });
    }
    const scopes = scopesOf(spec);
    const now = Math.floor(Date.now() / 1000);
    return new Reply(200, {
      data: {
        app_id: appId,
        type: spec.type ?? 'SYSTEM_USER',
        application: 'Wharf Fake App',
        data_access_expires_at: 0,
        expires_at: 0,
        is_valid: true,
        issued_at: now - 3600,
        scopes,
        granular_scopes: scopes
          .filter((s) => s.startsWith('whatsapp_'))
          .map((scope) => (spec.wabaIds ? { scope, target_ids: spec.wabaIds } : { scope })),
        user_id: '100000000000002',
      },
    });
  }

  function phoneNode(id: string, phone: FakePhoneSpec, fields: string | undefined): Reply {
    const all: Record<string, unknown> = {
      id,
      display_phone_number: phone.displayPhoneNumber,
      verified_name: phone.verifiedName ?? 'Wharf Test',
      quality_rating: 'GREEN',
      code_verification_status: 'VERIFIED',
      platform_type: 'CLOUD_API',
    };
    const wanted = fields
      ? fields
          .split(',')
          .map((f) => f.trim())
          .filter(Boolean)
      : PHONE_FIELDS.slice(1);
    const unknown = wanted.find((f) => !PHONE_FIELDS.includes(f));
    if (unknown)
      return invalidParam(`Tried accessing nonexisting field (${unknown}) on node type (WhatsAppBusinessPhoneNumber)`);
    const out: Record<string, unknown> = {};
    for (const f of wanted) out[f] = all[f];
    out.id = id;
    return new Reply(200, out);
  }

  function messagesEdge(phoneNumberId: string, body: unknown): Reply {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return invalidParam('The parameter messaging_product is required.');
    }
    const b = body as Record<string, unknown>;
    if (b.messaging_product !== 'whatsapp') {
      return b.messaging_product === undefined
        ? invalidParam('The parameter messaging_product is required.')
        : invalidParam(
            'Param messaging_product must be one of {WHATSAPP} - got "' + String(b.messaging_product) + '".',
          );
    }

    if (b.status !== undefined) {
      if (b.status !== 'read') return invalidParam(`Param status must be one of {READ} - got "${String(b.status)}".`);
      const injected = takeInjection('read');
      if (injected) return injectedReply(injected);
      if (typeof b.message_id !== 'string' || !b.message_id)
        return invalidParam('The parameter message_id is required.');
      reads.push({ phoneNumberId, messageId: b.message_id, at: Date.now() });
      return new Reply(200, { success: true });
    }

    const injected = takeInjection('send');
    if (injected) return injectedReply(injected);

    // `recipient` carries a business-scoped user id (BSUID); `to` wins when both are present (Meta's rule).
    const asPosted = { ...b };
    if ((typeof b.to !== 'string' || !b.to) && typeof b.recipient === 'string' && b.recipient) {
      if (!/^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/.test(b.recipient)) {
        return graphError(400, {
          message: '(#131009) Parameter value is not valid',
          type: 'OAuthException',
          code: 131009,
          error_data: { messaging_product: 'whatsapp', details: `Invalid business-scoped user id: ${b.recipient}` },
        });
      }
      b.to = b.recipient;
    }
    if (typeof b.to !== 'string' || !b.to) return invalidParam('The parameter to is required.');
    if (b.recipient_type !== undefined && b.recipient_type !== 'individual' && b.recipient_type !== 'group') {
      return invalidParam(
        `Param recipient_type must be one of {INDIVIDUAL, GROUP} - got "${String(b.recipient_type)}".`,
      );
    }
    const type = b.type ?? 'text';
    let media: SentRecord['media'];
    let content: string;
    if (type === 'text') {
      const text = b.text as Record<string, unknown> | undefined;
      if (!text || typeof text.body !== 'string') return invalidParam("The parameter text['body'] is required.");
      if (text.body.length > TEXT_LIMIT)
        return invalidParam(`Param text['body'] must be at most ${TEXT_LIMIT} characters long.`);
      content = text.body;
    } else if (typeof type === 'string' && MEDIA_TYPES.includes(type)) {
      const checked = checkMediaObject(phoneNumberId, type, b[type]);
      if (checked instanceof Reply) return checked;
      media = checked;
      content = checked.caption ?? '';
    } else {
      return invalidParam(
        `This fake sends text, image, document, audio, video and sticker; got type "${String(type)}".`,
      );
    }
    if (!/^\d{6,15}$/.test(b.to) && b.to !== b.recipient) {
      return graphError(400, {
        message: '(#131009) Parameter value is not valid',
        type: 'OAuthException',
        code: 131009,
        error_data: { messaging_product: 'whatsapp', details: `Invalid WhatsApp recipient: ${b.to}` },
      });
    }
    const context = b.context as Record<string, unknown> | undefined;
    const replyTo = typeof context?.message_id === 'string' ? context.message_id : undefined;

    const record: SentRecord = {
      phoneNumberId,
      to: b.to,
      text: content,
      ...(media ? { type: type as string, media } : {}),
      ...(replyTo ? { replyTo } : {}),
      wamid: newWamid(b.to),
      body: asPosted,
      at: Date.now(),
    };
    sent.push(record);
    for (const w of [...waiters]) w(record);
    return new Reply(200, {
      messaging_product: 'whatsapp',
      contacts: [{ input: b.to, wa_id: b.to }],
      messages: [{ id: record.wamid }],
    });
  }

  /**
   * A media message's object, as Meta documents it: exactly one of `id` (an upload of this phone number)
   * and `link` (http/https); `caption` on image, video and document only; `filename` on document only.
   */
  function checkMediaObject(
    phoneNumberId: string,
    type: string,
    raw: unknown,
  ): NonNullable<SentRecord['media']> | Reply {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      return invalidParam(`The parameter ${type} is required.`);
    const o = raw as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const allowed = [
        'id',
        'link',
        ...(type === 'audio' || type === 'sticker' ? [] : ['caption']),
        ...(type === 'document' ? ['filename'] : []),
      ];
      if (!allowed.includes(k))
        return invalidParam(`Param ${type}['${k}'] is not a valid parameter for ${type} messages.`);
    }
    const id = typeof o.id === 'string' ? o.id : undefined;
    const link = typeof o.link === 'string' ? o.link : undefined;
    if (!!id === !!link) return invalidParam(`Exactly one of ${type}['id'] and ${type}['link'] is required.`);
    if (id && !uploads.some((u) => u.id === id && u.phoneNumberId === phoneNumberId)) {
      return graphError(400, {
        message: '(#131053) Media upload error',
        type: 'OAuthException',
        code: 131053,
        error_data: { messaging_product: 'whatsapp', details: `Unknown media id ${id} for this phone number` },
      });
    }
    if (link && !/^https?:\/\/[^\s]+$/.test(link)) return invalidParam(`Param ${type}['link'] must be a valid URL.`);
    if (o.caption !== undefined && (typeof o.caption !== 'string' || o.caption.length > 1024))
      return invalidParam(`Param ${type}['caption'] must be a string of at most 1024 characters.`);
    if (o.filename !== undefined && typeof o.filename !== 'string')
      return invalidParam(`Param ${type}['filename'] must be a string.`);
    return {
      ...(id ? { id } : { link }),
      ...(typeof o.caption === 'string' ? { caption: o.caption } : {}),
      ...(typeof o.filename === 'string' ? { filename: o.filename } : {}),
    };
  }

  /** `POST /{phone-number-id}/media`: multipart with `messaging_product`, `type` and `file`; answers `{id}`. */
  async function uploadEdge(
    req: IncomingMessage,
    raw: Buffer,
    segments: string[],
    token: string | undefined,
  ): Promise<Reply> {
    const spec = token ? tokens.get(token) : undefined;
    if (!token || !spec || spec.invalid || spec.expired) return badTokenReply(token, spec);
    const phoneNumberId = segments[0];
    const phone = phones.get(phoneNumberId);
    if (!phone || !canUsePhone(spec, phone)) return unknownObject('POST', phoneNumberId);
    const injected = takeInjection('upload');
    if (injected) return injectedReply(injected);
    const contentType = req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data;\s*boundary=/i.test(contentType))
      return invalidParam('Upload the file as multipart/form-data.');
    let form: FormData;
    try {
      form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    } catch {
      return invalidParam('The multipart body could not be parsed.');
    }
    if (form.get('messaging_product') !== 'whatsapp')
      return invalidParam('The parameter messaging_product is required.');
    const file = form.get('file');
    if (!file || typeof file === 'string') return invalidParam('The parameter file is required.');
    const type = form.get('type');
    const mime = file.type;
    if (typeof type !== 'string' || !type) return invalidParam('The parameter type is required.');
    if (!UPLOAD_TYPES.includes(mime.split(';')[0].trim()))
      return invalidParam(`Param file must be a file of a supported type; got "${mime}".`);
    const bytes = Buffer.from(await file.arrayBuffer());
    if (uploadLatencyMs > 0) await new Promise((resolve) => setTimeout(resolve, uploadLatencyMs));
    const record: UploadRecord = {
      id: String(4490709327384033n + BigInt(uploads.length + 1)),
      phoneNumberId,
      bytes,
      mime,
      type,
      filename: file.name,
      at: Date.now(),
    };
    uploads.push(record);
    return new Reply(200, { id: record.id });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake.graph');
    const query = Object.fromEntries(url.searchParams);
    const header = req.headers.authorization;
    const bearer =
      header && /^(Bearer|OAuth)\s+/i.test(header) ? header.replace(/^(Bearer|OAuth)\s+/i, '').trim() : undefined;
    const token = bearer || query.access_token || undefined;

    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');

    let reply: Reply;
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = Symbol('unparseable');
    }
    const segments = url.pathname.split('/').filter(Boolean);
    hostHeader = req.headers.host ?? hostHeader;
    const unversioned = segments[0] && /^v\d+\.\d+$/.test(segments[0]) ? segments.slice(1) : segments;
    if (req.method === 'POST' && unversioned.length === 2 && unversioned[1] === 'media') {
      const reply = await uploadEdge(req, Buffer.concat(chunks), unversioned, token);
      calls.push({ method: 'POST', path: url.pathname, query, auth: token, status: reply.status, at: Date.now() });
      res.writeHead(reply.status, {
        'content-type': 'application/json; charset=UTF-8',
        'x-fb-trace-id': fbtrace(),
        ...reply.headers,
      });
      res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
      return;
    }
    // A media download URL (not versioned; Meta serves these from another host): bearer token and expiry.
    if (segments[0] === 'media-download') {
      const m = mediaFiles.get(decodeURIComponent(segments[1] ?? ''));
      const ok = m && token && tokens.has(token) && Number(query.exp) > Date.now();
      calls.push({
        method: req.method ?? 'GET',
        path: url.pathname,
        query,
        auth: token,
        status: ok ? 200 : m ? 404 : 404,
        at: Date.now(),
      });
      if (!ok || !m) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
        return;
      }
      res.writeHead(200, { 'content-type': m.mime, 'content-length': String(m.bytes.length) }).end(m.bytes);
      return;
    }
    // The version prefix is optional in Graph (it defaults to the app's version).
    if (segments[0] && /^v\d+\.\d+$/.test(segments[0])) segments.shift();
    if (typeof body === 'symbol') {
      reply = invalidParam('The request body is not valid JSON.');
    } else {
      reply = route(req.method ?? 'GET', segments, query, token, body);
    }

    if (latencyMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, latencyMs);
        timers.add(t);
      });
    }
    calls.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      auth: token,
      status: reply.status,
      at: Date.now(),
    });
    if (res.destroyed) return;
    const isRaw = typeof reply.body === 'string';
    res.writeHead(reply.status, {
      'content-type': 'application/json; charset=UTF-8',
      'x-fb-trace-id': fbtrace(),
      ...reply.headers,
    });
    res.end(isRaw ? (reply.body as string) : JSON.stringify(reply.body));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    uploads,
    reads,
    calls,
    setToken: (token, spec = {}) => void tokens.set(token, spec),
    revokeToken: (token) => void tokens.delete(token),
    setPhoneNumber: (id, spec) => void phones.set(id, spec),
    setSubscribedApps: (wabaId, apps) => void subscriptions.set(wabaId, [...apps]),
    failNext: (n, error) => {
      if (n > 0) injections.push({ remaining: n, spec: error });
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    setUploadLatency: (ms) => {
      uploadLatencyMs = ms;
    },
    waitForSent(predicate, timeoutMs = 5000) {
      const existing = sent.find(predicate);
      if (existing) return Promise.resolve(existing);
      return new Promise<SentRecord>((resolve, reject) => {
        const waiter = (s: SentRecord): void => {
          if (!predicate(s)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(s);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          const seen = sent.map((s) => `${s.to}: ${JSON.stringify(s.text.slice(0, 60))}`).join('; ') || 'nothing';
          reject(new Error(`No matching send within ${timeoutMs} ms (sent so far: ${seen})`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    addMedia(id, spec) {
      mediaFiles.set(id, { ...spec, issued: 0 });
    },
    reset() {
      sent.length = 0;
      reads.length = 0;
      calls.length = 0;
      injections.length = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** An inbound message as Meta puts it in a webhook (text by default; pass `message` fields to change that). */
export interface InboundSpec {
  from: string;
  text?: string;
  name?: string;
  id?: string;
  /** Seconds since the epoch. */
  timestamp?: number;
  replyTo?: string;
  /** Extra or replacing fields of the message object (e.g. `{type:'image', image:{...}}`). */
  message?: Record<string, unknown>;
}

/** Builds a `whatsapp_business_account` webhook body with one change holding the given messages. */
export function inboundPayload(
  target: { phoneNumberId: string; displayPhoneNumber?: string; wabaId?: string },
  messages: InboundSpec[],
): Record<string, unknown> {
  const contacts = [...new Map(messages.map((m) => [m.from.replace(/^\+/, ''), m.name])).entries()].map(
    ([waId, name]) => ({ profile: { name: name ?? '' }, wa_id: waId }),
  );
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: target.wabaId ?? '100000000000010',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: {
                display_phone_number: target.displayPhoneNumber ?? '15550000000',
                phone_number_id: target.phoneNumberId,
              },
              contacts,
              messages: messages.map((m) => ({
                from: m.from.replace(/^\+/, ''),
                id: m.id ?? `wamid.${randomBytes(18).toString('base64')}`,
                timestamp: String(m.timestamp ?? Math.floor(Date.now() / 1000)),
                ...(m.replyTo ? { context: { from: target.displayPhoneNumber ?? '15550000000', id: m.replyTo } } : {}),
                type: 'text',
                text: { body: m.text ?? '' },
                ...m.message,
              })),
            },
          },
        ],
      },
    ],
  };
}

/** A status update as Meta reports it for an outbound message. */
export interface StatusSpec {
  id: string;
  status: 'sent' | 'delivered' | 'read' | 'failed';
  recipient: string;
  timestamp?: number;
  error?: { code: number; title: string; message?: string; details?: string };
}

/** Builds a webhook body with one change holding the given statuses. */
export function statusPayload(
  target: { phoneNumberId: string; displayPhoneNumber?: string; wabaId?: string },
  statuses: StatusSpec[],
): Record<string, unknown> {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: target.wabaId ?? '100000000000010',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: {
                display_phone_number: target.displayPhoneNumber ?? '15550000000',
                phone_number_id: target.phoneNumberId,
              },
              statuses: statuses.map((s) => ({
                id: s.id,
                status: s.status,
                timestamp: String(s.timestamp ?? Math.floor(Date.now() / 1000)),
                recipient_id: s.recipient.replace(/^\+/, ''),
                ...(s.error
                  ? {
                      errors: [
                        {
                          code: s.error.code,
                          title: s.error.title,
                          message: s.error.message ?? s.error.title,
                          error_data: { details: s.error.details ?? s.error.title },
                          href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/',
                        },
                      ],
                    }
                  : {
                      pricing: {
                        billable: true,
                        pricing_model: 'PMP',
                        category: 'service',
                        type: 'free_customer_service',
                      },
                    }),
              })),
            },
          },
        ],
      },
    ],
  };
}

/** The `X-Hub-Signature-256` header Meta would send for `rawBody`. */
export function signPayload(rawBody: string | Buffer, appSecret: string): string {
  return `sha256=${createHmac('sha256', appSecret).update(rawBody).digest('hex')}`;
}
