/**
 * The end-to-end path every vault kind must walk (issue 19's "done when"), through the real API:
 * add the connection → list its items → put its fields in a Cloud API channel's config → the channel
 * connects and answers → rotate the access token → it still answers (with the new token) → the vault
 * goes away → the channel's reason names the field and the vault → the vault comes back → the reply
 * goes out and the reason clears. Plus the no-secret sweep: no value in API answers, logs or histories.
 */
import { expect } from 'vitest';
import { pino } from 'pino';
import type { Logger } from '../../lib/logger.js';
import type { CredentialRef } from '../../lib/types.js';
import { VALUE_CACHE_MS } from '../../lib/vaults/index.js';
import type { FakeGraph } from '../fakes/graph-server.js';
import {
  bare,
  chatWorkflowIds,
  digits,
  echoRoundTrip,
  historyText,
  pairPhone,
  phone,
  sendText,
  uid,
  verify,
  waitFor,
  waitForChannel,
  WAIT_MS,
  type CloudSetup,
} from '../support/cloud.js';
import type { TestWharf } from '../support/wharf.js';

/** A logger whose lines a test can read (to look for secrets in them). */
export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino(
    { level: 'debug', base: { service: 'wharf' } },
    { write: (l: string) => void lines.push(l) },
  ) as unknown as Logger;
  return { log, lines };
}

/** Three fresh Cloud API secrets (and the token the rotation switches to). */
export function cloudSecrets() {
  return {
    accessToken: `SECRET-access-${uid()}`,
    verifyToken: `SECRET-verify-${uid()}`,
    appSecret: `SECRET-app-${uid()}`,
    rotatedToken: `SECRET-rotated-${uid()}`,
  };
}
/** The secrets of one scenario. */
export type CloudSecrets = ReturnType<typeof cloudSecrets>;

/** One vault kind, set up by its test file with the scenario's secrets already stored in it. */
export interface VaultUnderTest {
  /** The POST /api/vaults body. */
  connection: { id: string; kind: string; settings: Record<string, unknown> };
  refs: { access_token: CredentialRef; verify_token: CredentialRef; app_secret: CredentialRef };
  /** Changes the access token's value to `value`: through the API, or in the vault itself. */
  rotate(value: string): Promise<void>;
  /** True when `rotate` edits the vault behind Wharf's back (then the value cache has to run out first). */
  rotatesBehindWharf: boolean;
  /** Takes the vault away, and brings it back. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** What the reason says while the vault is down, e.g. /unreachable/. */
  downReason: RegExp;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the end-to-end path; returns every API answer body it saw (for the no-secret sweep). */
export async function runEndToEnd(
  w: TestWharf,
  graph: FakeGraph,
  v: VaultUnderTest,
  s: CloudSecrets,
): Promise<string[]> {
  const seen: string[] = [];
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await w.api(method, path, body);
    seen.push(JSON.stringify(r.data));
    return r;
  };
  const phoneNumberId = digits(15);
  const wabaId = digits(15);
  const displayPhoneNumber = `+1 555-${digits(3)}-${digits(4)}`;
  graph.setToken(s.accessToken, {});
  graph.setPhoneNumber(phoneNumberId, { displayPhoneNumber, wabaId, verifiedName: 'Vault test' });

