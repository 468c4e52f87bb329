/**
 * A small client for the parts of Meta's Graph API that a WhatsApp Cloud API channel needs: checking a
 * channel's credentials, sending a text and marking a message read. Every failure becomes a `GraphError` that
 * says whether retrying can help and which Wharf failure type it is, so activities never re-derive Meta's codes.
 * The access token is only ever sent in the Authorization header and scrubbed from everything we surface.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { FAILURE, type FailureType } from '../errors.js';
import { graphCalls } from '../metrics.js';
import { MediaInfoSchema, SentMessageSchema, SubscribedAppsSchema, SubscribedSchema } from './graph-responses.js';

/** The scope a token needs to send WhatsApp messages. */
export const MESSAGING_SCOPE = 'whatsapp_business_messaging';

/** How the client reaches the Graph API. */
export interface GraphClientOptions {
  /** e.g. `https://graph.facebook.com` (tests point it at the fake server). */
  baseUrl: string;
  /** e.g. `v23.0`. */
  version: string;
  /** Per-request timeout; defaults to 10 s. */
  timeoutMs?: number;
}

/** The ids and token of a Cloud API channel, as checked on config save. */
export interface CloudCredentials {
  phoneNumberId: string;
  businessAccountId: string;
  accessToken: string;
}

/** Which part of the config is wrong. */
export type CredentialProblem = 'bad_token' | 'unknown_phone_number' | 'missing_permission';

/** The outcome of a credential check: the business number, or which field is wrong and what to do. */
export type CredentialCheck =
  | { ok: true; displayPhoneNumber: string; verifiedName?: string }
  | { ok: false; problem: CredentialProblem; reason: string };

/** A text to send. `to` may carry a leading `+`; `replyTo` is the wamid to quote. */
export interface GraphSendTextInput {
  phoneNumberId: string;
  accessToken: string;
  to: string;
  body: string;
  replyTo?: string;
  /** Ask WhatsApp to render a preview of the first URL in the body. */
  previewUrl?: boolean;
}

/** A message to mark read (which also shows blue ticks to the sender). */
export interface MarkReadInput {
  phoneNumberId: string;
  accessToken: string;
  messageId: string;
}

/** A WhatsApp Business Account and the token that may read it. */
export interface BusinessAccountInput {
  businessAccountId: string;
  accessToken: string;
}

/** An app subscribed to a WhatsApp Business Account's webhooks. */
export interface SubscribedApp {
  id: string;
  name: string;
}

/** The Graph API operations Wharf uses. */
export interface GraphClient {
  checkCredentials(creds: CloudCredentials): Promise<CredentialCheck>;
  sendText(input: GraphSendTextInput): Promise<{ messageId: string }>;
  markRead(input: MarkReadInput): Promise<void>;
  /** `GET /{waba-id}/subscribed_apps`: the apps that receive this account's webhooks (none: no inbound). */
  subscribedApps(input: BusinessAccountInput): Promise<SubscribedApp[]>;
  /** `POST /{waba-id}/subscribed_apps`: subscribes the token's app to this account's webhooks. */
  subscribeApp(input: BusinessAccountInput): Promise<void>;
  /** Looks up an inbound media object: its short-lived download URL, type, size and hash. */
  getMedia(input: { mediaId: string; accessToken: string }): Promise<MediaInfo>;
  /**
   * Downloads a media URL that `getMedia` returned, with the token (it goes to that URL and nowhere else).
   * A body larger than `maxBytes` is refused without being read to the end.
   */
  downloadMedia(input: {
    url: string;
    accessToken: string;
    maxBytes: number;
  }): Promise<{ bytes: Buffer; mimeType: string | null }>;
  /** `POST /{phone_number_id}/media` (multipart): uploads a file to send later; Meta keeps it 30 days. */
  uploadMedia(input: UploadMediaInput): Promise<{ id: string }>;
  /** Sends an image, document, audio or video message, by uploaded media id or by `link` (Meta fetches it). */
  sendMedia(input: SendMediaInput): Promise<{ messageId: string }>;
}

