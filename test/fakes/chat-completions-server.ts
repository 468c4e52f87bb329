/**
 * A fake OpenAI-compatible chat-completions endpoint over real HTTP (node:http). It checks the request the
 * way a strict server would — path, bearer key, JSON body with `model` and a `messages` array of
 * `{role, content}` (system/user/assistant) — records every request, and answers in OpenAI's response and
 * error shapes. Knobs: the reply function (may be async, e.g. to hold a request), injected failures and latency.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One chat message as the API takes it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  /** Text, or (user messages, OpenAI's content-part form) text and image parts. */
  content: string | ContentPart[];
}

/** One part of a user message in OpenAI's content-part form. */
export type ContentPart =
  { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail?: string } };

/** The text of a message's content (parts joined). */
export const textOf = (content: ChatMessage['content']): string =>
  typeof content === 'string' ? content : content.map((p) => (p.type === 'text' ? p.text : '')).join('');

/** One request the fake saw. */
export interface CompletionRequest {
  method: string;
  path: string;
  /** The bearer key sent (undefined when none). */
  apiKey: string | undefined;
  /** The parsed JSON body (only when it was well-formed). */
  body: { model: string; messages: ChatMessage[]; [k: string]: unknown } | undefined;
  /** Status the fake answered with. */
  status: number;
  /** Why the fake refused the request's shape, when it did (400/404/401 for a missing or wrong key). */
  problem?: string;
  at: number;
}

/** One `POST /audio/transcriptions` the fake answered (OpenAI's multipart shape: `file`, `model`). */
export interface TranscriptionRequest {
  apiKey: string | undefined;
  model: string;
  filename: string;
  mime: string;
  bytes: Buffer;
  status: number;
  at: number;
}

/** A reply function: the Markdown content of the assistant message. */
export type ReplyFn = (req: { model: string; messages: ChatMessage[] }) => string | Promise<string>;

/** Options of {@link startFakeCompletions}. */
export interface FakeCompletionsOptions {
  /** API keys the fake accepts. */
  apiKeys: string[];
  /** Path prefix of the base URL: `/v1` (default) or `''` for a server without one. */
  basePath?: string;
  reply?: ReplyFn;
  /** The text of a transcription (default: `transcript of <n> bytes`). */
  transcribe?: (file: { bytes: Buffer; mime: string; model: string }) => string;
  /** Delay before answering, fixed or per request (e.g. by the new message's text). */
  latencyMs?: number | ((req: { model: string; messages: ChatMessage[] }) => number);
}

/** A running fake. */
export interface FakeCompletions {
  /** The base URL to configure on the agent (`http://127.0.0.1:<port>/v1`). */
  baseUrl: string;
  requests: CompletionRequest[];
  /** Transcriptions asked for (`POST {base}/audio/transcriptions`). */
  transcriptions: TranscriptionRequest[];
  /** Requests whose shape the fake refused (should stay empty: Wharf must send well-formed requests). */
  readonly malformed: CompletionRequest[];
  setReply(fn: ReplyFn): void;
  setLatency(ms: number | ((req: { model: string; messages: ChatMessage[] }) => number)): void;
  /** The next `n` well-formed, authorised requests fail with `status` (and an OpenAI-style error body unless given). */
  failNext(n: number, status: number, body?: unknown): void;
  /** Requests whose last message is a user message with exactly this content. */
  requestsFor(lastUserText: string): CompletionRequest[];
  /** Resolves once `predicate` holds for some request (already seen or arriving within the timeout). */
  waitForRequest(predicate: (r: CompletionRequest) => boolean, timeoutMs?: number): Promise<CompletionRequest>;
  close(): Promise<void>;
}

const ROLES = new Set(['system', 'user', 'assistant']);

const errorBody = (message: string, type: string, code: string | null): unknown => ({
  error: { message, type, param: null, code },
});

const DEFAULT_FAILURES: Record<number, unknown> = {
  401: errorBody('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'),
  429: errorBody('Rate limit reached for requests. Please try again in 1s.', 'requests', 'rate_limit_exceeded'),
  500: errorBody('The server had an error while processing your request. Sorry about that!', 'server_error', null),
  503: errorBody('The engine is currently overloaded, please try again later.', 'server_error', null),
};

