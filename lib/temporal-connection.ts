/**
 * How Wharf connects to Temporal: the address, and for a secured cluster TLS (server CA, server name, a
 * client certificate for mTLS) or Temporal Cloud's API key. One object, handed to both the client's
 * `Connection` and the worker's `NativeConnection`, so the two never connect differently.
 */
import type { TLSConfig } from '@temporalio/client';

/** Connection options shared by `Connection.connect` and `NativeConnection.connect`. */
export interface TemporalConnectionOptions {
  address: string;
  /** TLS settings; absent for plaintext gRPC (the embedded dev server, a private network). */
  tls?: TLSConfig;
  /** Temporal Cloud API key, sent as a bearer token on every call (always over TLS). */
  apiKey?: string;
}

/** TLS and API-key settings as parsed from the environment (lib/config.ts). */
export interface TemporalSecurity {
  tls?: TLSConfig;
  apiKey?: string;
}

/** The options to connect to `address` with the configured security. */
export function temporalConnectionOptions(address: string, security: TemporalSecurity = {}): TemporalConnectionOptions {
  return {
    address,
    ...(security.tls ? { tls: security.tls } : {}),
    ...(security.apiKey ? { apiKey: security.apiKey } : {}),
  };
}

/**
 * gRPC compression of the worker's connection (`WHARF_TEMPORAL_COMPRESSION`). The SDK gzips every request
 * and accepts gzipped responses by default; on the loopback to the embedded dev server that is pure cost —
 * a fresh compressor per call, ~150 freshly mapped pages per message (docs/performance.md, session 16).
 */
export type TemporalCompression = 'none' | 'gzip';

/** The worker's `NativeConnection` options: the shared ones, and its compression (the SDK's gzip when absent). */
export function workerConnectionOptions(
  address: string,
  security: TemporalSecurity = {},
  compression?: TemporalCompression,
): TemporalConnectionOptions & { grpcCompression?: { codec: TemporalCompression } } {
  return {
    ...temporalConnectionOptions(address, security),
    ...(compression ? { grpcCompression: { codec: compression } } : {}),
  };
}