/** A file to upload for sending. */
export interface UploadMediaInput {
  phoneNumberId: string;
  accessToken: string;
  bytes: Buffer;
  mime: string;
  filename: string;
}

/** A media message to send: exactly one of `mediaId` (uploaded) and `link` (an https URL Meta fetches). */
export interface SendMediaInput {
  phoneNumberId: string;
  accessToken: string;
  to: string;
  kind: 'image' | 'document' | 'audio' | 'video';
  mediaId?: string;
  link?: string;
  /** Images, videos and documents only (Meta refuses a caption on audio). */
  caption?: string;
  /** Documents only. */
  filename?: string;
}

/** What `GET /{media-id}` answers. */
export interface MediaInfo {
  url: string;
  mimeType: string | null;
  /** Meta's SHA-256 of the file (hex in the lookup's answer). */
  sha256: string | null;
  fileSize: number | null;
}

/** Why a download failed: the URL expired (401/403/404: look the media up again), too big, or unreachable. */
export class MediaDownloadError extends Error {
  override readonly name = 'MediaDownloadError';
  constructor(
    readonly reason: 'expired' | 'too_big' | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

/** What a `GraphError` is built from. */
export interface GraphErrorInit {
  operation: string;
  /** HTTP status; 0 when no response arrived (network error, timeout). */
  status: number;
  /** Meta's error code; 0 when the response carried none. */
  code: number;
  subcode?: number;
  title: string;
  details?: string;
  metaType?: string;
  fbtraceId?: string;
  retryable: boolean;
  failureType?: FailureType;
}

/** A failed Graph API call, classified: `retryable` and `failureType` decide what the activity does with it. */
export class GraphError extends Error {
  override readonly name = 'GraphError';
  readonly operation: string;
  readonly status: number;
  readonly code: number;
  readonly subcode?: number;
  readonly title: string;
  readonly details?: string;
  readonly metaType?: string;
  readonly fbtraceId?: string;
  readonly retryable: boolean;
  readonly failureType?: FailureType;

  constructor(init: GraphErrorInit) {
    super(describe(init));
    this.operation = init.operation;
    this.status = init.status;
    this.code = init.code;
    this.subcode = init.subcode;
    this.title = init.title;
    this.details = init.details;
    this.metaType = init.metaType;
    this.fbtraceId = init.fbtraceId;
    this.retryable = init.retryable;
    this.failureType = init.failureType;
  }
}

function describe(init: GraphErrorInit): string {
  if (init.status === 0) return `Graph API ${init.operation} failed: ${init.title}`;
  const code = init.code ? `, code ${init.code}${init.subcode ? `/${init.subcode}` : ''}` : '';
  const details = init.details && init.details !== init.title ? ` (${init.details})` : '';
  return `Meta refused ${init.operation} (HTTP ${init.status}${code}): ${init.title}${details}`;
}

// Codes that mean the token itself is unusable: invalid/expired (190), session key invalid (102), none sent (104).
const TOKEN_CODES = new Set([102, 104, 190]);
// Graph-wide throttles (4 app, 17 user, 32 page, 613 custom), WhatsApp throughput (80007, 130429), spam (131048)
// and pair rate (131056): all clear on their own, so they are retried with backoff.
const RATE_LIMIT_CODES = new Set([4, 17, 32, 613, 80007, 130429, 131048, 131056]);
// Meta's "try again later" codes: unknown (1), temporarily unavailable (2), something went wrong (131000),
// service unavailable (131016), account in maintenance (131057), server temporarily unavailable (133004).
const TRANSIENT_CODES = new Set([1, 2, 131000, 131016, 131057, 133004]);
// 3 capability, 10 permission denied, 200-299 the permission family.
const isPermissionCode = (code: number): boolean => code === 3 || code === 10 || (code >= 200 && code <= 299);
// WhatsApp's own send errors live in 130000-139999 (131xxx message, 132xxx template, 133xxx registration).
const isWhatsAppCode = (code: number): boolean => code >= 130000 && code <= 139999;
// Subcode 33 is Graph's "object does not exist, cannot be loaded due to missing permissions".
const UNKNOWN_OBJECT_SUBCODE = 33;

interface Classification {
  retryable: boolean;
  failureType?: FailureType;
}

/** Maps Meta's status/code to Wharf's failure semantics. `objectRead` is true when the call reads the phone node. */
export function classifyGraphError(
  status: number,
  code: number,
  subcode: number | undefined,
  opts: { objectRead?: boolean; transientHint?: boolean } = {},
): Classification {
  if (TOKEN_CODES.has(code) || (status === 401 && code === 0))
    return { retryable: false, failureType: FAILURE.badToken };
  if (RATE_LIMIT_CODES.has(code) || status === 429) return { retryable: true, failureType: FAILURE.rateLimited };
  if (TRANSIENT_CODES.has(code) || opts.transientHint || status >= 500) return { retryable: true };
  if (isPermissionCode(code) || (status === 403 && code === 0))
    return { retryable: false, failureType: FAILURE.missingPermission };
  if (code === 100 && (subcode === UNKNOWN_OBJECT_SUBCODE || opts.objectRead))
    return { retryable: false, failureType: FAILURE.unknownPhoneNumber };
  if (isWhatsAppCode(code) || code === 100) return { retryable: false, failureType: FAILURE.sendRejected };
  return { retryable: false };
}

/** Removes every occurrence of `secret` from `text`, so Meta echoing a token never leaks it further. */
function scrub(text: string, secret: string): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}

interface GraphErrorBody {
  message?: unknown;
  type?: unknown;
  code?: unknown;
  error_subcode?: unknown;
  error_user_title?: unknown;
  error_user_msg?: unknown;
  error_data?: unknown;
  is_transient?: unknown;
  fbtrace_id?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function errorFromResponse(
  operation: string,
  status: number,
  parsed: unknown,
  rawText: string,
  token: string,
  opts: { objectRead?: boolean },
): GraphError {
  const body = (isRecord(parsed) && isRecord(parsed.error) ? parsed.error : {}) as GraphErrorBody;
  const code = num(body.code) ?? 0;
  const subcode = num(body.error_subcode);
  // Meta prefixes WhatsApp messages with "(#131047) "; the code is reported separately, so drop the echo.
  const message = str(body.message)?.replace(/^\(#\d+\)\s*/, '');
  const fallbackTitle = rawText.trim() ? rawText.trim().slice(0, 200) : `HTTP ${status} with an empty body`;
  const title = str(body.error_user_title) ?? message ?? fallbackTitle;
  const errorData = isRecord(body.error_data) ? body.error_data : undefined;
  const details = str(errorData?.details) ?? str(body.error_user_msg);
  const { retryable, failureType } = classifyGraphError(status, code, subcode, {
    ...opts,
    transientHint: body.is_transient === true,
  });
  return new GraphError({
    operation,
    status,
    code,
    subcode,
    title: scrub(title, token),
    details: details === undefined ? undefined : scrub(details, token),
    metaType: str(body.type),
    fbtraceId: str(body.fbtrace_id),
    retryable,
    failureType,
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A business-scoped user id: a two-letter country code, a dot, an optional `ENT.`, then up to 128 alphanumerics. */
export function isBsuid(id: string): boolean {
  return /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/.test(id);
}

/** Meta wants the recipient as digits only; BSUIDs and other non-phone ids pass through untouched. */
export function toGraphRecipient(to: string): string {
  const trimmed = to.trim();
  return /^\+?[\d\s\-().]+$/.test(trimmed) ? trimmed.replace(/\D/g, '') : trimmed;
}

// Kept-alive connections to Meta. Plain node:http rather than fetch: on the send path fetch's WHATWG
// streams and abort signals cost about 12 % of Wharf's event loop (CPU profile at 100 msgs/s).
const HTTP_AGENT = new http.Agent({ keepAlive: true, maxSockets: 128 });
const HTTPS_AGENT = new https.Agent({ keepAlive: true, maxSockets: 128 });

/**
 * The slowest upload link Wharf waits for: an upload gets 60 s (six times the call timeout) and one more
 * second per 256 KiB of its body, so Meta's largest document (100 MB) has about 7 minutes.
 */
const UPLOAD_MIN_BYTES_PER_SECOND = 256 * 1024;

/** One HTTP exchange: the status and body text, or a rejection on network failure or after `timeoutMs`. */
function exchange(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | Buffer | undefined,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const req = (secure ? https.request : http.request)(
      url,
      {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        agent: secure ? HTTPS_AGENT : HTTP_AGENT,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete)
            fail(
              Object.assign(new Error('the connection closed before the answer was complete'), { code: 'ECONNRESET' }),
            );
        });
      },
    );
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: 'TimeoutError' })),
      timeoutMs,
    );
    function fail(err: Error): void {
      clearTimeout(timer);
      reject(err);
    }
    req.on('error', fail);
    req.end(body);
  });
}