  // add the connection → list items
  const added = await api('POST', '/api/vaults', v.connection);
  expect(added.status, JSON.stringify(added.data)).toBe(201);
  expect(added.data).toMatchObject({ id: v.connection.id, kind: v.connection.kind });
  const listed = await api('GET', '/api/vaults');
  expect(listed.data.map((x: { id: string }) => x.id)).toEqual(expect.arrayContaining(['local', v.connection.id]));
  const items = await api('GET', `/api/vaults/${v.connection.id}/items`);
  expect(items.status, JSON.stringify(items.data)).toBe(200);
  for (const ref of Object.values(v.refs)) {
    expect(items.data).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ item: ref.item, fields: expect.arrayContaining([ref.field]) }),
      ]),
    );
  }

  // pick the fields in a channel's config → connects and answers
  const created = await api('POST', '/api/channels', {
    provider: 'whatsapp_cloud',
    agent: 'echo',
    space: `vault-${uid()}`,
  });
  expect(created.status).toBe(201);
  const config = { phone_number_id: phoneNumberId, business_account_id: wabaId, ...v.refs };
  const saved = await api('PUT', `/api/channels/${created.data.id}/config`, config);
  expect(saved.status, JSON.stringify(saved.data)).toBe(200);
  expect(saved.data.status, saved.data.statusReason).toBe('setup');
  const ch: CloudSetup = {
    id: created.data.id,
    space: created.data.space,
    phoneNumberId,
    wabaId,
    displayPhoneNumber,
    selfAddress: `+${bare(displayPhoneNumber)}`,
    accessToken: s.accessToken,
    verifyToken: s.verifyToken,
    appSecret: s.appSecret,
    refs: v.refs,
    config,
    target: { phoneNumberId, displayPhoneNumber: bare(displayPhoneNumber), wabaId },
  };
  expect((await verify(w, ch.id, s.verifyToken, 'challenge')).status).toBe(200);
  await waitForChannel(w, ch.id, 'connected', (c) => c.status === 'connected');
  const me = phone();
  await pairPhone(w, graph, ch, me);
  await echoRoundTrip(w, graph, ch, me, 'hello through the vault');

  // rotate → still answers, with the new token
  graph.setToken(s.rotatedToken, {});
  await v.rotate(s.rotatedToken);
  if (v.rotatesBehindWharf) await sleep(VALUE_CACHE_MS + 500);
  graph.revokeToken(s.accessToken);
  await echoRoundTrip(w, graph, ch, me, 'after the rotation');
  const lastSend = graph.calls
    .filter((c) => c.method === 'POST' && c.path.endsWith(`/${phoneNumberId}/messages`))
    .at(-1);
  expect(lastSend?.auth).toBe(s.rotatedToken);

  // vault down → reason naming field and vault; webhooks still accepted on the last good app secret
  await v.down();
  await sleep(VALUE_CACHE_MS + 500); // every copy of the value has run out: the next send must ask the vault
  const text = `while the vault is down ${uid()}`;
  await sendText(w, ch, me, text);
  const failing = await waitForChannel(w, ch.id, 'a vault reason', (c) =>
    c.statusReason.startsWith(`access_token: vault '${v.connection.id}'`),
  );
  expect(failing.statusReason).toMatch(v.downReason);
  expect(failing.status).toBe('connected');
  expect(graph.sent.some((x) => x.text === text)).toBe(false);

  // back → the retried send goes out, the reason clears by itself
  await v.up();
  await graph.waitForSent((x) => x.to === bare(me) && x.text === text, WAIT_MS * 2);
  const recovered = await waitForChannel(
    w,
    ch.id,
    'the vault reason cleared',
    (c) => !c.statusReason.includes('retries until'),
  );
  expect(recovered.statusReason).toMatch(/answers again/);
  seen.push(JSON.stringify(await api('GET', `/api/channels/${ch.id}`)));

  // nothing from the vault was written to Wharf's store: every table, every row
  const tables = await w.store.db.query<{ table_name: string }>(
    w.store.db.dialect === 'sqlite'
      ? "select name as table_name from sqlite_master where type = 'table'"
      : "select table_name from information_schema.tables where table_schema = 'public'",
  );
  for (const t of tables) seen.push(JSON.stringify(await w.store.db.query(`select * from "${t.table_name}"`)));

  // the histories of the channel and its chats
  for (const id of [`channel-${ch.id}`, ...(await chatWorkflowIds(w, ch.id, 1))]) {
    seen.push(historyText(await w.client.workflow.getHandle(id).fetchHistory()));
  }
  return seen;
}

/** Asserts that none of `secrets` appears in any of `texts` (API answers, log lines, histories). */
export function expectNoSecrets(texts: string[], secrets: string[]): void {
  for (const secret of secrets) {
    const hit = texts.find((t) => t.includes(secret));
    expect(hit, `a secret value leaked into: ${hit?.slice(0, 300)}`).toBeUndefined();
  }
}

/** Polls until `fn` holds (re-export for the kind files). */
export { waitFor };
