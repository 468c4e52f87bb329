/**
 * Wharf on a Temporal cluster that requires mutual TLS: the run's dev server speaks plaintext only, so a
 * TLS terminator in front of it (Node's `tls`, ALPN h2, client certificates required and checked against
 * a test CA made with openssl) stands in for a secured frontend. The client and the worker both go through
 * it. Also: the TEMPORAL_TLS_* and TEMPORAL_API_KEY settings are checked at start-up.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ConfigError, loadConfig, parseEnv } from '../lib/config.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let dir: string;
let proxy: TlsServer;
let proxyAddress: string;
/** Client certificates' subjects of the connections the terminator accepted. */
const accepted: string[] = [];
const files = { ca: '', serverCert: '', serverKey: '', clientCert: '', clientKey: '' };

/** A CA, a server certificate for `temporal.test` and a client certificate, all made by openssl. */
function makeCertificates(): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=Wharf test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  );
  for (const [name, subject, ext] of [
    ['server', '/CN=temporal.test', 'subjectAltName=DNS:temporal.test\nextendedKeyUsage=serverAuth'],
    ['client', '/CN=wharf-node', 'extendedKeyUsage=clientAuth'],
  ]) {
    writeFileSync(join(dir, `${name}.ext`), ext + '\n');
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      subject,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    );
  }
  Object.assign(files, {
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-tls-'));
  makeCertificates();
  const [host, port] = inject('temporalAddress').split(':');
  const sockets = new Set<Socket>();
  proxy = createTlsServer(
    {
      key: readFileSync(files.serverKey),
      cert: readFileSync(files.serverCert),
      ca: readFileSync(files.ca),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (tlsSocket: TLSSocket) => {
      accepted.push(String(tlsSocket.getPeerCertificate().subject?.CN));
      const upstream = connectTcp(Number(port), host);
      for (const s of [tlsSocket, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined).on('close', () => sockets.delete(s));
      }
      tlsSocket.pipe(upstream).pipe(tlsSocket);
    },
  );
  proxy.on('close', () => sockets.forEach((s) => s.destroy()));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
  const addr = proxy.address();
  proxyAddress = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});

afterAll(async () => {
  proxy?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Temporal over mutual TLS', () => {
  let w: TestWharf | undefined;
  afterAll(async () => {
    await w?.close({ purge: true });
  });

  it('runs channels through a TLS frontend that requires a client certificate: client and worker both connect with it', async () => {
    w = await startWharf({
      store: 'postgres', // starts faster than PGlite (no initdb)
      env: {
        TEMPORAL_ADDRESS: proxyAddress,
        TEMPORAL_TLS_CA: files.ca,
        TEMPORAL_TLS_CERT: files.clientCert,
        TEMPORAL_TLS_KEY: readFileSync(files.clientKey, 'utf8'),
        TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      },
    });

    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_user',
      agent: 'echo',
      space: `tls-${Date.now()}`,
    });
    expect(created.status).toBe(201);
    const desc = await w.client.workflow.getHandle(`channel-${created.data.id}`).describe();
    expect(desc.status.name).toBe('RUNNING');
    expect((await w.api('GET', '/healthz', undefined, { auth: false })).data).toEqual({
      ok: true,
      temporal: 'up',
      store: 'up',
    });
    // At least the client's connection and the worker's (native) one, each presenting the client certificate.
    expect(accepted.length).toBeGreaterThanOrEqual(2);
    expect(new Set(accepted)).toEqual(new Set(['wharf-node']));
  }, 180_000);

  it('is refused without the client certificate, and with the wrong server name', async () => {
    const ca = readFileSync(files.ca);
    const noCert = Connection.connect({
      address: proxyAddress,
      tls: { serverRootCACertificate: ca, serverNameOverride: 'temporal.test' },
      connectTimeout: 3000,
    });
    const wrongName = Connection.connect({
      address: proxyAddress,
      tls: {
        serverRootCACertificate: ca,
        serverNameOverride: 'not-temporal.test',
        clientCertPair: { crt: readFileSync(files.clientCert), key: readFileSync(files.clientKey) },
      },
      connectTimeout: 3000,
    });
    await expect(noCert).rejects.toThrow();
    await expect(wrongName).rejects.toThrow();
  });
});

describe('TLS and API-key settings', () => {
  const base = { TEMPORAL_ADDRESS: 'temporal.example.com:7233' };

  it('reads PEM from a file or as text, and turns TLS on for an API key', () => {
    const fromFile = parseEnv({
      ...base,
      TEMPORAL_TLS_CA: files.ca,
      TEMPORAL_TLS_CERT: files.clientCert,
      TEMPORAL_TLS_KEY: files.clientKey,
    });
    const asText = parseEnv({ ...base, TEMPORAL_TLS_CA: readFileSync(files.ca, 'utf8') });
    expect(fromFile.TEMPORAL_TLS_CA?.toString()).toBe(readFileSync(files.ca, 'utf8'));
    expect(asText.TEMPORAL_TLS_CA?.toString()).toBe(readFileSync(files.ca, 'utf8').trim());

    const cloud = loadConfig({ ...base, WHARF_DATA_DIR: join(dir, 'cfg'), TEMPORAL_API_KEY: 'key-123' }).temporal
      .security;
    expect(cloud).toEqual({ tls: {}, apiKey: 'key-123' });
    expect(loadConfig({ ...base, WHARF_DATA_DIR: join(dir, 'cfg') }).temporal.security).toEqual({});
  });

  it('names each bad setting at start-up', () => {
    const problem = (env: Record<string, string>) => {
      try {
        parseEnv(env);
        return '';
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
    };
    expect(problem({ ...base, TEMPORAL_TLS_CERT: files.clientCert })).toMatch(/TEMPORAL_TLS_KEY: mTLS needs both/);
    expect(problem({ ...base, TEMPORAL_TLS_CA: join(dir, 'missing.pem') })).toMatch(
      /TEMPORAL_TLS_CA: cannot read .*missing\.pem: ENOENT/,
    );
    expect(problem({ ...base, TEMPORAL_TLS_CA: files.clientKey })).toMatch(
      /TEMPORAL_TLS_CA: must be a PEM certificate/,
    );
    expect(problem({ TEMPORAL_API_KEY: 'key-123' })).toMatch(
      /TEMPORAL_ADDRESS: TLS and API-key settings are for a Temporal cluster/,
    );
    expect(problem({ ...base, TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'key-123' })).toMatch(/TEMPORAL_TLS: is false/);
  });
});
