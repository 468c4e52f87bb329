/**
 * Shared helpers for integration tests of channels and the Cloud API flow: unique ids, polling, vault items,
 * a Cloud API channel at a chosen stage (created / configured / connected / paired), signed webhook posts,
 * the message log, and reading workflow histories as text (payloads decoded) to look for secrets.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { expect } from 'vitest';
import type { CredentialRef } from '../../lib/types.js';
import type { MessageLogEntry } from '../../lib/store/store.js';
import {
  inboundPayload,
  signPayload,
  type FakeGraph,
  type FakeTokenSpec,
  type SentRecord,
} from '../fakes/graph-server.js';
import type { TestWharf } from './wharf.js';

/** Generous: other test files may be running on the same two cores. */
export const WAIT_MS = 20_000;

/** A short unique suffix: lowercase hex. */
export const uid = (prefix = ''): string => `${prefix}${randomBytes(5).toString('hex')}`;

/** `n` random digits, never starting with 0. */
export const digits = (n: number): string =>
  String(randomInt(1, 10)) + Array.from({ length: n - 1 }, () => String(randomInt(10))).join('');

/** A fresh E.164 sender address (`+1555` and 7 digits). */
export const phone = (): string => `+1555${digits(7)}`;

/** Meta's `to` form of an address: digits only. */
export const bare = (address: string): string => address.replace(/\D/g, '');

/** A message id that looks like Meta's. */
export const wamid = (): string => `wamid.test${randomBytes(12).toString('hex')}`;

/**
 * Polls `fn` until it returns something other than undefined/null/false, or throws after `timeoutMs` with the
 * last value (or error) seen, named by `what`.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = WAIT_MS,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as T;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Asserts the error shape of SPEC §4. */
export function expectError(r: { status: number; data: unknown }, status: number, code: string): void {
  expect({ status: r.status, body: r.data }).toMatchObject({ status, body: { error: { code } } });
  expect(r.data).toEqual({ error: { code, message: expect.any(String), details: expect.any(Array) } });
  expect((r.data as { error: { message: string } }).error.message.length).toBeGreaterThan(0);
}

/** Creates a local vault item with one `value` field; returns a ref to it. */
export async function vaultItem(w: TestWharf, name: string, value: string): Promise<CredentialRef> {
  const r = await w.api('POST', '/api/vaults/local/items', { name, kind: 'api_key', fields: { value } });
  expect(r.status, JSON.stringify(r.data)).toBe(201);
  return { vault: 'local', item: r.data.item, field: 'value' };
}

/** Reads a channel through the API (throws unless 200). */
export async function getChannel(w: TestWharf, id: string) {
  const r = await w.api('GET', `/api/channels/${id}`);
  if (r.status !== 200) throw new Error(`GET /api/channels/${id} → ${r.status} ${JSON.stringify(r.data)}`);
  return r.data;
}

/** The parts of a channel's view that a restart must keep and every node must agree on. */
export const lastingView = (c: Record<string, unknown>) => ({
  id: c.id,
  status: c.status,
  space: c.space,
  agent: c.agent,
  inbound: c.inbound,
  config: c.config,
  pairedAddresses: c.pairedAddresses,
});

/** Polls the channel until `pred` holds; returns the channel. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API JSON
export async function waitForChannel(w: TestWharf, id: string, what: string, pred: (ch: any) => boolean) {
  return waitFor(`channel ${id}: ${what}`, async () => {
    const ch = await getChannel(w, id);
    return pred(ch) ? ch : undefined;
  });
}

/** The message log of a channel (newest first). */
export async function messageLog(w: TestWharf, id: string): Promise<MessageLogEntry[]> {
  const r = await w.api('GET', `/api/channels/${id}/messages?limit=500`);
  if (r.status !== 200) throw new Error(`GET messages → ${r.status} ${JSON.stringify(r.data)}`);
  return r.data as MessageLogEntry[];
}

/** Polls the message log until an entry with `direction`/`key` satisfies `pred`; returns it. */
export async function waitForLogEntry(
  w: TestWharf,
  channelId: string,
  direction: 'in' | 'out',
  key: string,
  pred: (e: MessageLogEntry) => boolean,
  what = 'a matching entry',
): Promise<MessageLogEntry> {
  return waitFor(`message log ${direction} ${key}: ${what}`, async () =>
    (await messageLog(w, channelId)).find((e) => e.direction === direction && e.key === key && pred(e)),
  );
}

/** Polls until the inbound message `id` has an outcome other than `received`. */
export async function waitForOutcome(w: TestWharf, channelId: string, id: string): Promise<MessageLogEntry> {
  return waitForLogEntry(w, channelId, 'in', id, (e) => e.status !== 'received', 'an outcome');
}

