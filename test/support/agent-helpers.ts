/**
 * Helpers for the agent and signal tests: a configured, connected, paired Cloud API channel against the fake
 * Graph API; signed inbound webhooks; polling; a worker of the operator's own running the examples; and a
 * look into a channel workflow's history to know when a waiter has been registered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { bundleWorkflows } from '../../workers/workflow-bundle.js';
import { inboundPayload, signPayload, type FakeGraph, type SentRecord } from '../fakes/graph-server.js';
import type { TestWharf } from './wharf.js';

/** A credential ref. */
export interface Ref {
  vault: string;
  item: string;
  field: string;
}

/** Polls `fn` until it returns something truthy (or throws after `timeoutMs`, with `what` in the message). */
export async function until<T>(
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Creates a local vault item holding `value`; returns its ref. */
export async function vaultRef(
  w: TestWharf,
  value: string,
  name = 'item-' + randomBytes(6).toString('hex'),
): Promise<Ref> {
  const r = await w.api('POST', '/api/vaults/local/items', { name, kind: 'api_key', fields: { value } });
  if (r.status !== 201) throw new Error(`vault item: ${r.status} ${JSON.stringify(r.data)}`);
  return { vault: 'local', item: r.data.item, field: 'value' };
}

/** The secrets every test channel of one Wharf uses, stored once in its vault and known to the fake. */
export interface CloudSecrets {
  accessToken: string;
  verifyToken: string;
  appSecret: string;
  refs: { access_token: Ref; verify_token: Ref; app_secret: Ref };
}

/** Stores an access token the fake knows, a verify token and an app secret in the local vault. */
export async function cloudSecrets(w: TestWharf, graph: FakeGraph): Promise<CloudSecrets> {
  const accessToken = 'EAAG' + randomBytes(24).toString('hex');
  const verifyToken = 'verify-' + randomBytes(8).toString('hex');
  const appSecret = randomBytes(16).toString('hex');
  graph.setToken(accessToken, {});
  return {
    accessToken,
    verifyToken,
    appSecret,
    refs: {
      access_token: await vaultRef(w, accessToken),
      verify_token: await vaultRef(w, verifyToken),
      app_secret: await vaultRef(w, appSecret),
    },
  };
}

let phoneIdSeq = 0;

/** A connected Cloud API channel in the test Wharf. */
export interface CloudChannel {
  id: string;
  space: string;
  phoneNumberId: string;
  webhookUrl: string;
  /** Posts one signed webhook carrying `texts` from `from` (in that order); returns their message ids. */
  send(from: string, texts: string | string[], opts?: { name?: string }): Promise<string[]>;
  /** Pairs `phone`: starts pairing, texts the code, waits until paired and the confirmation was sent. */
  pair(phone: string, opts?: { name?: string }): Promise<void>;
  /** The message-log entry of one message (by key), once `ok` holds for it. */
  logEntry(key: string, ok?: (e: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** The whole message log (newest first). */
  log(): Promise<LogEntry[]>;
}

/** One entry of GET /api/channels/:id/messages. */
export interface LogEntry {
  direction: 'in' | 'out';
  key: string;
  chatId: string;
  address: string | null;
  text: string;
  status: string;
  detail: Record<string, unknown> | null;
}

/** Creates a channel, saves a checked config, lets "Meta" verify the webhook: status `connected`. */
export async function connectedChannel(
  w: TestWharf,
  graph: FakeGraph,
  secrets: CloudSecrets,
  opts: { agent: string; space?: string; inbound?: 'message' | 'signal' },
): Promise<CloudChannel> {
  const phoneNumberId = String(106540352240000 + ++phoneIdSeq * 7 + Math.floor(Math.random() * 1000) * 100);
  const display = `1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
  graph.setPhoneNumber(phoneNumberId, { displayPhoneNumber: display, verifiedName: 'Wharf Test' });
  const space = opts.space ?? `space-${randomBytes(5).toString('hex')}`;
  const created = await w.api('POST', '/api/channels', {
    provider: 'whatsapp_cloud',
    agent: opts.agent,
    space,
    ...(opts.inbound ? { inbound: opts.inbound } : {}),
  });
  if (created.status !== 201) throw new Error(`create channel: ${created.status} ${JSON.stringify(created.data)}`);
  const id: string = created.data.id;
  const cfg = await w.api('PUT', `/api/channels/${id}/config`, {
    phone_number_id: phoneNumberId,
    business_account_id: '100000000000010',
    ...secrets.refs,
  });
  if (cfg.status !== 200 || !cfg.data.webhookUrl) throw new Error(`config: ${cfg.status} ${JSON.stringify(cfg.data)}`);
  const webhookUrl: string = cfg.data.webhookUrl;
  const q = new URLSearchParams({
    'hub.mode': 'subscribe',
    'hub.verify_token': secrets.verifyToken,
    'hub.challenge': '1158201444',
  });
  const v = await fetch(`${webhookUrl}?${q}`);
  if (v.status !== 200) throw new Error(`verification: ${v.status} ${await v.text()}`);
  await until(
    async () => (await w.api('GET', `/api/channels/${id}`)).data.status === 'connected',
    `channel ${id} connected`,
  );

  const log = async (): Promise<LogEntry[]> =>
    (await w.api('GET', `/api/channels/${id}/messages?limit=500`)).data as LogEntry[];
  const ch: CloudChannel = {
    id,
    space,
    phoneNumberId,
    webhookUrl,
    async send(from, texts, o = {}) {
      const list = Array.isArray(texts) ? texts : [texts];
      const specs = list.map((text) => ({
        from,
        text,
        name: o.name,
        id: `wamid.${randomBytes(18).toString('base64')}`,
      }));
      const raw = JSON.stringify(inboundPayload({ phoneNumberId, displayPhoneNumber: display }, specs));
      const r = await fetch(webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': signPayload(raw, secrets.appSecret) },
        body: raw,
      });
      if (r.status !== 200) throw new Error(`webhook: ${r.status} ${await r.text()}`);
      return specs.map((s) => s.id);
    },
    async pair(phone, o = {}) {
      const p = await w.api('POST', `/api/channels/${id}/pair`);
      if (p.status !== 200) throw new Error(`pair: ${p.status} ${JSON.stringify(p.data)}`);
      await ch.send(phone, p.data.code, o);
      await until(
        async () =>
          (await w.api('GET', `/api/channels/${id}`)).data.pairedAddresses.some(
            (a: { address: string }) => a.address === phone,
          ),
        `${phone} paired on ${id}`,
      );
      await graph.waitForSent((s) => s.to === digits(phone) && s.text.startsWith('Paired'), 20_000);
    },
    async logEntry(key, ok = () => true, timeoutMs = 20_000) {
      let seen: LogEntry | undefined;
      return until(
        async () => {
          seen = (await log()).find((e) => e.key === key);
          return seen && ok(seen) ? seen : undefined;
        },
        `message-log entry ${key} on ${id} (last seen: ${JSON.stringify(seen)})`,
        timeoutMs,
      );
    },
    log,
  };
  return ch;
}

/** A phone number as the Graph API takes it (`to`): digits only. */
export const digits = (phone: string): string => phone.replace(/^\+/, '');

/** A fresh E.164 test phone number. */
export const newPhone = (): string => `+4915${String(Math.floor(Math.random() * 1e9)).padStart(9, '0')}`;

/** Texts the fake Graph API accepted for `phone`, in send order. */
export const sentTo = (graph: FakeGraph, phone: string): SentRecord[] =>
  graph.sent.filter((s) => s.to === digits(phone));

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Every TypeScript source the examples bundle can include, hashed: the cache key of the bundle. */
function examplesSourceHash(): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(repoRoot, dir)).sort()) {
      const rel = join(dir, name);
      if (statSync(join(repoRoot, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.ts')) h.update(rel).update(readFileSync(join(repoRoot, rel)));
    }
  };
  for (const dir of ['examples', 'workflows', 'lib', 'activities']) walk(dir);
  h.update(readFileSync(join(repoRoot, 'package-lock.json')));
  return h.digest('hex').slice(0, 16);
}

/**
 * The examples bundled for a worker. Test files run in separate processes at the same time, so the bundle
 * is made once per source version and shared through the temp dir (a lock file keeps two processes from
 * both running webpack on two busy cores).
 */
async function examplesBundle(): Promise<{ code: string }> {
  const path = join(tmpdir(), `wharf-examples-bundle-${examplesSourceHash()}.js`);
  const lock = `${path}.lock`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      return { code: readFileSync(path, 'utf8') };
    } catch {
      // not made yet
    }
    let fd: number | undefined;
    try {
      fd = openSync(lock, 'wx');
    } catch {
      // Another process is bundling; a lock older than 2 minutes is left over from a crash.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { force: true });
      } catch {
        // gone meanwhile
      }
    }
    if (fd !== undefined) {
      try {
        const { code } = await bundleWorkflows(join(repoRoot, 'examples', 'index.ts'));
        const tmp = `${path}.${process.pid}.tmp`;
        writeFileSync(tmp, code);
        renameSync(tmp, path);
        // Bundles of older source versions are of no further use.
        for (const name of readdirSync(tmpdir())) {
          const other = join(tmpdir(), name);
          if (name.startsWith('wharf-examples-bundle-') && name.endsWith('.js') && other !== path)
            rmSync(other, { force: true });
        }
        return { code };
      } finally {
        closeSync(fd);
        rmSync(lock, { force: true });
      }
    }
    if (Date.now() > deadline) return { code: (await bundleWorkflows(join(repoRoot, 'examples', 'index.ts'))).code };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A worker of the operator's own, on a fresh task queue, running the example workflows (`examples/index.ts`). */
export async function startExamplesWorker(): Promise<{ taskQueue: string; close(): Promise<void> }> {
  const [connection, workflowBundle] = await Promise.all([
    NativeConnection.connect({ address: inject('temporalAddress') }),
    examplesBundle(),
  ]);
  const taskQueue = 'operator-' + randomBytes(6).toString('hex');
  const worker = await Worker.create({ connection, taskQueue, workflowBundle });
  const running = worker.run();
  return {
    taskQueue,
    async close() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

/** How many updates named `name` the workflow has accepted so far (an accepted waiter is registered). */
export async function acceptedUpdates(client: Client, workflowId: string, name: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter(
    (e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === name,
  ).length;
}

/** Waits until the channel workflow has accepted at least `n` updates named `name`. */
export async function registeredWaiters(
  client: Client,
  channelId: string,
  name: 'waitForMessage' | 'addWaiter' | 'cancelWaiter',
  n: number,
): Promise<void> {
  await until(
    async () => (await acceptedUpdates(client, `channel-${channelId}`, name)) >= n,
    `${n} ${name} update(s) accepted by channel-${channelId}`,
  );
}

/** How many signals named `name` the workflow has received so far. */
export async function receivedSignals(client: Client, workflowId: string, name: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === name).length;
}

/** Whether `needle` occurs anywhere in a workflow's history (payloads and failure texts included). */
export async function historyContains(client: Client, workflowId: string, needle: string): Promise<boolean> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
  return bytes.includes(Buffer.from(needle));
}
