/**
 * A node:http server for the vault fakes that can be stopped and started again on the same port, so a
 * test can take a vault away (connections refused, as when it is down) and bring it back.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the fakes see it: method, path, query, headers and the parsed JSON body. */
export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
}

/** What a handler answers: a status and a JSON body (or none). */
export interface FakeAnswer {
  status: number;
  body?: unknown;
}

/** A running fake server. */
export interface RestartableServer {
  url: string;
  /** Every request seen (method and path), oldest first. */
  requests: Array<{ method: string; path: string }>;
  /** Stops listening and drops open connections: callers get ECONNREFUSED. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a JSON server around `handle`. */
export async function startRestartableServer(
  handle: (req: FakeRequest) => FakeAnswer | Promise<FakeAnswer>,
): Promise<RestartableServer> {
  const requests: Array<{ method: string; path: string }> = [];
  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const u = new URL(req.url ?? '/', 'http://fake');
    requests.push({ method: req.method ?? 'GET', path: u.pathname });
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: ['invalid JSON'] }));
      return;
    }
    const answer = await handle({
      method: req.method ?? 'GET',
      path: decodeURIComponent(u.pathname),
      query: u.searchParams,
      headers: req.headers,
      body,
    });
    if (answer.body === undefined) res.writeHead(answer.status).end();
    else res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
  };
  let server: Server = createServer((req, res) => void onRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  let running = true;
  const stop = async (): Promise<void> => {
    if (!running) return;
    running = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop,
    async start() {
      if (running) return;
      server = createServer((req, res) => void onRequest(req, res));
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
      running = true;
    },
    close: stop,
  };
}