/** Creates a Graph API client; the timeout is injectable so tests can provoke it. */
export function createGraphClient(opts: GraphClientOptions): GraphClient {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const root = `${opts.baseUrl.replace(/\/+$/, '')}/${opts.version.replace(/^\/+|\/+$/g, '')}`;

  async function call(
    operation: string,
    method: 'GET' | 'POST',
    path: string,
    token: string,
    init: {
      query?: Record<string, string>;
      body?: unknown;
      objectRead?: boolean;
      raw?: { body: Buffer; contentType: string };
    } = {},
  ): Promise<unknown> {
    const url = new URL(`${root}/${path}`);
    for (const [k, v] of Object.entries(init.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.raw) headers['content-type'] = init.raw.contentType;

    let status: number;
    let text: string;
    try {
      ({ status, text } = await exchange(
        url,
        method,
        headers,
        init.raw ? init.raw.body : init.body === undefined ? undefined : JSON.stringify(init.body),
        init.raw ? timeoutMs * 6 + Math.ceil(init.raw.body.length / UPLOAD_MIN_BYTES_PER_SECOND) * 1000 : timeoutMs,
      ));
    } catch (err) {
      // Deliberately no `cause`: a request error can carry the request, and the URL of debug_token holds the token.
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      const why = timedOut
        ? `no answer within ${timeoutMs} ms`
        : `could not reach ${opts.baseUrl}: ${networkReason(err)}`;
      graphCalls.inc({ endpoint: operation, code: 'network' });
      throw new GraphError({ operation, status: 0, code: 0, title: scrub(why, token), retryable: true });
    }

    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status >= 300 || (isRecord(parsed) && isRecord(parsed.error))) {
      const err = errorFromResponse(operation, status, parsed, text, token, { objectRead: init.objectRead });
      graphCalls.inc({ endpoint: operation, code: String(err.code || `http_${status}`) });
      throw err;
    }
    graphCalls.inc({ endpoint: operation, code: 'ok' });
    return parsed;
  }

  async function checkCredentials(creds: CloudCredentials): Promise<CredentialCheck> {
    const { phoneNumberId, businessAccountId, accessToken } = creds;
    // Both calls are independent, so run them together; transient failures of either are rethrown below.
    const [debug, phone] = await Promise.allSettled([
      call('checkCredentials (debug_token)', 'GET', 'debug_token', accessToken, {
        query: { input_token: accessToken },
      }),
      call('checkCredentials (phone number)', 'GET', encodeURIComponent(phoneNumberId), accessToken, {
        query: { fields: 'display_phone_number,verified_name' },
        objectRead: true,
      }),
    ]);
    const debugErr = debug.status === 'rejected' ? asGraphError(debug.reason) : undefined;
    const phoneErr = phone.status === 'rejected' ? asGraphError(phone.reason) : undefined;

    // A refused token explains everything else, so it wins even when the other call failed transiently.
    for (const err of [debugErr, phoneErr]) {
      if (err?.failureType === FAILURE.badToken)
        return { ok: false, problem: 'bad_token', reason: badTokenReason(err) };
    }
    const debugData = debug.status === 'fulfilled' && isRecord(debug.value) ? debug.value.data : undefined;
    if (isRecord(debugData) && debugData.is_valid === false) {
      const inner = isRecord(debugData.error) ? debugData.error : {};
      return {
        ok: false,
        problem: 'bad_token',
        reason: badTokenReason({
          code: num(inner.code) ?? 190,
          title: scrub(str(inner.message) ?? 'not valid', accessToken),
        }),
      };
    }
    // debug_token is the definitive word on scopes; a phone read without them can look like an unknown object.
    // When debug_token itself is refused (it wants an app or app-developer token), the phone read is our evidence.
    if (isRecord(debugData)) {
      const missing = missingScope(debugData, businessAccountId);
      if (missing) return { ok: false, problem: 'missing_permission', reason: missing };
    }
    for (const err of [debugErr, phoneErr]) if (err?.retryable) throw err;

    if (phoneErr) {
      if (phoneErr.failureType === FAILURE.unknownPhoneNumber) {
        return {
          ok: false,
          problem: 'unknown_phone_number',
          reason:
            `Meta does not know phone_number_id ${phoneNumberId}, or this access_token cannot see it ` +
            `(code ${phoneErr.code}: ${phoneErr.title}). Copy the Phone Number ID from WhatsApp → API Setup in ` +
            `Meta for Developers and save it again.`,
        };
      }
      if (phoneErr.failureType === FAILURE.missingPermission) {
        return {
          ok: false,
          problem: 'missing_permission',
          reason:
            `The access_token may not use phone_number_id ${phoneNumberId} (code ${phoneErr.code}: ${phoneErr.title}). ` +
            `Generate a System User token with ${MESSAGING_SCOPE}, with the System User assigned to WhatsApp ` +
            `Business Account ${businessAccountId}, and save it again.`,
        };
      }
      throw phoneErr;
    }

    const node = phone.status === 'fulfilled' && isRecord(phone.value) ? phone.value : {};
    const displayPhoneNumber = str(node.display_phone_number);
    if (!displayPhoneNumber) {
      throw new GraphError({
        operation: 'checkCredentials (phone number)',
        status: 200,
        code: 0,
        title: `the phone number ${phoneNumberId} came back without display_phone_number`,
        retryable: true,
      });
    }
    const verifiedName = str(node.verified_name);
    return verifiedName ? { ok: true, displayPhoneNumber, verifiedName } : { ok: true, displayPhoneNumber };
  }

  async function sendText(input: GraphSendTextInput): Promise<{ messageId: string }> {
    // A user known only by a business-scoped user id (BSUID) is addressed with `recipient` (Meta's Messages
    // API: `to` takes phone numbers, `recipient` a BSUID or parent BSUID).
    const to = toGraphRecipient(input.to);
    const body: Record<string, unknown> = {
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      ...(isBsuid(to) ? { recipient: to } : { to }),
      type: 'text',
      text: input.previewUrl === undefined ? { body: input.body } : { body: input.body, preview_url: input.previewUrl },
    };
    if (input.replyTo) body.context = { message_id: input.replyTo };
    const res = await call(
      'sendText',
      'POST',
      `${encodeURIComponent(input.phoneNumberId)}/messages`,
      input.accessToken,
      {
        body,
      },
    );
    const sent = SentMessageSchema.safeParse(res);
    if (!sent.success) {
      // Meta answered 2xx, so the text may well be out; retrying could send it twice.
      throw new GraphError({
        operation: 'sendText',
        status: 200,
        code: 0,
        title: 'Meta accepted the message but returned no message id',
        retryable: false,
      });
    }
    return { messageId: sent.data.messages[0].id };
  }

  async function markRead(input: MarkReadInput): Promise<void> {
    await call('markRead', 'POST', `${encodeURIComponent(input.phoneNumberId)}/messages`, input.accessToken, {
      body: { messaging_product: 'whatsapp', status: 'read', message_id: input.messageId },
    });
  }

  async function getMedia({ mediaId, accessToken }: { mediaId: string; accessToken: string }): Promise<MediaInfo> {
    const res = await call('getMedia', 'GET', encodeURIComponent(mediaId), accessToken, { objectRead: true });
    const info = MediaInfoSchema.safeParse(res);
    if (!info.success)
      throw new GraphError({
        operation: 'getMedia',
        status: 200,
        code: 0,
        title: 'Meta returned no download URL for the media',
        retryable: true,
      });
    return {
      url: info.data.url,
      mimeType: info.data.mime_type,
      sha256: info.data.sha256,
      fileSize: info.data.file_size,
    };
  }

  function downloadMedia({
    url,
    accessToken,
    maxBytes,
  }: {
    url: string;
    accessToken: string;
    maxBytes: number;
  }): Promise<{ bytes: Buffer; mimeType: string | null }> {
    const target = new URL(url);
    if (target.protocol !== 'https:' && target.protocol !== 'http:')
      return Promise.reject(new MediaDownloadError('unavailable', `refusing a ${target.protocol} media URL`));
    return new Promise((resolve, reject) => {
      const secure = target.protocol === 'https:';
      // No redirects are followed: the token goes to the URL Meta's lookup returned and nowhere else.
      const req = (secure ? https.get : http.get)(
        target,
        { headers: { authorization: `Bearer ${accessToken}` }, agent: secure ? HTTPS_AGENT : HTTP_AGENT },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status === 401 || status === 403 || status === 404) {
            res.resume();
            clearTimeout(timer);
            reject(new MediaDownloadError('expired', `the media URL answered ${status} (expired or not this token's)`));
            return;
          }
          if (status < 200 || status >= 300) {
            res.resume();
            clearTimeout(timer);
            reject(new MediaDownloadError('unavailable', `the media URL answered ${status}`));
            return;
          }
          const declared = Number(res.headers['content-length']);
          if (Number.isFinite(declared) && declared > maxBytes) {
            res.destroy();
            clearTimeout(timer);
            reject(new MediaDownloadError('too_big', `the file is ${declared} bytes, over the ${maxBytes}-byte limit`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > maxBytes) {
              res.destroy();
              clearTimeout(timer);
              reject(new MediaDownloadError('too_big', `the file is over the ${maxBytes}-byte limit`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            clearTimeout(timer);
            resolve({
              bytes: Buffer.concat(chunks),
              mimeType: (res.headers['content-type'] ?? '').split(';')[0].trim() || null,
            });
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(new MediaDownloadError('unavailable', `the download broke off: ${networkReason(err)}`));
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs * 3} ms`)), timeoutMs * 3);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(
          err instanceof MediaDownloadError
            ? err
            : new MediaDownloadError('unavailable', `could not download the media: ${networkReason(err)}`),
        );
      });
    });
  }

  async function uploadMedia(input: UploadMediaInput): Promise<{ id: string }> {
    // Meta's upload is multipart: messaging_product, the file with its type, and `type` (the MIME type again).
    const boundary = `wharf-${randomBytes(12).toString('hex')}`;
    const field = (name: string, value: string): string =>
      `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const safeName = input.filename.replace(/["\\\r\n]/g, '_');
    const body = Buffer.concat([
      Buffer.from(field('messaging_product', 'whatsapp') + field('type', input.mime)),
      Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${safeName}"\r\ncontent-type: ${input.mime}\r\n\r\n`,
      ),
      input.bytes,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await call(
      'uploadMedia',
      'POST',
      `${encodeURIComponent(input.phoneNumberId)}/media`,
      input.accessToken,
      {
        raw: { body, contentType: `multipart/form-data; boundary=${boundary}` },
      },
    );
    const id = isRecord(res) ? str(res.id) : undefined;
    // An upload that returned no id sent nothing: trying again is safe.
    if (!id)
      throw new GraphError({
        operation: 'uploadMedia',
        status: 200,
        code: 0,
        title: 'Meta returned no media id for the upload',
        retryable: true,
      });
    return { id };
  }

  async function sendMedia(input: SendMediaInput): Promise<{ messageId: string }> {
    const to = toGraphRecipient(input.to);
    const media: Record<string, unknown> = input.mediaId ? { id: input.mediaId } : { link: input.link };
    if (input.caption && input.kind !== 'audio') media.caption = input.caption;
    if (input.filename && input.kind === 'document') media.filename = input.filename;
    const res = await call(
      'sendMedia',
      'POST',
      `${encodeURIComponent(input.phoneNumberId)}/messages`,
      input.accessToken,
      {
        body: {
          messaging_product: 'whatsapp',
          recipient_type: 'individual',
          ...(isBsuid(to) ? { recipient: to } : { to }),
          type: input.kind,
          [input.kind]: media,
        },
      },
    );
    const messages = isRecord(res) && Array.isArray(res.messages) ? res.messages : [];
    const messageId = isRecord(messages[0]) ? str(messages[0].id) : undefined;
    // As for texts: Meta answered 2xx, so the file may be out; retrying could send it twice.
    if (!messageId)
      throw new GraphError({
        operation: 'sendMedia',
        status: 200,
        code: 0,
        title: 'Meta accepted the message but returned no message id',
        retryable: false,
      });
    return { messageId };
  }

  async function subscribedApps(input: BusinessAccountInput): Promise<SubscribedApp[]> {
    const data = await call(
      'subscribedApps',
      'GET',
      `${encodeURIComponent(input.businessAccountId)}/subscribed_apps`,
      input.accessToken,
      { objectRead: true },
    );
    return SubscribedAppsSchema.parse(data).data;
  }

  async function subscribeApp(input: BusinessAccountInput): Promise<void> {
    const data = await call(
      'subscribeApp',
      'POST',
      `${encodeURIComponent(input.businessAccountId)}/subscribed_apps`,
      input.accessToken,
      { objectRead: true },
    );
    if (!SubscribedSchema.safeParse(data).success) {
      throw new GraphError({
        operation: 'subscribeApp',
        status: 200,
        code: 0,
        title: 'Meta did not confirm the subscription (no "success": true).',
        retryable: false,
      });
    }
  }

  return {
    checkCredentials,
    sendText,
    markRead,
    getMedia,
    downloadMedia,
    uploadMedia,
    sendMedia,
    subscribedApps,
    subscribeApp,
  };
}

function asGraphError(err: unknown): GraphError {
  if (err instanceof GraphError) return err;
  // Only our own code runs inside call(); anything else is a bug, but still must not be mistaken for bad config.
  return new GraphError({
    operation: 'checkCredentials',
    status: 0,
    code: 0,
    title: 'unexpected failure',
    retryable: true,
  });
}

function networkReason(err: unknown): string {
  if (!(err instanceof Error)) return 'network error';
  return str((err as { code?: unknown }).code) ?? err.message;
}

function badTokenReason(err: { code: number; title: string }): string {
  return (
    `The access_token was refused by Meta (code ${err.code}: ${err.title}). ` +
    `Generate a System User token with ${MESSAGING_SCOPE} and save it again.`
  );
}

/** Returns a reason when debug_token shows the token cannot message for this WABA, else undefined. */
function missingScope(data: Record<string, unknown>, businessAccountId: string): string | undefined {
  const scopes = Array.isArray(data.scopes) ? data.scopes.filter((s): s is string => typeof s === 'string') : [];
  if (!scopes.includes(MESSAGING_SCOPE)) {
    const has = scopes.length ? `it has: ${scopes.join(', ')}` : 'it has no scopes';
    return (
      `The access_token lacks the ${MESSAGING_SCOPE} permission (${has}). Generate a System User token with ` +
      `${MESSAGING_SCOPE} in Business Settings → System Users and save it again.`
    );
  }
  // Granular scopes narrow a permission to specific WABAs; no target_ids means every asset the user can reach.
  const granular = Array.isArray(data.granular_scopes) ? data.granular_scopes.filter(isRecord) : [];
  const entry = granular.find((g) => g.scope === MESSAGING_SCOPE);
  const targets = entry && Array.isArray(entry.target_ids) ? entry.target_ids.map(String) : undefined;
  if (targets && targets.length > 0 && !targets.includes(businessAccountId)) {
    return (
      `The access_token has ${MESSAGING_SCOPE}, but not for WhatsApp Business Account ${businessAccountId} ` +
      `(only ${targets.join(', ')}). Assign that account to the System User, generate a new token and save it again.`
    );
  }
  return undefined;
}