/** Describes a workflow, or null when it does not exist. */
export async function describeOrNull(w: TestWharf, workflowId: string): Promise<WorkflowExecutionDescription | null> {
  try {
    return await w.client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** A Cloud API channel's ids, secrets and refs, as created by {@link cloudChannel}. */
export interface CloudSetup {
  id: string;
  space: string;
  phoneNumberId: string;
  wabaId: string;
  displayPhoneNumber: string;
  /** The business number as Wharf's selfAddress (E.164). */
  selfAddress: string;
  accessToken: string;
  verifyToken: string;
  appSecret: string;
  refs: { access_token: CredentialRef; verify_token: CredentialRef; app_secret: CredentialRef };
  /** The body for PUT /api/channels/:id/config. */
  config: {
    phone_number_id: string;
    business_account_id: string;
    access_token: CredentialRef;
    verify_token: CredentialRef;
    app_secret: CredentialRef;
  };
  /** For `inboundPayload` / `statusPayload`. */
  target: { phoneNumberId: string; displayPhoneNumber: string; wabaId: string };
}

/** Options of {@link cloudChannel}. */
export interface CloudChannelOptions {
  /** How far to take it: `created` (vault items and channel only), `configured` (config saved), `connected` (Meta verified). */
  stage?: 'created' | 'configured' | 'connected';
  agent?: string;
  inbound?: 'message' | 'signal';
  space?: string;
  /** How the fake treats this channel's token (default: valid, with both WhatsApp scopes). */
  token?: FakeTokenSpec;
  /** Phones to pair once connected. */
  pair?: string[];
}

/**
 * Creates a Cloud API channel with unique ids and secrets: the fake Graph API knows its token and phone number,
 * the local vault holds its three secrets. `stage` decides how far the setup goes (default `connected`).
 */
export async function cloudChannel(w: TestWharf, fake: FakeGraph, opts: CloudChannelOptions = {}): Promise<CloudSetup> {
  const stage = opts.stage ?? 'connected';
  const tag = uid();
  const phoneNumberId = digits(15);
  const wabaId = digits(15);
  const displayPhoneNumber = `+1 555-${digits(3)}-${digits(4)}`;
  const accessToken = `SECRET-access-${uid()}`;
  const verifyToken = `SECRET-verify-${uid()}`;
  const appSecret = `SECRET-app-${uid()}`;
  fake.setToken(accessToken, opts.token ?? {});
  fake.setPhoneNumber(phoneNumberId, { displayPhoneNumber, wabaId, verifiedName: `Test ${tag}` });
  const refs = {
    access_token: await vaultItem(w, `access-${tag}`, accessToken),
    verify_token: await vaultItem(w, `verify-${tag}`, verifyToken),
    app_secret: await vaultItem(w, `app-${tag}`, appSecret),
  };
  const config = { phone_number_id: phoneNumberId, business_account_id: wabaId, ...refs };
  const space = opts.space ?? `space-${tag}`;
  const created = await w.api('POST', '/api/channels', {
    provider: 'whatsapp_cloud',
    agent: opts.agent ?? 'echo',
    space,
    ...(opts.inbound ? { inbound: opts.inbound } : {}),
  });
  expect(created.status, JSON.stringify(created.data)).toBe(201);
  const setup: CloudSetup = {
    id: created.data.id,
    space,
    phoneNumberId,
    wabaId,
    displayPhoneNumber,
    selfAddress: `+${bare(displayPhoneNumber)}`,
    accessToken,
    verifyToken,
    appSecret,
    refs,
    config,
    target: { phoneNumberId, displayPhoneNumber: bare(displayPhoneNumber), wabaId },
  };
  if (stage === 'created') return setup;
  const saved = await w.api('PUT', `/api/channels/${setup.id}/config`, config);
  expect(saved.status, JSON.stringify(saved.data)).toBe(200);
  expect(saved.data.status, saved.data.statusReason).toBe('setup');
  if (stage === 'configured') return setup;
  const v = await verify(w, setup.id, verifyToken, 'challenge-' + tag);
  expect(v.status).toBe(200);
  await waitForChannel(w, setup.id, 'connected', (ch) => ch.status === 'connected');
  for (const p of opts.pair ?? []) await pairPhone(w, fake, setup, p);
  return setup;
}

/** Meta's verification call (GET with hub.* query parameters). */
export async function verify(w: TestWharf, channelId: string, token: string, challenge: string, mode = 'subscribe') {
  const q = new URLSearchParams({ 'hub.mode': mode, 'hub.verify_token': token, 'hub.challenge': challenge });
  return w.api('GET', `/webhooks/whatsapp/${channelId}?${q}`, undefined, { auth: false });
}

/**
 * Posts a webhook body to a channel. Signed with `secret` unless `signature` is given (pass `null` for no
 * header at all). The body is sent byte for byte as signed.
 */
export async function postWebhook(
  w: TestWharf,
  channelId: string,
  payload: unknown,
  sig: { secret: string } | { signature: string | null },
) {
  const raw = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if ('secret' in sig) headers['x-hub-signature-256'] = signPayload(raw, sig.secret);
  else if (sig.signature !== null) headers['x-hub-signature-256'] = sig.signature;
  return w.api('POST', `/webhooks/whatsapp/${channelId}`, raw, { auth: false, headers });
}

/** Sends one text from `from` to the channel as a signed Meta webhook (expects 200); returns the message id. */
export async function sendText(
  w: TestWharf,
  ch: CloudSetup,
  from: string,
  text: string,
  id = wamid(),
): Promise<string> {
  const r = await postWebhook(w, ch.id, inboundPayload(ch.target, [{ from, text, id }]), { secret: ch.appSecret });
  expect(r.status, JSON.stringify(r.data)).toBe(200);
  return id;
}

/** Sends `texts` from `from` in one signed Meta webhook (expects 200); returns their message ids, in order. */
export async function sendBatch(w: TestWharf, ch: CloudSetup, from: string, texts: string[]): Promise<string[]> {
  const ids = texts.map(() => wamid());
  const messages = texts.map((text, i) => ({ from, text, id: ids[i] }));
  const r = await postWebhook(w, ch.id, inboundPayload(ch.target, messages), { secret: ch.appSecret });
  expect(r.status, JSON.stringify(r.data)).toBe(200);
  return ids;
}

/** The confirmation text a paired sender gets. */
export const PAIRED_TEXT = 'Paired. This number now talks to the agent on this channel.';

/** Starts pairing through the API (expects 200); returns the code. */
export async function startPairing(w: TestWharf, channelId: string): Promise<{ code: string; expiresAt: string }> {
  const r = await w.api('POST', `/api/channels/${channelId}/pair`);
  expect(r.status, JSON.stringify(r.data)).toBe(200);
  return r.data;
}

/** Pairs `address`: starts pairing, sends the code from it, waits for the confirmation and the read model. */
export async function pairPhone(
  w: TestWharf,
  fake: FakeGraph,
  ch: CloudSetup,
  address: string,
  send: (code: string) => string = (c) => c,
): Promise<SentRecord> {
  const { code } = await startPairing(w, ch.id);
  await sendText(w, ch, address, send(code));
  const confirmation = await fake.waitForSent((s) => s.to === bare(address) && s.text === PAIRED_TEXT, WAIT_MS);
  await waitForChannel(w, ch.id, `${address} paired`, (c) =>
    c.pairedAddresses.some((p: { address: string }) => p.address === address),
  );
  return confirmation;
}

/** Sends a text from a paired phone and waits for the echo agent's reply (the exact `expected` text). */
export async function echoRoundTrip(
  w: TestWharf,
  fake: FakeGraph,
  ch: CloudSetup,
  from: string,
  text: string,
  expected = text,
  id = wamid(),
): Promise<{ id: string; reply: SentRecord }> {
  await sendText(w, ch, from, text, id);
  const reply = await fake.waitForSent((s) => s.to === bare(from) && s.text === expected, WAIT_MS);
  return { id, reply };
}

/** How many texts the fake accepted for `to` with exactly `text`. */
export const countSent = (fake: FakeGraph, to: string, text: string): number =>
  fake.sent.filter((s) => s.to === bare(to) && s.text === text).length;

/**
 * A workflow history as text with every payload decoded. Payload data is bytes, which the history's JSON form
 * shows as base64 (and a raw Uint8Array as numbers): either way a secret inside would be invisible to a plain
 * `toContain`, so every payload's `data` (and metadata) is decoded to UTF-8 first.
 */
export function historyText(history: unknown): string {
  const bytes = (v: unknown): string | undefined => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (typeof v === 'string') return Buffer.from(v, 'base64').toString('utf8');
    return undefined;
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v instanceof Uint8Array) return bytes(v);
    if (!v || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const isPayload = 'metadata' in o && o.metadata !== null && typeof o.metadata === 'object';
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      if (isPayload && k === 'data') out[k] = bytes(x) ?? walk(x);
      else if (isPayload && k === 'metadata')
        out[k] = Object.fromEntries(
          Object.entries(x as Record<string, unknown>).map(([mk, mv]) => [mk, bytes(mv) ?? mv]),
        );
      else out[k] = walk(x);
    }
    return out;
  };
  // Through JSON first so protobuf message objects become plain data (their toJSON renders bytes as base64).
  return JSON.stringify(walk(JSON.parse(JSON.stringify(history))));
}

/** Workflow ids of a channel's chat workflows, through visibility (eventually consistent: polls until `min`). */
export async function chatWorkflowIds(w: TestWharf, channelId: string, min = 0): Promise<string[]> {
  const list = async (): Promise<string[]> => {
    const ids = new Set<string>();
    for await (const wf of w.client.workflow.list({ query: `WharfChannelId = '${channelId}'` })) ids.add(wf.workflowId);
    return [...ids];
  };
  if (min === 0) return list();
  return waitFor(`${min} chat workflow(s) of ${channelId} in visibility`, async () => {
    const ids = await list();
    return ids.length >= min ? ids : undefined;
  });
}

/** The local activities a workflow ran, in order, read from the markers in its history. */
export async function localActivities(w: TestWharf, workflowId: string): Promise<string[]> {
  const { events } = await w.client.workflow.getHandle(workflowId).fetchHistory();
  return (events ?? []).flatMap((e) => {
    const m = e.markerRecordedEventAttributes;
    const data = m?.markerName === 'core_local_activity' ? m.details?.data?.payloads?.[0]?.data : undefined;
    return data ? [JSON.parse(Buffer.from(data).toString('utf8')).activity_type as string] : [];
  });
}