/** Checks a parsed body; returns what is wrong, or null. */
function shapeProblem(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || !b.model) return "'model' is required";
  if (!Array.isArray(b.messages) || b.messages.length === 0) return "'messages' must be a non-empty array";
  for (const [i, m] of b.messages.entries()) {
    if (typeof m !== 'object' || m === null) return `messages[${i}] must be an object`;
    const msg = m as Record<string, unknown>;
    if (typeof msg.role !== 'string' || !ROLES.has(msg.role))
      return `messages[${i}].role must be one of system, user, assistant (got ${JSON.stringify(msg.role)})`;
    if (Array.isArray(msg.content) && msg.role === 'user') {
      for (const [j, p] of msg.content.entries()) {
        const part = p as Record<string, unknown>;
        const image = part.image_url as Record<string, unknown> | undefined;
        const ok =
          (part.type === 'text' && typeof part.text === 'string') ||
          (part.type === 'image_url' &&
            typeof image?.url === 'string' &&
            /^(https?:|data:image\/[a-z+.-]+;base64,)/.test(image.url));
        if (!ok)
          return `messages[${i}].content[${j}] must be a text part or an image_url part with an http(s) or base64 data URL`;
      }
    } else if (typeof msg.content !== 'string')
      return `messages[${i}].content must be a string (or, for a user message, an array of content parts)`;
    const extra = Object.keys(msg).filter((k) => k !== 'role' && k !== 'content' && k !== 'name');
    if (extra.length) return `messages[${i}] has unknown keys ${extra.join(', ')}`;
  }
  return null;
}

const lastUser = (messages: ChatMessage[]): string | undefined => {
  const last = messages[messages.length - 1];
  return last?.role === 'user' ? textOf(last.content) : undefined;
};

