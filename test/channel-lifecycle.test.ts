/**
 * The foundation end to end: channels, spaces, agents, the local vault, the error shape, the channel workflow's
 * update validation, continue-as-new, search attributes, restart durability and secret hygiene — with a real
 * Temporal dev server, a real PGlite store and real HTTP (no mocks; Meta is the fake Graph server).
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WharfChannelStatus, WharfProvider, WharfSpace } from '../lib/search-attributes.js';
import type { ChannelState } from '../lib/types.js';
import {
  pairSender,
  patchChannel,
  saveConfig,
  startPairing as startPairingUpdate,
  state as stateQuery,
} from '../workflows/channel-messages.js';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  chatWorkflowIds,
  cloudChannel,
  describeOrNull,
  echoRoundTrip,
  expectError,
  getChannel,
  historyText,
  lastingView,
  pairPhone,
  phone,
  uid,
  vaultItem,
  verify,
  waitFor,
  waitForChannel,
} from './support/cloud.js';
import { HEALTH_CHECK_MS } from '../api/app.js';
import { newChannelState } from '../api/channel-gateway.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
let fake: FakeGraph;

beforeAll(async () => {
  fake = await startFakeGraph();
  w = await startWharf({ graphUrl: fake.url });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

const CLOUD_LABEL = 'WhatsApp (Meta Cloud API)';
const PERSONAL_LABEL = 'WhatsApp (Personal account)';

const createChannel = (body: Record<string, unknown>) => w.api('POST', '/api/channels', body);
const spaceNames = async (query = ''): Promise<string[]> =>
  ((await w.api('GET', `/api/spaces${query}`)).data as { name: string }[]).map((s) => s.name);

describe('creating channels', () => {
  it('creates a Cloud API channel with the defaults: the provider label as space, inbound message, status setup', async () => {
    const r = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo' });

    expect(r.status).toBe(201);
    expect(r.data).toMatchObject({
      id: expect.stringMatching(/^ch_[a-z2-7]{10}$/),
      provider: 'whatsapp_cloud',
      status: 'setup',
      statusReason: expect.any(String),
      space: CLOUD_LABEL,
      agent: 'echo',
      inbound: 'message',
      config: {},
      webhookUrl: null,
      pairedAddresses: [],
      pairing: null,
      diagnostics: {
        lastWebhookAt: null,
        lastVerificationAt: null,
        verificationsRefused: 0,
        badSignatureEvents: 0,
        lastSendError: null,
      },
    });
    expect(Date.parse(r.data.createdAt)).not.toBeNaN();
    expect(Date.parse(r.data.updatedAt)).not.toBeNaN();
    const again = await getChannel(w, r.data.id);
    expect(again).toMatchObject({ id: r.data.id, space: CLOUD_LABEL, status: 'setup', inbound: 'message' });
    const desc = await w.client.workflow.getHandle(`channel-${r.data.id}`).describe();
    expect(desc.status.name).toBe('RUNNING');
  });

  it('creates a channel in an explicit space with signal mode', async () => {
    const space = `ops-${uid()}`;

    const r = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space, inbound: 'signal' });

    expect(r.status).toBe(201);
    expect(r.data).toMatchObject({ space, inbound: 'signal', status: 'setup' });
    expect(await spaceNames()).toContain(space);
    expect((await w.client.workflow.getHandle(`channel-${r.data.id}`).query(stateQuery)).inbound).toBe('signal');
  });

  it('creates a personal-account channel in its own default space', async () => {
    const r = await createChannel({ provider: 'whatsapp_user', agent: 'echo' });

    expect(r.status).toBe(201);
    expect(r.data).toMatchObject({
      provider: 'whatsapp_user',
      space: PERSONAL_LABEL,
      status: 'setup',
      inbound: 'message',
      webhookUrl: null,
    });
  });

  it('refuses a second channel in a bound space with 409 and leaves nothing half-made', async () => {
    const space = `taken-${uid()}`;
    expect((await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space })).status).toBe(201);
    const first = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo' }); // binds the label space unless bound already
    expect([201, 409]).toContain(first.status);
    const before = (await w.api('GET', '/api/channels')).data.length;

    const explicit = await createChannel({ provider: 'whatsapp_user', agent: 'echo', space });
    const byDefault = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo' });

    expectError(explicit, 409, 'conflict');
    expectError(byDefault, 409, 'conflict');
    expect((await w.api('GET', '/api/channels')).data.length).toBe(before);
  });

  it('hides bound spaces with ?unbound=true', async () => {
    const bound = `bound-${uid()}`;
    const ch = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space: bound });
    expect(ch.status).toBe(201);

    const all = (await w.api('GET', '/api/spaces')).data as { name: string; channelId: string | null }[];
    const unbound = await spaceNames('?unbound=true');

    expect(all.find((s) => s.name === bound)).toMatchObject({ name: bound, channelId: ch.data.id });
    expect(unbound).not.toContain(bound);
    expect(unbound).not.toContain(CLOUD_LABEL);
  });

  it('filters the channel list by status and provider', async () => {
    const space = `list-${uid()}`;
    const ch = (await createChannel({ provider: 'whatsapp_user', agent: 'echo', space })).data;

    const personal = (await w.api('GET', '/api/channels?provider=whatsapp_user')).data as {
      id: string;
      provider: string;
    }[];
    const connected = (await w.api('GET', '/api/channels?status=connected')).data as { id: string }[];

    expect(personal.map((c) => c.id)).toContain(ch.id);
    expect(personal.every((c) => c.provider === 'whatsapp_user')).toBe(true);
    expect(connected.map((c) => c.id)).not.toContain(ch.id);
  });
});

describe('deleting channels', () => {
  it('frees the space, ends the workflow, makes the channel 404, and lets a new channel take the space', async () => {
    const space = `del-${uid()}`;
    const first = (await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space })).data;

    const del = await w.api('DELETE', `/api/channels/${first.id}`);

    expect(del.status).toBe(204);
    expectError(await w.api('GET', `/api/channels/${first.id}`), 404, 'not_found');
    expectError(await w.api('DELETE', `/api/channels/${first.id}`), 404, 'not_found');
    expect(((await w.api('GET', '/api/channels')).data as { id: string }[]).map((c) => c.id)).not.toContain(first.id);
    expect(await spaceNames('?unbound=true')).toContain(space);
    await waitFor(
      'the deleted channel workflow to complete',
      async () => (await w.client.workflow.getHandle(`channel-${first.id}`).describe()).status.name === 'COMPLETED',
    );

    const second = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space });
    expect(second.status).toBe(201);
    expect(second.data.id).not.toBe(first.id);
    expect(second.data.space).toBe(space);
    expect(await spaceNames('?unbound=true')).not.toContain(space);
  });
});

describe('error paths', () => {
  it('answers 401 with the error shape without a token or with a wrong one', async () => {
    const none = await w.api('GET', '/api/channels', undefined, { auth: false });
    const wrong = await w.api('GET', '/api/channels', undefined, {
      auth: false,
      headers: { authorization: 'Bearer not-the-token' },
    });
    const notBearer = await w.api('GET', '/api/system', undefined, {
      auth: false,
      headers: { authorization: `Basic ${w.token}` },
    });

    expectError(none, 401, 'unauthorized');
    expectError(wrong, 401, 'unauthorized');
    expectError(notBearer, 401, 'unauthorized');
  });

  it('answers malformed JSON with 400 invalid_json', async () => {
    expectError(await w.api('POST', '/api/channels', '{"provider":'), 400, 'invalid_json');
  });

  it('refuses an unknown provider with zod details and creates nothing', async () => {
    const space = `bad-provider-${uid()}`;

    const r = await createChannel({ provider: 'telegram', agent: 'echo', space });

    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: ['provider'], message: expect.any(String) })]),
    );
    expect(await spaceNames()).not.toContain(space);
  });

  it('refuses a bad inbound mode', async () => {
    const space = `bad-inbound-${uid()}`;

    const r = await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space, inbound: 'shout' });

    expectError(r, 400, 'validation_failed');
    expect(r.data.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: ['inbound'] })]));
    expect(await spaceNames()).not.toContain(space);
  });

  it('refuses an unknown agent on create and on patch', async () => {
    const space = `bad-agent-${uid()}`;

    const r = await createChannel({ provider: 'whatsapp_cloud', agent: `nobody-${uid()}`, space });

    expectError(r, 400, 'validation_failed');
    expect(await spaceNames()).not.toContain(space);
    const ok = (await createChannel({ provider: 'whatsapp_user', agent: 'echo', space })).data;
    expectError(await w.api('PATCH', `/api/channels/${ok.id}`, { agent: `nobody-${uid()}` }), 400, 'validation_failed');
    expect((await getChannel(w, ok.id)).agent).toBe('echo');
  });

  it('answers 404 for an unknown channel on GET, PATCH, PUT config, pair, un-pair and DELETE', async () => {
    const id = `ch_${uid()}`;
    const goodConfig = {
      phone_number_id: '123456789',
      business_account_id: '987654321',
      access_token: { vault: 'local', item: 'x', field: 'value' },
      verify_token: { vault: 'local', item: 'x', field: 'value' },
      app_secret: { vault: 'local', item: 'x', field: 'value' },
    };

    expectError(await w.api('GET', `/api/channels/${id}`), 404, 'not_found');
    expectError(await w.api('PATCH', `/api/channels/${id}`, { inbound: 'signal' }), 404, 'not_found');
    expectError(await w.api('PUT', `/api/channels/${id}/config`, goodConfig), 404, 'not_found');
    expectError(await w.api('POST', `/api/channels/${id}/pair`), 404, 'not_found');
    expectError(await w.api('DELETE', `/api/channels/${id}/paired/%2B15551234567`), 404, 'not_found');
    expectError(await w.api('GET', `/api/channels/${id}/messages`), 404, 'not_found');
    expectError(await w.api('DELETE', `/api/channels/${id}`), 404, 'not_found');
  });

  it('answers unknown routes with 404 and the error shape', async () => {
    expectError(await w.api('GET', '/api/nothing-here'), 404, 'not_found');
    expectError(await w.api('POST', '/api/channels/x/y/z', {}), 404, 'not_found');
    expectError(await w.api('GET', '/nothing-here', undefined, { auth: false }), 404, 'not_found');
  });

  it('refuses a PATCH with an empty body', async () => {
    const ch = (await createChannel({ provider: 'whatsapp_user', agent: 'echo', space: `patch-${uid()}` })).data;

    expectError(await w.api('PATCH', `/api/channels/${ch.id}`, {}), 400, 'validation_failed');
    expectError(await w.api('PATCH', `/api/channels/${ch.id}`), 400, 'validation_failed');
    const ok = await w.api('PATCH', `/api/channels/${ch.id}`, { inbound: 'signal' });
    expect(ok.status).toBe(200);
    expect(ok.data.inbound).toBe('signal');
  });
});

describe('agents', () => {
  it('lists the built-in echo agent', async () => {
    const r = await w.api('GET', '/api/agents');

    expect(r.status).toBe(200);
    expect(r.data).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'echo', kind: 'echo' })]));
  });

  it('adds echo and temporal agents (201) and refuses a duplicate id (409)', async () => {
    const echoId = `echo-${uid()}`;
    const temporalId = `tmp-${uid()}`;

    const echo = await w.api('POST', '/api/agents', { id: echoId, kind: 'echo' });
    const dup = await w.api('POST', '/api/agents', { id: echoId, kind: 'echo' });
    const builtin = await w.api('POST', '/api/agents', { id: 'echo', kind: 'echo' });
    const temporal = await w.api('POST', '/api/agents', {
      id: temporalId,
      kind: 'temporal',
      workflowType: 'myAgent',
      taskQueue: 'agents',
    });

    expect(echo.status).toBe(201);
    expect(echo.data).toMatchObject({ id: echoId, kind: 'echo' });
    expectError(dup, 409, 'conflict');
    expectError(builtin, 409, 'conflict');
    expect(temporal.status).toBe(201);
    expect(temporal.data).toMatchObject({
      id: temporalId,
      kind: 'temporal',
      config: { workflowType: 'myAgent', taskQueue: 'agents' },
    });
    const ids = ((await w.api('GET', '/api/agents')).data as { id: string }[]).map((a) => a.id);
    expect(ids).toEqual(expect.arrayContaining(['echo', echoId, temporalId]));
  });

  it('refuses an openai agent whose apiKey ref dangles, and accepts one whose ref resolves', async () => {
    const id = `llm-${uid()}`;
    const dangling = await w.api('POST', '/api/agents', {
      id,
      kind: 'openai',
      baseUrl: 'http://127.0.0.1:9/v1',
      model: 'm',
      apiKey: { vault: 'local', item: `missing-${uid()}`, field: 'value' },
    });

    expectError(dangling, 400, 'validation_failed');
    const ref = await vaultItem(w, `llm-key-${uid()}`, `SECRET-llm-${uid()}`);
    const ok = await w.api('POST', '/api/agents', {
      id,
      kind: 'openai',
      baseUrl: 'http://127.0.0.1:9/v1',
      model: 'm',
      apiKey: ref,
    });
    expect(ok.status).toBe(201);
    expect(ok.data.config.apiKey).toEqual(ref);
  });

  it('refuses to delete an agent in use (409) and deletes an unused one (204)', async () => {
    const busy = `busy-${uid()}`;
    const idle = `idle-${uid()}`;
    expect((await w.api('POST', '/api/agents', { id: busy, kind: 'echo' })).status).toBe(201);
    expect((await w.api('POST', '/api/agents', { id: idle, kind: 'echo' })).status).toBe(201);
    const ch = (await createChannel({ provider: 'whatsapp_user', agent: busy, space: `agent-${uid()}` })).data;

    expectError(await w.api('DELETE', `/api/agents/${busy}`), 409, 'conflict');
    const del = await w.api('DELETE', `/api/agents/${idle}`);

    expect(del.status).toBe(204);
    expectError(await w.api('DELETE', `/api/agents/${idle}`), 404, 'not_found');
    expect(((await w.api('GET', '/api/agents')).data as { id: string }[]).map((a) => a.id)).not.toContain(idle);
    // Once the channel is gone, the agent is free.
    expect((await w.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    expect((await w.api('DELETE', `/api/agents/${busy}`)).status).toBe(204);
  });
});

describe('the local vault', () => {
  it('stores an item and never answers with its value', async () => {
    const name = `item-${uid()}`;
    const value = `SECRET-vault-${uid()}`;

    const r = await w.api('POST', '/api/vaults/local/items', { name, kind: 'api_key', fields: { value } });

    expect(r.status).toBe(201);
    expect(r.data).toMatchObject({ vault: 'local', item: expect.any(String), fields: ['value'] });
    expect(JSON.stringify(r.data)).not.toContain(value);
  });

  it('lists the local vault connection', async () => {
    const r = await w.api('GET', '/api/vaults');

    expect(r.status).toBe(200);
    expect(r.data).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'local' })]));
  });

  it('lists items with names and field names only', async () => {
    const name = `listed-${uid()}`;
    const value = `SECRET-listed-${uid()}`;
    const created = await w.api('POST', '/api/vaults/local/items', {
      name,
      kind: 'token',
      fields: { value, other: `SECRET-other-${uid()}` },
    });

    const r = await w.api('GET', '/api/vaults/local/items');

    expect(r.status).toBe(200);
    const item = (r.data as { name: string }[]).find((i) => i.name === name);
    expect(item).toMatchObject({
      vault: 'local',
      item: created.data.item,
      name,
      fields: expect.arrayContaining(['value', 'other']),
    });
    expect(JSON.stringify(r.data)).not.toContain(value);
    expect(JSON.stringify(r.data)).not.toContain('SECRET-other');
  });

  it('refuses a duplicate name with 409', async () => {
    const name = `dup-${uid()}`;
    expect(
      (await w.api('POST', '/api/vaults/local/items', { name, kind: 'api_key', fields: { value: 'a' } })).status,
    ).toBe(201);

    expectError(
      await w.api('POST', '/api/vaults/local/items', { name, kind: 'api_key', fields: { value: 'b' } }),
      409,
      'conflict',
    );
  });

  it('answers 404 for an unknown vault', async () => {
    expectError(await w.api('GET', `/api/vaults/nope-${uid()}/items`), 404, 'not_found');
  });
});

describe('update validation of the channel workflow', () => {
  it('refuses bad updates in their validators and leaves no trace of them in history', async () => {
    const ch = (await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space: `validate-${uid()}` })).data;
    const handle = w.client.workflow.getHandle(`channel-${ch.id}`);
    const refusal = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
      const err = await p.then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (err as WorkflowUpdateFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      return cause as ApplicationFailure;
    };

    const badInbound = await refusal(handle.executeUpdate(patchChannel, { args: [{ inbound: 'shout' as never }] }));
    const plainSecret = await refusal(
      handle.executeUpdate(saveConfig, {
        args: [
          {
            config: {
              phone_number_id: '123456789',
              business_account_id: '987654321',
              access_token: 'plain-token',
              verify_token: 'plain',
              app_secret: 'plain',
            },
          },
        ],
      }),
    );
    const notConnected = await refusal(
      handle.executeUpdate(startPairingUpdate, {
        args: [{ code: 'ABC-123', expiresAt: new Date(Date.now() + 60_000).toISOString() }],
      }),
    );

    expect(badInbound.type).toBe('InvalidRequest');
    expect(plainSecret.type).toBe('InvalidRequest');
    expect(plainSecret.message).toMatch(/access_token must be a credential ref/);
    expect(notConnected.type).toBe('NotPossibleNow');
    const updateEvents = (events: unknown[]) =>
      events.filter((e) => {
        const ev = e as Record<string, unknown>;
        return (
          ev.workflowExecutionUpdateAcceptedEventAttributes ||
          ev.workflowExecutionUpdateCompletedEventAttributes ||
          ev.workflowExecutionUpdateAdmittedEventAttributes
        );
      });
    const refusedHistory = await handle.fetchHistory();
    expect(updateEvents(refusedHistory.events ?? [])).toEqual([]);
    const st = await handle.query(stateQuery);
    expect(st).toMatchObject({ inbound: 'message', config: {}, status: 'setup', pairing: null });

    // Positive control: an accepted update does show up, so the check above can see update events.
    await handle.executeUpdate(patchChannel, { args: [{ inbound: 'signal' }] });
    const history = await handle.fetchHistory();
    const events = updateEvents(history.events ?? []) as Record<
      string,
      { acceptedRequest?: { input?: { name?: string } } }
    >[];
    expect(events.length).toBe(2);
    expect(events[0].workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name).toBe('patchChannel');
  });
});

describe('continue-as-new', () => {
  it('keeps agent, inbound mode and paired addresses across runs', async () => {
    const agent = `can-agent-${uid()}`;
    expect((await w.api('POST', '/api/agents', { id: agent, kind: 'echo' })).status).toBe(201);
    const id = `ch_can${uid()}`;
    const space = `can-${uid()}`;
    const now = new Date().toISOString();
    const initial: ChannelState = {
      ...newChannelState({ id, provider: 'whatsapp_cloud', space, agent: 'echo', now }),
      status: 'connected',
      statusReason: 'Started directly by the test.',
    };
    await w.store.spaces.bind(space, id);
    await w.store.channels.project(initial);
    const started = await w.client.workflow.start('channelWorkflow', {
      workflowId: `channel-${id}`,
      taskQueue: w.taskQueue,
      args: [{ state: initial, historyLimit: 20 }],
      typedSearchAttributes: [
        { key: WharfChannelStatus, value: 'connected' },
        { key: WharfProvider, value: 'whatsapp_cloud' },
        { key: WharfSpace, value: space },
      ],
      memo: { space, agent: 'echo', provider: 'whatsapp_cloud' },
    });
    const handle = w.client.workflow.getHandle(`channel-${id}`);
    const [a, b, c] = [phone(), phone(), phone()];
    const pair = async (code: string, address: string): Promise<void> => {
      await handle.executeUpdate(startPairingUpdate, {
        args: [{ code, expiresAt: new Date(Date.now() + 600_000).toISOString() }],
      });
      expect(
        await handle.executeUpdate(pairSender, { args: [{ code: code.toLowerCase().replace('-', ''), address }] }),
      ).toEqual({ paired: true });
    };

    await handle.executeUpdate(patchChannel, { args: [{ agent }] });
    await handle.executeUpdate(patchChannel, { args: [{ inbound: 'signal' }] });
    await pair('ABC-123', a);
    await pair('DEF-456', b);
    for (let i = 0; i < 40 && (await handle.describe()).runId === started.firstExecutionRunId; i++) {
      await handle.executeUpdate(patchChannel, { args: [{ agent }] });
    }
    await pair('GHI-789', c); // after continue-as-new: updates keep working

    const desc = await handle.describe();
    expect(desc.runId).not.toBe(started.firstExecutionRunId);
    expect(desc.status.name).toBe('RUNNING');
    expect(desc.typedSearchAttributes.get(WharfSpace)).toBe(space);
    const st = await handle.query(stateQuery);
    expect(st).toMatchObject({ id, agent, inbound: 'signal', status: 'connected', space });
    expect(st.pairedAddresses.map((p) => p.address)).toEqual([a, b, c]);
    const view = await waitForChannel(w, id, 'the read model to catch up', (ch) => ch.pairedAddresses.length === 3);
    expect(view).toMatchObject({ agent, inbound: 'signal', status: 'connected' });
    expect(view.pairedAddresses.map((p: { address: string }) => p.address)).toEqual([a, b, c]);
  });
});

describe('search attributes and memo', () => {
  it('carries status, provider and space, with a memo of space and agent, and follows status changes', async () => {
    const space = `sa-${uid()}`;
    const ch = (await createChannel({ provider: 'whatsapp_cloud', agent: 'echo', space })).data;
    const handle = w.client.workflow.getHandle(`channel-${ch.id}`);

    const desc = await handle.describe();

    expect(desc.typedSearchAttributes.get(WharfChannelStatus)).toBe('setup');
    expect(desc.typedSearchAttributes.get(WharfProvider)).toBe('whatsapp_cloud');
    expect(desc.typedSearchAttributes.get(WharfSpace)).toBe(space);
    expect(desc.memo).toMatchObject({ space, agent: 'echo' });
    const found = await waitFor(`visibility to find ${space}`, async () => {
      for await (const wf of w.client.workflow.list({ query: `WharfSpace = '${space}'` })) return wf.workflowId;
      return undefined;
    });
    expect(found).toBe(`channel-${ch.id}`);

    const off = await w.api('POST', `/api/channels/${ch.id}/disconnect`);

    expect(off.status).toBe(200);
    expect(off.data.status).toBe('disconnected');
    await waitFor(
      'WharfChannelStatus = disconnected',
      async () => (await handle.describe()).typedSearchAttributes.get(WharfChannelStatus) === 'disconnected',
    );
  });
});

describe('system routes', () => {
  it('answers /healthz without auth', async () => {
    const r = await w.api('GET', '/healthz', undefined, { auth: false });

    expect(r.status).toBe(200);
    expect(r.data).toEqual({ ok: true, temporal: 'up', store: 'up' });
  });

  it('answers /healthz with the store down (503) while a stuck transaction holds the embedded store', async () => {
    if (w.store.shared) return; // PostgreSQL: a pool, one transaction holds no one else
    let release!: () => void;
    const held = w.store.db.transaction(() => new Promise<void>((r) => (release = r)));
    try {
      await new Promise((r) => setTimeout(r, 50));
      const t0 = Date.now();
      const r = await w.api('GET', '/healthz', undefined, { auth: false });
      expect(r.status).toBe(503);
      expect(r.data).toEqual({ ok: false, temporal: 'up', store: 'down' });
      expect(Date.now() - t0).toBeLessThan(HEALTH_CHECK_MS + 3000);
    } finally {
      release();
      await held;
    }
    expect((await w.api('GET', '/healthz', undefined, { auth: false })).data).toEqual({
      ok: true,
      temporal: 'up',
      store: 'up',
    });
  });

  it('describes the system: version, Temporal connection and store kind', async () => {
    const r = await w.api('GET', '/api/system');

    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({
      version: expect.any(String),
      temporal: {
        address: w.config.temporal.address,
        namespace: 'default',
        taskQueue: w.taskQueue,
        uiUrl: null,
        embedded: false,
      },
      store: { kind: inject('storeKind') },
    });
    expect(Object.keys(r.data.temporal).sort()).toEqual(['address', 'embedded', 'namespace', 'taskQueue', 'uiUrl']);
  });

  it('lists both providers with their config fields', async () => {
    const r = await w.api('GET', '/api/providers');

    expect(r.status).toBe(200);
    const cloud = (r.data as { id: string }[]).find((p) => p.id === 'whatsapp_cloud') as Record<string, unknown>;
    const personal = (r.data as { id: string }[]).find((p) => p.id === 'whatsapp_user') as Record<string, unknown>;
    expect(cloud).toMatchObject({ label: CLOUD_LABEL, publicUrlRequired: true });
    expect(personal).toMatchObject({ label: PERSONAL_LABEL, publicUrlRequired: false, fields: expect.any(Array) });
    const fields = (cloud.fields as { name: string; required: boolean; secret: boolean }[]).map(
      ({ name, required, secret }) => ({ name, required, secret }),
    );
    expect(fields).toEqual([
      { name: 'phone_number_id', required: true, secret: false },
      { name: 'business_account_id', required: true, secret: false },
      { name: 'access_token', required: true, secret: true },
      { name: 'verify_token', required: true, secret: true },
      { name: 'app_secret', required: true, secret: true },
    ]);
  });
});

describe('secret hygiene', () => {
  it('never shows a secret value in API responses or in the histories of the channel and its chats', async () => {
    const ch = await cloudChannel(w, fake, { stage: 'created' });
    const wrongToken = `SECRET-wrong-${uid()}`; // unknown to the fake: Meta refuses it
    const wrongRef = await vaultItem(w, `wrong-${uid()}`, wrongToken);
    const seen: string[] = [];
    const keep = <T extends { data: unknown }>(r: T): T => {
      seen.push(JSON.stringify(r.data));
      return r;
    };

    const refused = keep(await w.api('PUT', `/api/channels/${ch.id}/config`, { ...ch.config, access_token: wrongRef }));
    expect(refused.data.status).toBe('failed');
    keep(await w.api('PUT', `/api/channels/${ch.id}/config`, ch.config));
    expect((await verify(w, ch.id, ch.verifyToken, 'c')).status).toBe(200);
    await waitForChannel(w, ch.id, 'connected', (c) => c.status === 'connected');
    const sender = phone();
    await pairPhone(w, fake, ch, sender);
    await echoRoundTrip(w, fake, ch, sender, 'hello from the hygiene test');
    keep(await w.api('POST', `/api/channels/${ch.id}/pair`));
    for (const path of [
      `/api/channels/${ch.id}`,
      '/api/channels',
      `/api/channels/${ch.id}/messages?limit=500`,
      '/api/vaults',
      '/api/vaults/local/items',
      '/api/agents',
      '/api/spaces',
      '/api/system',
    ]) {
      keep(await w.api('GET', path));
    }
    const channelHistory = historyText(await w.client.workflow.getHandle(`channel-${ch.id}`).fetchHistory());
    const chatIds = await chatWorkflowIds(w, ch.id, 1);
    const chatHistories = await Promise.all(
      chatIds.map(async (id) => historyText(await w.client.workflow.getHandle(id).fetchHistory())),
    );

    expect(chatIds).toContain(`chat-${ch.id}-${sender}`);
    // Positive controls: payloads are decoded, so a secret would be visible if it were there.
    expect(channelHistory).toContain(ch.phoneNumberId);
    expect(channelHistory).toContain(ch.refs.access_token.item);
    expect(chatHistories.join('\n')).toContain('hello from the hygiene test');
    for (const secret of [ch.accessToken, ch.verifyToken, ch.appSecret, wrongToken]) {
      for (const text of seen) expect(text).not.toContain(secret);
      expect(channelHistory).not.toContain(secret);
      for (const text of chatHistories) expect(text).not.toContain(secret);
    }
  });
});

// Last: this restarts the shared instance (same data dir and task queue); later code uses the new one.
describe('restart durability', () => {
  it('keeps channels, vault items, agents, policies and spaces across a restart, and updates still work', async () => {
    const cloud = await cloudChannel(w, fake, { stage: 'connected' });
    const paired = phone();
    await pairPhone(w, fake, cloud, paired);
    const personal = (await createChannel({ provider: 'whatsapp_user', agent: 'echo', space: `restart-${uid()}` }))
      .data;
    const agent = `restart-agent-${uid()}`;
    expect((await w.api('POST', '/api/agents', { id: agent, kind: 'echo' })).status).toBe(201);
    const itemName = `restart-item-${uid()}`;
    await vaultItem(w, itemName, `SECRET-restart-${uid()}`);
    const policies = `permit(\n  principal == Policy::Agent::"assistant",\n  action == Policy::Action::"receive_message",\n  resource in Policy::Channel::"whatsapp_cloud"\n) when { resource.sender.address == "+15551234567" };\n`;
    expect((await w.api('PUT', '/api/policies', { policies })).status).toBe(200);
    const before = { cloud: await getChannel(w, cloud.id), personal: await getChannel(w, personal.id) };
    const { dataDir } = w.config;
    const { taskQueue } = w;

    await w.close();
    w = await startWharf({ graphUrl: fake.url, dataDir, taskQueue });

    const after = { cloud: await getChannel(w, cloud.id), personal: await getChannel(w, personal.id) };
    expect(lastingView(after.cloud)).toEqual(lastingView(before.cloud));
    expect(lastingView(after.personal)).toEqual(lastingView(before.personal));
    expect(after.cloud.pairedAddresses.map((p: { address: string }) => p.address)).toEqual([paired]);
    expect(((await w.api('GET', '/api/agents')).data as { id: string }[]).map((a) => a.id)).toContain(agent);
    expect(((await w.api('GET', '/api/vaults/local/items')).data as { name: string }[]).map((i) => i.name)).toContain(
      itemName,
    );
    expect((await w.api('GET', '/api/policies')).data.policies).toBe(policies);
    const spaces = (await w.api('GET', '/api/spaces')).data as { name: string; channelId: string | null }[];
    expect(spaces.find((s) => s.name === cloud.space)?.channelId).toBe(cloud.id);
    expect(spaces.find((s) => s.name === personal.space)?.channelId).toBe(personal.id);
    // The vault still decrypts (same generated key): Meta's verification with the saved verify_token passes.
    const v = await verify(w, cloud.id, cloud.verifyToken, 'after-restart');
    expect(v.status).toBe(200);
    expect(v.data).toBe('after-restart');
    // Updates and the chat flow still work on the new worker.
    const patched = await w.api('PATCH', `/api/channels/${personal.id}`, { inbound: 'signal', agent });
    expect(patched.status).toBe(200);
    expect(patched.data).toMatchObject({ inbound: 'signal', agent });
    const pairing = await w.api('POST', `/api/channels/${cloud.id}/pair`);
    expect(pairing.status).toBe(200);
    await echoRoundTrip(w, fake, cloud, paired, 'still here after the restart');
    const off = await w.api('POST', `/api/channels/${cloud.id}/disconnect`);
    expect(off.data.status).toBe('disconnected');
    expect(await describeOrNull(w, `channel-${cloud.id}`)).toMatchObject({ status: { name: 'RUNNING' } });
  });
});
