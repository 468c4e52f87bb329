/**
 * What the two cluster sections (bench/cluster.ts, bench/cluster-failover.ts) stand on: a throwaway
 * PostgreSQL, a Temporal dev server and the fake Graph API; Wharf nodes started and stopped on them; a Cloud
 * API channel that admits every sender; and a signed webhook post to one node, as Meta sends it.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { WHARF_SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';
import { resolveTemporalCli } from '../lib/temporal-cli.js';
import { inboundPayload, signPayload, startFakeGraph, type FakeGraph } from '../test/fakes/graph-server.js';
import { clusterSettings, startNode, type ClusterNode, type ClusterSettings } from '../test/support/cluster.js';
import { createTestDatabase, startTestPostgres } from '../test/support/postgres.js';
import { DEV_SERVER_TUNING } from '../workers/temporal-server.js';
import { bundleWorkflows, prebuiltBundlePath } from '../workers/workflow-bundle.js';
import { sleep } from './load.js';
import { DISPLAY_PHONE, GRAPH_TOKEN, PHONE_NUMBER_ID, WABA_ID } from './product.js';

/** The servers a cluster runs on and the nodes started on them. */
export interface ClusterRig {
  settings: ClusterSettings;
  fake: FakeGraph;
  temporalAddress: string;
  /** Every node started so far (stopped ones included), in start order. */
  nodes: ClusterNode[];
  /** Starts a node on the rig's settings; resolves once it serves. */
  startNode(name: string): Promise<ClusterNode>;
  /** SIGTERM to every node still running; resolves once all have exited. */
  stopNodes(): Promise<void>;
  /** Stops the nodes, then the fake Graph API, Temporal and PostgreSQL, and removes the scratch dir. */
  close(): Promise<void>;
}

/** Starts PostgreSQL (a fresh database), Temporal and the fake Graph API; `personal` points nodes at a simulator. */
export async function startClusterRig(
  section: string,
  personal: Pick<ClusterSettings, 'waUrl' | 'waCertRoot'> = {},
): Promise<ClusterRig> {
  const dir = mkdtempSync(join(tmpdir(), `wharf-${section}-bench-`));
  const postgres = await startTestPostgres();
  const cli = resolveTemporalCli();
  const temporal = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: cli.path ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' },
      searchAttributes: WHARF_SEARCH_ATTRIBUTES,
      extraArgs: ['--log-level', 'error', ...DEV_SERVER_TUNING],
    },
  });
  const fake = await startFakeGraph({
    tokens: { [GRAPH_TOKEN]: {} },
    phoneNumbers: { [PHONE_NUMBER_ID]: { displayPhoneNumber: DISPLAY_PHONE } },
  });
  const nodes: ClusterNode[] = [];
  const stopNodes = async () => void (await Promise.all(nodes.map((n) => n.stop())));
  const close = async () => {
    await stopNodes();
    await fake.close();
    await temporal.teardown();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // `npm run bench` builds the production bundle first; bundle here only when run some other way.
    let workflowBundlePath = prebuiltBundlePath;
    if (!existsSync(workflowBundlePath)) {
      workflowBundlePath = join(dir, 'workflows.js');
      writeFileSync(workflowBundlePath, (await bundleWorkflows()).code);
    }
    const settings = clusterSettings({
      databaseUrl: await createTestDatabase(postgres.adminUrl),
      temporalAddress: temporal.address,
      workflowBundlePath,
      graphUrl: fake.url,
      ...personal,
    });
    return {
      settings,
      fake,
      temporalAddress: temporal.address,
      nodes,
      async startNode(name) {
        const n = await startNode(name, settings);
        nodes.push(n);
        return n;
      },
      stopNodes,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | null | false> | T | null | false,
  timeoutMs = 90_000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Calls a node's API and returns the answer's body; any other status than `want` throws. */
export async function apiOk(
  n: ClusterNode,
  method: string,
  path: string,
  body?: unknown,
  want = 200,
): // eslint-disable-next-line @typescript-eslint/no-explicit-any -- loosely typed JSON answers, as in the tests
Promise<any> {
  const r = await n.w.api(method, path, body);
  if (r.status !== want) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.data)}`);
  return r.data;
}

/** A connected Cloud API channel and the app secret its webhooks are signed with. */
export interface CloudChannel {
  id: string;
  appSecret: string;
}

/**
 * Creates a Cloud API channel through `admin` (its credentials in the local vault), has Meta's verification
 * handshake answered by `verifier` (another node: any node serves any channel), waits until it is connected
 * and lets every sender in.
 */
export async function connectCloudChannel(
  admin: ClusterNode,
  verifier: ClusterNode,
  o: { space: string; secretPrefix: string },
): Promise<CloudChannel> {
  const item = async (name: string, value: string) => ({
    vault: 'local',
    item: (await apiOk(admin, 'POST', '/api/vaults/local/items', { name, fields: { value } }, 201)).item,
    field: 'value',
  });
  const appSecret = `${o.secretPrefix}-app-secret-0123456789`;
  const verifyToken = `${o.secretPrefix}-verify`;
  const ch = await apiOk(
    admin,
    'POST',
    '/api/channels',
    { provider: 'whatsapp_cloud', agent: 'echo', space: o.space },
    201,
  );
  await apiOk(admin, 'PUT', `/api/channels/${ch.id}/config`, {
    phone_number_id: PHONE_NUMBER_ID,
    business_account_id: WABA_ID,
    access_token: await item('token', GRAPH_TOKEN),
    verify_token: await item('verify', verifyToken),
    app_secret: await item('secret', appSecret),
  });
  const v = await verifier.w.api(
    'GET',
    `/webhooks/whatsapp/${ch.id}?hub.mode=subscribe&hub.verify_token=${verifyToken}&hub.challenge=1`,
    undefined,
    { auth: false },
  );
  if (v.status !== 200) throw new Error(`verification: HTTP ${v.status}`);
  await until(
    'the Cloud channel connected',
    async () => (await apiOk(admin, 'GET', `/api/channels/${ch.id}`)).status === 'connected',
  );
  await apiOk(admin, 'PUT', '/api/policies', {
    policies: `permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"${ch.id}");`,
  });
  return { id: ch.id as string, appSecret };
}

/**
 * Posts one inbound text from `to` to node `n` as a signed Meta webhook. Resolves with the time the node
 * acknowledged it (200), else null: a node that dies mid-request did not, so Meta would send it again.
 */
export async function postInbound(
  n: ClusterNode,
  ch: CloudChannel,
  msg: { to: string; text: string; id: string },
): Promise<number | null> {
  const body = JSON.stringify(
    inboundPayload({ phoneNumberId: PHONE_NUMBER_ID, wabaId: WABA_ID }, [
      { from: msg.to.slice(1), text: msg.text, id: msg.id },
    ]),
  );
  try {
    const r = await fetch(`${n.w.url}/webhooks/whatsapp/${ch.id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signPayload(body, ch.appSecret) },
      body,
    });
    const ackedAt = r.status === 200 ? Date.now() : null;
    await r.arrayBuffer();
    return ackedAt;
  } catch {
    return null;
  }
}
