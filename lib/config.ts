/**
 * Configuration from the environment (SPEC §3), parsed once at start with zod. A bad value stops start-up
 * with a message naming the variable. Generated values (admin token, secret key) live in the data dir.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { TemporalCompression, TemporalSecurity } from './temporal-connection.js';

const port = z.coerce.number().int().min(1).max(65535);
const nonEmpty = z.string().trim().min(1);

/**
 * A PEM setting: the PEM text itself, or the path of a file holding it (read at start). Either way it must
 * hold a `-----BEGIN … <label>-----` block, so a wrong file is named at start-up rather than at the handshake.
 */
function pem(label: string) {
  return z
    .string()
    .trim()
    .min(1)
    .transform((v, ctx) => {
      let text = v;
      if (!v.startsWith('-----BEGIN')) {
        try {
          text = readFileSync(v, 'utf8');
        } catch (err) {
          ctx.addIssue({
            code: 'custom',
            message: `cannot read ${v}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (give the PEM text or the path of a PEM file)`,
          });
          return z.NEVER;
        }
      }
      if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text)) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a PEM ${label.toLowerCase()} (-----BEGIN … ${label}-----), or the path of a file holding one`,
        });
        return z.NEVER;
      }
      return Buffer.from(text);
    });
}

/** The environment variables Wharf reads, with their defaults. */
export const EnvSchema = z
  .object({
    WHARF_PORT: port.default(8080),
    WHARF_HOST: nonEmpty.default('127.0.0.1'),
    WHARF_PUBLIC_URL: z
      .url({ protocol: /^https?$/, message: 'must be an http(s) URL such as https://wharf.example.com' })
      .default('http://localhost:8080')
      .transform((u) => u.replace(/\/+$/, '')),
    WHARF_DATA_DIR: nonEmpty.default('./data'),
    WHARF_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    WHARF_SECRET_KEY: z
      .string()
      .refine(
        (v) => Buffer.from(v, 'base64').length === 32,
        'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)',
      )
      .optional(),
    TEMPORAL_ADDRESS: nonEmpty.optional(),
    TEMPORAL_NAMESPACE: nonEmpty.default('default'),
    WHARF_TASK_QUEUE: nonEmpty.default('wharf'),
    /** `true`: TLS to TEMPORAL_ADDRESS with the system's CAs (implied by any TEMPORAL_TLS_* setting or an API key). */
    TEMPORAL_TLS: z.enum(['true', 'false']).optional(),
    /** PEM of the client certificate for mTLS (the PEM text, or the path of a file holding it); needs TEMPORAL_TLS_KEY. */
    TEMPORAL_TLS_CERT: pem('CERTIFICATE').optional(),
    /** PEM of the client certificate's private key (text or file path); needs TEMPORAL_TLS_CERT. */
    TEMPORAL_TLS_KEY: pem('PRIVATE KEY').optional(),
    /** PEM of the CA that signed the server's certificate (text or file path); the system's CAs when unset. */
    TEMPORAL_TLS_CA: pem('CERTIFICATE').optional(),
    /** The name the server's certificate is checked against, when it is not the host of TEMPORAL_ADDRESS. */
    TEMPORAL_TLS_SERVER_NAME: nonEmpty.optional(),
    /** A Temporal Cloud API key: sent as a bearer token, over TLS. */
    TEMPORAL_API_KEY: nonEmpty.optional(),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
    META_GRAPH_URL: z
      .url({ protocol: /^https?$/ })
      .default('https://graph.facebook.com')
      .transform((u) => u.replace(/\/+$/, '')),
    META_GRAPH_VERSION: z
      .string()
      .regex(/^v\d+\.\d+$/, 'must look like v23.0')
      .default('v23.0'),
    /** Embedded dev server ports (optional; free ports are picked when the defaults are taken). */
    WHARF_TEMPORAL_PORT: port.optional(),
    WHARF_TEMPORAL_UI_PORT: port.optional(),
    /**
     * Minutes a chat's workflow waits without messages before it completes (not in SPEC; issue #22). The next
     * message starts a new run; the agent's window is reloaded from the message log, so nothing is lost.
     */
    WHARF_CHAT_IDLE_MINUTES: z.coerce.number().int().min(1).max(10_080).default(10),
    /**
     * Seconds between two hand-backs of the C allocator's free pages to the system (`malloc_trim`; not in
     * SPEC; issue #22); 0 turns them off.
     */
    WHARF_MEMORY_TRIM_SECONDS: z.coerce.number().int().min(0).max(86_400).default(10),
    /**
     * gRPC compression of the worker's connection to Temporal (not in SPEC; issue #22): `none` by default for
     * the embedded dev server (loopback: gzip only costs CPU), the SDK's default `gzip` for TEMPORAL_ADDRESS.
     */
    WHARF_TEMPORAL_COMPRESSION: z.enum(['none', 'gzip']).optional(),
    /** Workflows the worker keeps in memory between tasks (Temporal's sticky cache). */
    WHARF_WORKFLOW_CACHE_SIZE: z.coerce.number().int().min(1).max(100_000).default(250),
    /**
     * The Temporal SDK's promise stack-trace hook in the workflow threads (not in SPEC; issue #22): `off` by
     * default (≈ 8 % of a message's CPU; workers/workflow-threads.ts), `on` for the Web UI's Stack Trace tab.
     */
    WHARF_WORKFLOW_STACK_TRACES: z.enum(['on', 'off']).default('off'),
    /** Prometheus metrics of the Temporal worker (task latencies, slots, sticky cache) on this host:port. */
    WHARF_METRICS_ADDRESS: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):\d{1,5}$/, 'must be host:port, such as 127.0.0.1:9464 or [::1]:9464')
      .optional(),
    /** Prometheus metrics of the embedded Temporal dev server (persistence latencies) on this port. */
    WHARF_TEMPORAL_METRICS_PORT: port.optional(),
    /** Days a stored media file is kept after it was last received (SPEC §5 media). */
    WHARF_MEDIA_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
    // Not in SPEC (issue #22): the embedded store's engine when DATABASE_URL is unset; PGlite kept for one release.
    WHARF_STORE: z.enum(['pglite', 'sqlite']).default('sqlite'),
    /** The WhatsApp Web websocket the personal adapter connects to (tests and demos point it at a simulator). */
    WHARF_WA_URL: z
      .url({ protocol: /^wss?$/, message: 'must be a ws:// or wss:// URL such as ws://127.0.0.1:7999/ws/chat' })
      .optional(),
    /** The Curve25519 public key (base64, 32 bytes) the Noise certificate chain of that server must chain to. */
    WHARF_WA_CERT_ROOT: z
      .string()
      .refine(
        (v) => /^[A-Za-z0-9+/]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === 32,
        'must be a 32-byte Curve25519 public key, base64-encoded',
      )
      .optional(),
    /** A bearer token that reads `GET /metrics` only (the admin token reads it too). */
    WHARF_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((e, ctx) => {
    if (!!e.TEMPORAL_TLS_CERT !== !!e.TEMPORAL_TLS_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: [e.TEMPORAL_TLS_CERT ? 'TEMPORAL_TLS_KEY' : 'TEMPORAL_TLS_CERT'],
        message: 'mTLS needs both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY',
      });
    }
    const secured =
      e.TEMPORAL_TLS === 'true' ||
      e.TEMPORAL_TLS_CERT ||
      e.TEMPORAL_TLS_CA ||
      e.TEMPORAL_TLS_SERVER_NAME ||
      e.TEMPORAL_API_KEY;
    if (secured && !e.TEMPORAL_ADDRESS) {
      ctx.addIssue({
        code: 'custom',
        path: ['TEMPORAL_ADDRESS'],
        message:
          'TLS and API-key settings are for a Temporal cluster: set TEMPORAL_ADDRESS (the embedded dev server speaks plaintext)',
      });
    }
    if (e.TEMPORAL_TLS === 'false' && (e.TEMPORAL_TLS_CERT || e.TEMPORAL_TLS_CA || e.TEMPORAL_API_KEY)) {
      ctx.addIssue({
        code: 'custom',
        path: ['TEMPORAL_TLS'],
        message: 'is false, but TLS certificates or an API key are set (an API key is only ever sent over TLS)',
      });
    }
  });

/** The parsed environment. */
export type Env = z.infer<typeof EnvSchema>;

/** Wharf's runtime configuration, with generated values resolved. */
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  adminToken: string;
  /** True when the admin token was generated during this start (print it once). */
  adminTokenGenerated: boolean;
  secretKey: Buffer;
  temporal: {
    address?: string;
    namespace: string;
    taskQueue: string;
    port?: number;
    uiPort?: number;
    metricsPort?: number;
    workflowCacheSize: number;
    /** The SDK's promise stack-trace hook in the workflow threads (`WHARF_WORKFLOW_STACK_TRACES=on`); off by default. */
    workflowStackTraces: boolean;
    /** Milliseconds an idle chat workflow waits before it completes (`WHARF_CHAT_IDLE_MINUTES`). */
    chatIdleMs: number;
    security: TemporalSecurity;
    /** gRPC compression of the worker's connection (`WHARF_TEMPORAL_COMPRESSION`): none for the embedded dev server. */
    compression: TemporalCompression;
  };
  /** Milliseconds between two `malloc_trim` calls (`WHARF_MEMORY_TRIM_SECONDS`; 0: none). */
  memoryTrimMs: number;
  /** Where the worker's Prometheus metrics are served, if anywhere. */
  metricsAddress?: string;
  /** Bearer token for `GET /metrics` besides the admin token. */
  metricsToken?: string;
  databaseUrl?: string;
  /** The embedded store's engine when `databaseUrl` is unset: SQLite, or PGlite (the previous engine). */
  embeddedStore: 'pglite' | 'sqlite';
  graph: { baseUrl: string; version: string };
  /** Days stored media is kept after it was last received. */
  mediaRetentionDays: number;
  /** Where the personal adapter connects and whom it trusts; both unset means WhatsApp itself. */
  whatsapp: { webSocketUrl?: string; certRoot?: Buffer };
  logLevel: Env['LOG_LEVEL'];
}

/** A start-up configuration error that names the offending variables. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment; throws ConfigError naming each bad variable. */
export function parseEnv(env: NodeJS.ProcessEnv): Env {
  // Empty strings mean "unset" to operators writing `FOO=` in an env file.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

function readOrCreate(file: string, make: () => string): { value: string; created: boolean } {
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), created: false };
  const value = make();
  writeFileSync(file, value + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { value, created: true };
}

/** TLS and API-key settings for the Temporal connection; empty for plaintext. */
function temporalSecurity(e: Env): TemporalSecurity {
  const tlsOn =
    e.TEMPORAL_TLS === 'true' ||
    !!(e.TEMPORAL_TLS_CERT || e.TEMPORAL_TLS_CA || e.TEMPORAL_TLS_SERVER_NAME || e.TEMPORAL_API_KEY);
  if (!tlsOn) return {};
  return {
    tls: {
      ...(e.TEMPORAL_TLS_CA ? { serverRootCACertificate: e.TEMPORAL_TLS_CA } : {}),
      ...(e.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: e.TEMPORAL_TLS_SERVER_NAME } : {}),
      ...(e.TEMPORAL_TLS_CERT && e.TEMPORAL_TLS_KEY
        ? { clientCertPair: { crt: e.TEMPORAL_TLS_CERT, key: e.TEMPORAL_TLS_KEY } }
        : {}),
    },
    ...(e.TEMPORAL_API_KEY ? { apiKey: e.TEMPORAL_API_KEY } : {}),
  };
}

/** Where to look for the `temporal` CLI (lib/temporal-cli.ts): `TEMPORAL_CLI_PATH`, then the directories of `PATH`. */
export interface TemporalCliSearch {
  cliPath?: string;
  searchPath?: string;
}

/** The environment's {@link TemporalCliSearch}; read apart from {@link loadConfig} because tests and benches need it before a config exists. */
export function temporalCliSearch(env: NodeJS.ProcessEnv = process.env): TemporalCliSearch {
  return { cliPath: env.TEMPORAL_CLI_PATH || undefined, searchPath: env.PATH };
}

/** Loads the full configuration: parses the environment and creates the data dir and generated secrets. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnv(env);
  const dataDir = resolve(e.WHARF_DATA_DIR);
  // Owner-only: the data dir holds message text, policies and the vault (see lib/owner-only.ts).
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dataDir, 0o700);
  } catch {
    // A dir owned by another user (e.g. a mounted volume): not ours to change; what Wharf writes in it still is.
  }

  let adminToken = e.WHARF_ADMIN_TOKEN;
  let adminTokenGenerated = false;
  if (!adminToken) {
    const t = readOrCreate(join(dataDir, 'admin-token'), () => 'wharf_' + randomBytes(24).toString('base64url'));
    adminToken = t.value;
    adminTokenGenerated = t.created;
  }
  const keyB64 =
    e.WHARF_SECRET_KEY ?? readOrCreate(join(dataDir, 'secret.key'), () => randomBytes(32).toString('base64')).value;
  const secretKey = Buffer.from(keyB64, 'base64');
  if (secretKey.length !== 32)
    throw new ConfigError(
      `Invalid configuration:\n  ${join(dataDir, 'secret.key')}: must hold 32 bytes, base64-encoded`,
    );

  return {
    port: e.WHARF_PORT,
    host: e.WHARF_HOST,
    publicUrl: e.WHARF_PUBLIC_URL,
    dataDir,
    adminToken,
    adminTokenGenerated,
    secretKey,
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.WHARF_TASK_QUEUE,
      port: e.WHARF_TEMPORAL_PORT,
      uiPort: e.WHARF_TEMPORAL_UI_PORT,
      metricsPort: e.WHARF_TEMPORAL_METRICS_PORT,
      workflowCacheSize: e.WHARF_WORKFLOW_CACHE_SIZE,
      workflowStackTraces: e.WHARF_WORKFLOW_STACK_TRACES === 'on',
      chatIdleMs: e.WHARF_CHAT_IDLE_MINUTES * 60_000,
      security: temporalSecurity(e),
      compression: e.WHARF_TEMPORAL_COMPRESSION ?? (e.TEMPORAL_ADDRESS ? 'gzip' : 'none'),
    },
    memoryTrimMs: e.WHARF_MEMORY_TRIM_SECONDS * 1000,
    metricsAddress: e.WHARF_METRICS_ADDRESS,
    metricsToken: e.WHARF_METRICS_TOKEN,
    databaseUrl: e.DATABASE_URL,
    embeddedStore: e.WHARF_STORE,
    graph: { baseUrl: e.META_GRAPH_URL, version: e.META_GRAPH_VERSION },
    mediaRetentionDays: e.WHARF_MEDIA_RETENTION_DAYS,
    whatsapp: {
      webSocketUrl: e.WHARF_WA_URL,
      certRoot: e.WHARF_WA_CERT_ROOT ? Buffer.from(e.WHARF_WA_CERT_ROOT, 'base64') : undefined,
    },
    logLevel: e.LOG_LEVEL,
  };
}