/** Starts the fake on a random local port. */
export async function startFakeCompletions(opts: FakeCompletionsOptions): Promise<FakeCompletions> {
  const basePath = (opts.basePath ?? '/v1').replace(/\/+$/, '');
  const keys = new Set(opts.apiKeys);
  let reply: ReplyFn = opts.reply ?? ((r) => `You said: ${lastUser(r.messages) ?? ''}`);
  let latency = opts.latencyMs ?? 0;
  const failures: { remaining: number; status: number; body: unknown }[] = [];
  const requests: CompletionRequest[] = [];
  const transcriptions: TranscriptionRequest[] = [];
  const transcribe = opts.transcribe ?? ((f) => `transcript of ${f.bytes.length} bytes`);
  const watchers = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();

  const record = (r: CompletionRequest): CompletionRequest => {
    requests.push(r);
    for (const w of [...watchers]) w();
    return r;
  };
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    if (res.destroyed) return;
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-request-id': `req_${randomBytes(8).toString('hex')}`,
    });
    res.end(JSON.stringify(body));
  };
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  /** OpenAI's `/audio/transcriptions`: multipart with `file` and `model`; answers `{text}`. */
  async function transcription(
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    apiKey: string | undefined,
  ): Promise<void> {
    const at = Date.now();
    const refuse = (status: number, message: string): void => {
      transcriptions.push({ apiKey, model: '', filename: '', mime: '', bytes: Buffer.alloc(0), status, at });
      send(res, status, errorBody(message, 'invalid_request_error', null));
    };
    if (!apiKey || !keys.has(apiKey)) return refuse(401, 'Incorrect API key provided.');
    const contentType = String(req.headers['content-type'] ?? '');
    if (!/^multipart\/form-data;\s*boundary=/i.test(contentType)) return refuse(400, 'Expected multipart/form-data.');
    let form: FormData;
    try {
      form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    } catch {
      return refuse(400, 'Could not parse multipart form.');
    }
    const file = form.get('file');
    const model = form.get('model');
    if (!file || typeof file === 'string') return refuse(400, "Missing required parameter: 'file'.");
    if (typeof model !== 'string' || !model) return refuse(400, "Missing required parameter: 'model'.");
    const bytes = Buffer.from(await file.arrayBuffer());
    transcriptions.push({ apiKey, model, filename: file.name, mime: file.type, bytes, status: 200, at });
    send(res, 200, { text: transcribe({ bytes, mime: file.type, model }) });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const header = req.headers.authorization;
    const apiKey = header && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : undefined;
    const base = { method: req.method ?? 'GET', path, apiKey, at: Date.now() };

    if (req.method === 'POST' && path === `${basePath}/audio/transcriptions`)
      return transcription(req, res, Buffer.concat(chunks), apiKey);
    if (req.method !== 'POST' || path !== `${basePath}/chat/completions`) {
      const problem = `unknown route ${req.method} ${path} (expected POST ${basePath}/chat/completions)`;
      record({ ...base, body: undefined, status: 404, problem });
      return send(res, 404, errorBody(`Invalid URL (${req.method} ${path})`, 'invalid_request_error', null));
    }
    if (!apiKey) {
      record({ ...base, body: undefined, status: 401, problem: 'no bearer key' });
      return send(
        res,
        401,
        errorBody(
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.",
          'invalid_request_error',
          null,
        ),
      );
    }
    if (!keys.has(apiKey)) {
      // Unlike OpenAI (which masks it), some self-hosted gateways echo the key back: Wharf must redact it.
      record({ ...base, body: undefined, status: 401, problem: 'wrong key' });
      return send(
        res,
        401,
        errorBody(
          `Incorrect API key provided: ${apiKey}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          'invalid_request_error',
          'invalid_api_key',
        ),
      );
    }
    if (!/^application\/json\b/i.test(String(req.headers['content-type'] ?? ''))) {
      record({ ...base, body: undefined, status: 400, problem: `content-type ${String(req.headers['content-type'])}` });
      return send(
        res,
        400,
        errorBody('Expected a JSON body (content-type: application/json).', 'invalid_request_error', null),
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      record({ ...base, body: undefined, status: 400, problem: 'body is not JSON' });
      return send(
        res,
        400,
        errorBody('We could not parse the JSON body of your request.', 'invalid_request_error', null),
      );
    }
    const problem = shapeProblem(parsed);
    if (problem) {
      record({ ...base, body: parsed as CompletionRequest['body'], status: 400, problem });
      return send(res, 400, errorBody(`Invalid request: ${problem}.`, 'invalid_request_error', null));
    }
    const body = parsed as NonNullable<CompletionRequest['body']>;
    const input = { model: body.model, messages: body.messages };
    const failure = failures[0];
    if (failure) {
      failure.remaining -= 1;
      if (failure.remaining <= 0) failures.shift();
      record({ ...base, body, status: failure.status });
      return send(res, failure.status, failure.body);
    }
    const entry = record({ ...base, body, status: 200 });
    const delay = typeof latency === 'function' ? latency(input) : latency;
    if (delay > 0) await sleep(delay);
    let content: string;
    try {
      content = await reply(input);
    } catch (err) {
      entry.status = 500;
      return send(res, 500, errorBody(`reply function failed: ${(err as Error).message}`, 'server_error', null));
    }
    const promptTokens = body.messages.reduce((n, m) => n + Math.ceil(textOf(m.content).length / 4), 0);
    const completionTokens = Math.ceil(content.length / 4);
    send(res, 200, {
      id: `chatcmpl-${randomBytes(12).toString('base64url')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => send(res, 500, errorBody(String(err), 'server_error', null)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}${basePath}`,
    requests,
    transcriptions,
    get malformed() {
      return requests.filter((r) => r.status === 400 || r.status === 404 || r.problem === 'no bearer key');
    },
    setReply(fn) {
      reply = fn;
    },
    setLatency(ms) {
      latency = ms;
    },
    failNext(n, status, body) {
      if (n > 0)
        failures.push({
          remaining: n,
          status,
          body: body ?? DEFAULT_FAILURES[status] ?? errorBody(`HTTP ${status}`, 'server_error', null),
        });
    },
    requestsFor(text) {
      return requests.filter((r) => r.body && lastUser(r.body.messages) === text);
    },
    waitForRequest(predicate, timeoutMs = 20_000) {
      const found = requests.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const r = requests.find(predicate);
          if (!r) return;
          clearTimeout(timer);
          watchers.delete(check);
          resolve(r);
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`No matching chat-completions request within ${timeoutMs} ms (${requests.length} seen)`));
        }, timeoutMs);
        watchers.add(check);
      });
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
