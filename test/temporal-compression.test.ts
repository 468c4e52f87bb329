/**
 * gRPC compression of the worker's connection (`WHARF_TEMPORAL_COMPRESSION`, lib/temporal-connection.ts),
 * seen on the wire: an h2c proxy in front of the run's dev server records the `grpc-encoding` of every
 * request it forwards. The SDK gzips each call by default; the product turns that off for the embedded dev
 * server, where it only costs CPU (docs/performance.md, session 16).
 */
import {
  connect as connectH2,
  createServer as createH2Server,
  type ClientHttp2Session,
  type Http2Server,
} from 'node:http2';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { workerConnectionOptions, type TemporalCompression } from '../lib/temporal-connection.js';
import { startWharf } from './support/wharf.js';

const POLL = '/temporal.api.workflowservice.v1.WorkflowService/PollWorkflowTaskQueue';
const SYSTEM_INFO = '/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo';

let proxy: Http2Server;
let upstream: ClientHttp2Session;
let proxyAddress: string;
/** Requests the proxy forwarded: path, and the request's `grpc-encoding` ('' when none). */
const seen: Array<{ path: string; encoding: string }> = [];

beforeAll(async () => {
  upstream = connectH2(`http://${inject('temporalAddress')}`);
  upstream.on('error', () => undefined);
  proxy = createH2Server();
  proxy.on('stream', (down, headers) => {
    const { ':path': path, ':method': method, ':authority': _authority, ':scheme': _scheme, ...rest } = headers;
    seen.push({ path: String(path), encoding: String(headers['grpc-encoding'] ?? '') });
    const up = upstream.request({ ':path': path, ':method': method, ...rest });
    let trailers = {};
    up.on('response', (h) => down.respond(h, { waitForTrailers: true }));
    up.on('trailers', (t) => (trailers = t));
    down.on('wantTrailers', () => down.sendTrailers(trailers));
    down.pipe(up);
    up.pipe(down);
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    down.on('close', () => up.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const addr = proxy.address();
  proxyAddress = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});

afterAll(async () => {
  upstream?.close();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
});

/** The encodings of the calls to `path` made through the proxy while `run` ran. */
async function encodingsOf(path: string, run: () => Promise<void>): Promise<string[]> {
  const from = seen.length;
  await run();
  return seen
    .slice(from)
    .filter((s) => s.path === path)
    .map((s) => s.encoding);
}

describe('gRPC compression of the worker’s connection', () => {
  it('is gzip by the SDK’s default and for "gzip", and off for "none"', async () => {
    const call = (compression?: TemporalCompression) => async () => {
      const connection = await NativeConnection.connect(workerConnectionOptions(proxyAddress, {}, compression));
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
    };
    const sdkDefault = await encodingsOf(SYSTEM_INFO, call());
    const gzip = await encodingsOf(SYSTEM_INFO, call('gzip'));
    const none = await encodingsOf(SYSTEM_INFO, call('none'));
    expect(sdkDefault.length).toBeGreaterThan(0);
    expect(sdkDefault.every((e) => e === 'gzip')).toBe(true);
    expect(gzip.length).toBeGreaterThan(0);
    expect(gzip.every((e) => e === 'gzip')).toBe(true);
    expect(none.length).toBeGreaterThan(0);
    expect(none.every((e) => e === '' || e === 'identity')).toBe(true);
  });

  it('is off by default for the embedded dev server and gzip for TEMPORAL_ADDRESS, unless WHARF_TEMPORAL_COMPRESSION says', () => {
    const base = { WHARF_DATA_DIR: mkdtempSync(join(tmpdir(), 'wharf-config-')), WHARF_ADMIN_TOKEN: 'x'.repeat(32) };
    const compression = (env: Record<string, string>) => loadConfig({ ...base, ...env }).temporal.compression;
    expect(compression({})).toBe('none');
    expect(compression({ TEMPORAL_ADDRESS: 'temporal:7233' })).toBe('gzip');
    expect(compression({ TEMPORAL_ADDRESS: 'temporal:7233', WHARF_TEMPORAL_COMPRESSION: 'none' })).toBe('none');
    expect(compression({ WHARF_TEMPORAL_COMPRESSION: 'gzip' })).toBe('gzip');
    expect(() => compression({ WHARF_TEMPORAL_COMPRESSION: 'zstd' })).toThrow(/WHARF_TEMPORAL_COMPRESSION/);
  });

  it('the product’s worker polls without gzip when told "none", and with it when told "gzip"', async () => {
    for (const compression of ['none', 'gzip'] as const) {
      const w = await startWharf({
        store: 'postgres',
        env: { TEMPORAL_ADDRESS: proxyAddress, WHARF_TEMPORAL_COMPRESSION: compression },
      });
      const from = seen.length;
      try {
        await expect
          .poll(() => seen.slice(from).filter((s) => s.path === POLL).length, { timeout: 10_000 })
          .toBeGreaterThan(0);
      } finally {
        await w.close({ purge: true });
      }
      const polls = seen.slice(from).filter((s) => s.path === POLL);
      expect(
        polls.every((s) => s.encoding === (compression === 'gzip' ? 'gzip' : '')),
        compression,
      ).toBe(true);
    }
  });
});
