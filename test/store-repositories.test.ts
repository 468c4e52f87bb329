/**
 * Every repository of the store (lib/store/store.ts, auth-state.ts, outbound-media.ts, session-holders.ts) on
 * the project's engine — PGlite, PostgreSQL or SQLite — with the same assertions: each statement of the store
 * runs at least once here, so a statement that one engine's dialect cannot run, or runs with another
 * meaning, fails on that engine.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createStoreAuthState, ownsAuthState } from '../lib/store/auth-state.js';
import type { Db } from '../lib/store/db.js';
import { migrate } from '../lib/store/migrations.js';
import { createStore, type Store } from '../lib/store/store.js';
import { channelState, openScratchStore } from './support/scratch-store.js';

const kind = inject('storeKind');
const secretKey = randomBytes(32);

let db: Db;
let store: Store;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, drop } = await openScratchStore('wharf-repos-'));
  await migrate(db);
  store = createStore(db, secretKey);
}, 120_000);

afterAll(async () => {
  await db?.close();
  await drop?.();
});

describe(`store repositories on ${kind}`, () => {
  it('spaces: bind creates and binds a space once; another channel is refused; unbind frees it', async () => {
    await store.spaces.bind('sales', 'ch_a');
    await store.spaces.bind('sales', 'ch_a'); // the same channel again is fine
    await expect(store.spaces.bind('sales', 'ch_b')).rejects.toMatchObject({ code: 'conflict' });
    const got = await store.spaces.get('sales');
    expect(got).toMatchObject({ name: 'sales', channelId: 'ch_a' });
    expect(new Date(got!.createdAt).toISOString()).toBe(got!.createdAt);
    await store.spaces.unbind('ch_a');
    expect((await store.spaces.list({ unbound: true })).map((s) => s.name)).toContain('sales');
    expect((await store.spaces.list()).find((s) => s.name === 'sales')?.channelId).toBeNull();
    expect(await store.spaces.get('nope')).toBeNull();
  });

  it('agents: created with their JSON config, listed after the built-ins, removed once', async () => {
    const a = await store.agents.create({
      id: 'bot-1',
      kind: 'openai',
      config: { model: 'x', n: 2, deep: { ok: true } },
    });
    expect(a.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    await expect(store.agents.create({ id: 'bot-1', kind: 'echo', config: {} })).rejects.toMatchObject({
      code: 'conflict',
    });
    expect(await store.agents.get('bot-1')).toEqual(a);
    expect((await store.agents.list()).map((x) => x.id)).toEqual(['echo', 'bot-1']);
    expect(await store.agents.remove('bot-1')).toBe(true);
    expect(await store.agents.remove('bot-1')).toBe(false);
  });

  it('the local vault: sealed items resolve by id or name, rotate, and go', async () => {
    const item = await store.vault.createLocal({ name: 'meta-token', kind: 'api_key', fields: { value: 'EAAG-1' } });
    await expect(
      store.vault.createLocal({ name: 'meta-token', kind: 'api_key', fields: { value: 'x' } }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect(item.fields).toEqual(['value']);
    expect(await store.vault.list('local')).toEqual([item]);
    expect(await store.vault.get('local', 'meta-token')).toEqual(item);
    expect(await store.vault.refExists({ vault: 'local', item: item.item, field: 'value' })).toBe(true);
    expect(await store.vault.refExists({ vault: 'local', item: item.item, field: 'other' })).toBe(false);
    expect(await store.vault.resolve({ vault: 'local', item: 'meta-token', field: 'value' })).toBe('EAAG-1');
    const rotated = await store.vault.rotateLocal('meta-token', { value: 'EAAG-2', extra: 'e' });
    expect(rotated?.fields).toEqual(['value', 'extra']);
    expect(await store.vault.resolve({ vault: 'local', item: item.item, field: 'value' })).toBe('EAAG-2');
    expect(await store.vault.rotateLocal('missing', { value: 'x' })).toBeNull();
    expect(await store.vault.removeLocal(item.item)).toBe(true);
    expect(await store.vault.resolve({ vault: 'local', item: item.item, field: 'value' })).toBeNull();
  });

  it('vault connections: create, update settings, list, remove', async () => {
    const c = await store.vaultConnections.create({ id: 'hv', kind: 'hashicorp', settings: { address: 'http://v' } });
    expect(c).toMatchObject({ id: 'hv', kind: 'hashicorp', settings: { address: 'http://v' } });
    await expect(store.vaultConnections.create({ id: 'hv', kind: 'hashicorp', settings: {} })).rejects.toMatchObject({
      code: 'conflict',
    });
    const u = await store.vaultConnections.update('hv', { address: 'http://w', mount: 'kv' });
    expect(u?.settings).toEqual({ address: 'http://w', mount: 'kv' });
    expect(u!.updatedAt >= c.updatedAt).toBe(true);
    expect(await store.vaultConnections.get('hv')).toEqual(u);
    expect(await store.vaultConnections.list()).toEqual([u]);
    expect(await store.vaultConnections.update('nope', {})).toBeNull();
    expect(await store.vaultConnections.remove('hv')).toBe(true);
    expect(await store.vaultConnections.get('hv')).toBeNull();
  });

  it('channels: the per-message copy is as fresh as a read — a read that a write overtook stays out of it', async () => {
    await store.channels.project(channelState('ch_r', { version: 1, status: 'connected' }));
    // A transaction holds the connection: the read and then the write queue behind it, and the write is
    // made (its copy dropped) while the read is still under way.
    let release!: () => void;
    const holding = db.transaction(() => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 10));
    const reading = store.channels.getRecent('ch_r');
    const writing = store.channels.project(channelState('ch_r', { version: 2, status: 'disconnected' }));
    release();
    await Promise.all([holding, reading, writing]);

    expect(await store.channels.getRecent('ch_r')).toMatchObject({ version: 2, status: 'disconnected' });
    await store.channels.purge('ch_r');
  });

  it('channels: a projection never goes back a version; lists, counts, configs, purge', async () => {
    const v2 = channelState('ch_p', { version: 2, status: 'connected' });
    await store.channels.project(v2);
    await store.channels.project(channelState('ch_p', { version: 1, status: 'setup' })); // stale: ignored
    expect(await store.channels.get('ch_p')).toEqual(v2);
    expect(await store.channels.getRecent('ch_p')).toEqual(v2);
    store.channels.forget('ch_p');
    await store.channels.project(channelState('ch_q', { provider: 'whatsapp_user', status: 'setup' }));
    expect((await store.channels.list({ status: 'connected' })).map((c) => c.id)).toEqual(['ch_p']);
    expect((await store.channels.list({ provider: 'whatsapp_user' })).map((c) => c.id)).toEqual(['ch_q']);
    expect((await store.channels.list()).map((c) => c.id).sort()).toEqual(['ch_p', 'ch_q']);
    expect(await store.channels.countByStatus()).toEqual([
      { provider: 'whatsapp_cloud', status: 'connected', count: 1 },
      { provider: 'whatsapp_user', status: 'setup', count: 1 },
    ]);
    expect(await store.channels.usingAgent('echo')).toEqual(expect.arrayContaining(['ch_p', 'ch_q']));
    expect(await store.channels.configs()).toEqual(expect.arrayContaining([{ id: 'ch_p', config: v2.config }]));
    await store.channels.project(channelState('ch_q', { version: 2 }), true); // deleted
    expect(await store.channels.get('ch_q')).toBeNull();
    await store.channels.purge('ch_q');
    await store.channels.purge('ch_p');
    expect(await store.channels.list()).toEqual([]);
  });

  it('diagnostics: times, counters that add up, the last send error and subscribed apps', async () => {
    expect(await store.diagnostics.get('ch_d')).toEqual({
      lastWebhookAt: null,
      lastVerificationAt: null,
      verificationsRefused: 0,
      badSignatureEvents: 0,
      lastSendError: null,
    });
    await store.diagnostics.record('ch_d', 'webhook');
    await store.diagnostics.record('ch_d', 'verified');
    await store.diagnostics.record('ch_d', 'bad_signature', 3);
    await store.diagnostics.record('ch_d', 'bad_signature');
    await store.diagnostics.record('ch_d', 'verification_refused', 2);
    await store.diagnostics.sendError('ch_d', { code: 131047, message: 'Re-engagement message' });
    await store.diagnostics.subscribedApps('ch_d', 0);
    const many = await store.diagnostics.getMany(['ch_d', 'ch_none']);
    const d = many.get('ch_d')!;
    expect(d).toMatchObject({
      verificationsRefused: 2,
      badSignatureEvents: 4,
      lastSendError: { code: 131047, message: 'Re-engagement message' },
      subscribedApps: { count: 0 },
    });
    expect(Date.now() - Date.parse(d.lastWebhookAt!)).toBeLessThan(60_000);
    expect(d.lastVerificationAt).toMatch(/Z$/);
    expect(many.get('ch_none')?.badSignatureEvents).toBe(0);
    await store.diagnostics.remove('ch_d');
    expect((await store.diagnostics.get('ch_d')).badSignatureEvents).toBe(0);
  });

  it('inbound: recorded once per id (a redelivery is dropped, a retry of the same delivery is not); outcomes merge details', async () => {
    const rows = [
      { id: 'wamid.1', chatId: 'c1', address: '+1555001', text: 'hello' },
      { id: 'wamid.2', chatId: 'c1', address: '+1555001', text: 'image here', type: 'image' },
    ];
    expect(await store.messages.recordInbound('ch_m', 'tok-1', rows)).toEqual(new Set(['wamid.1', 'wamid.2']));
    expect(await store.messages.recordInbound('ch_m', 'tok-1', rows)).toEqual(new Set(['wamid.1', 'wamid.2']));
    expect(await store.messages.recordInbound('ch_m', 'tok-2', rows)).toEqual(new Set());
    await store.messages.recordUnhandled('ch_m', [
      {
        id: 'wamid.r',
        chatId: 'c1',
        address: '+1555001',
        type: 'reaction',
        text: '👍',
        status: 'ignored',
        reason: 'r',
      },
    ]);
    await store.messages.mergeInboundDetail('ch_m', 'wamid.2', { media: { id: 'abc', nested: { a: 1 } } });
    await store.messages.mergeInboundDetail('ch_m', 'wamid.2', { caption: 'x', media: { id: 'def' } });
    await store.messages.setInboundStatuses('ch_m', [
      { id: 'wamid.1', status: 'answered', detail: { markdown: '**hi**' } },
      { id: 'wamid.2', status: 'denied' },
    ]);
    await store.messages.setInboundStatus('ch_m', 'wamid.1', 'failed', { error: 'late' }); // never replaces answered
    const recent = await store.messages.recent('ch_m', 10);
    const byKey = new Map(recent.map((m) => [m.key, m]));
    expect(byKey.get('wamid.1')).toMatchObject({ status: 'answered', detail: { markdown: '**hi**' }, type: 'text' });
    // A shallow merge, as PostgreSQL's `jsonb ||`: `media` is replaced whole, not merged key by key.
    expect(byKey.get('wamid.2')).toMatchObject({
      status: 'denied',
      type: 'image',
      detail: { media: { id: 'def' }, caption: 'x' },
    });
    expect(byKey.get('wamid.r')).toMatchObject({ status: 'ignored', type: 'reaction', detail: { reason: 'r' } });
    expect(await store.messages.chatWindow('ch_m', 'c1', 5)).toMatchObject([
      { key: 'wamid.1', detail: { markdown: '**hi**' } },
    ]);
    expect(await store.messages.hasInbound('ch_m', 'c1')).toBe(true);
    expect(await store.messages.hasInbound('ch_m', 'c2')).toBe(false);
  });

  it('the message log lists newest first, in the order rows were written', async () => {
    // A few milliseconds apart: PGlite's clock can give two statements of the same millisecond the same time,
    // and the chat window has no tie-breaker (SQLite's `now()` keeps them apart by a microsecond).
    for (let i = 0; i < 12; i++) {
      await store.messages.recordInbound('ch_order', `t${i}`, [
        { id: `m${String(i).padStart(2, '0')}`, chatId: 'c', address: 'a', text: `n${i}` },
      ]);
      await new Promise((r) => setTimeout(r, 3));
    }
    for (let i = 0; i < 12; i++)
      await store.messages.setInboundStatus('ch_order', `m${String(i).padStart(2, '0')}`, 'answered');
    expect((await store.messages.recent('ch_order', 3)).map((m) => m.key)).toEqual(['m11', 'm10', 'm09']);
    expect((await store.messages.chatWindow('ch_order', 'c', 3)).map((m) => m.key)).toEqual(['m09', 'm10', 'm11']);
  });

  it('outbound: a completed part carries its provider id; statuses never go backwards; sent ids are known', async () => {
    await store.messages.recordInbound('ch_o', 'tok', [{ id: 'in.1', chatId: 'c1', address: '+1', text: 'q' }]);
    const claim = await store.messages.claimOutbound(
      'ch_o',
      'c1',
      [{ key: 'r:in.1#1', address: '+1', text: 'a' }],
      'A',
    );
    expect(claim).toEqual({ done: new Map(), busy: new Set() });
    await store.messages.completeOutbound({
      channelId: 'ch_o',
      key: 'r:in.1#1',
      providerId: 'wamid.out1',
      inbound: { id: 'in.1', status: 'answered', detail: { markdown: 'a' } },
    });
    expect(await store.messages.applyStatus('ch_o', 'wamid.out1', 'read')).toBe(true);
    expect(await store.messages.applyStatus('ch_o', 'wamid.out1', 'delivered')).toBe(false); // backwards
    expect(await store.messages.applyStatus('ch_o', 'wamid.none', 'read')).toBe(false);
    await store.messages.recordOutbound({
      channelId: 'ch_o',
      key: 'r:in.9#1',
      chatId: 'c1',
      address: '+1',
      text: 'b',
      status: 'failed',
      detail: { error: { code: 131026 } },
    });
    await store.outboundMedia.describeOutbound('ch_o', 'r:in.9#1', 'document', { filename: 'a.pdf' });
    const log = new Map((await store.messages.recent('ch_o', 10)).map((m) => [m.key, m]));
    expect(log.get('r:in.1#1')).toMatchObject({ direction: 'out', providerId: 'wamid.out1', status: 'read' });
    expect(log.get('in.1')).toMatchObject({ status: 'answered', detail: { markdown: 'a' } });
    expect(log.get('r:in.9#1')).toMatchObject({
      status: 'failed',
      type: 'document',
      detail: { error: { code: 131026 }, filename: 'a.pdf' },
    });
    expect(await store.messages.sentProviderIds('ch_o', ['wamid.out1', 'wamid.other'])).toEqual(
      new Set(['wamid.out1']),
    );
    expect(
      (await store.messages.claimOutbound('ch_o', 'c1', [{ key: 'r:in.1#1', address: '+1', text: 'a' }], 'B')).done,
    ).toEqual(new Map([['r:in.1#1', 'wamid.out1']]));
  });

  it('policies: every save is kept; the newest is current', async () => {
    expect(await store.policies.current()).toEqual({ text: '', updatedAt: null });
    const first = await store.policies.save('permit(principal, action, resource);');
    const second = await store.policies.save('forbid(principal, action, resource);');
    expect(second.id).toBeGreaterThan(first.id);
    expect(await store.policies.version()).toBe(second.id);
    expect(await store.policies.current()).toEqual({
      text: 'forbid(principal, action, resource);',
      updatedAt: second.updatedAt,
    });
  });

  it('media: stored once by content, read back byte for byte, pruned by age', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const put = await store.media.put(bytes, 'image/png');
    expect(await store.media.put(bytes, 'image/png')).toEqual(put);
    const got = await store.media.get(put.id);
    expect(got?.mime).toBe('image/png');
    expect(Buffer.compare(got!.bytes, bytes)).toBe(0);
    expect(await store.media.prune(1)).toBe(0);
    expect(await store.media.prune(0)).toBe(1);
    expect(await store.media.get(put.id)).toBeNull();
  });

  it('uploads to Meta are reused per phone number until dropped', async () => {
    expect(await store.outboundMedia.findUpload('pn1', 'sha')).toBeNull();
    await store.outboundMedia.saveUpload('pn1', 'sha', 'meta-1');
    await store.outboundMedia.saveUpload('pn1', 'sha', 'meta-2');
    expect(await store.outboundMedia.findUpload('pn1', 'sha')).toBe('meta-2');
    await store.outboundMedia.dropUpload('pn1', 'sha');
    expect(await store.outboundMedia.findUpload('pn1', 'sha')).toBeNull();
  });

  it('uploads too old to reuse are forgotten by the sweep', async () => {
    await store.outboundMedia.saveUpload('pn2', 'sha-old', 'meta-old');
    expect(await store.outboundMedia.pruneUploads()).toBe(0); // younger than the 25 days of reuse
    await new Promise((resolve) => setTimeout(resolve, 5)); // the store's clock has moved past the save
    expect(await store.outboundMedia.pruneUploads(0)).toBe(1);
    expect(await store.outboundMedia.findUpload('pn2', 'sha-old')).toBeNull();
  });

  it('session holders: a dead node’s attempts are taken once; a released one is gone', async () => {
    const h = { channelId: 'ch_s', nodeId: 'node-dead', workflowId: 'wf', runId: 'run', activityId: '1', attempt: 3 };
    await store.sessionHolders.record(h);
    await store.sessionHolders.record({ ...h, channelId: 'ch_t', nodeId: 'node-self' });
    expect(await store.sessionHolders.takeDead('node-self', 6000)).toEqual([h]);
    expect(await store.sessionHolders.takeDead('node-self', 6000)).toEqual([]);
    await store.sessionHolders.release({ channelId: 'ch_t', nodeId: 'node-self', runId: 'run', attempt: 3 });
    expect(await store.sessionHolders.takeDead('node-other', 6000)).toEqual([]);
  });

  it('session links: a pairing code is extended, never shortened; the database clock stamps it', async () => {
    const before = await store.sessionLinks.now();
    const at = new Date(Date.now() + 60_000);
    await store.sessionLinks.set('ch_l', { qr: null, pairingCode: 'ABCD-1234', expiresAt: at });
    await store.sessionLinks.extendCode('ch_l', new Date(at.getTime() - 30_000)); // earlier: kept
    expect((await store.sessionLinks.get('ch_l'))?.expiresAt).toEqual(at);
    await store.sessionLinks.extendCode('ch_l', new Date(at.getTime() + 30_000));
    const link = await store.sessionLinks.get('ch_l');
    expect(link?.expiresAt).toEqual(new Date(at.getTime() + 30_000));
    expect(link!.updatedAt!.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1);
    await store.authState.clear('ch_l');
    expect(await store.sessionLinks.get('ch_l')).toBeNull();
  });

  it('Baileys auth state: keys set and read in batches, creds saved, a fenced session loses to a newer one', async () => {
    const auth = await createStoreAuthState({
      db,
      secretKey,
      channelId: 'ch_auth',
      fence: { token: 'one', claim: true },
    });
    await auth.state.keys.set({ 'pre-key': { '1': { public: Buffer.from('p1'), private: Buffer.from('s1') } } });
    await auth.state.keys.set({ session: { a: Buffer.from('sess-a'), b: Buffer.from('sess-b') } });
    await auth.state.keys.set({ session: { b: null } });
    const sessions = await auth.state.keys.get('session', ['a', 'b']);
    expect(Object.keys(sessions)).toEqual(['a']);
    expect(Buffer.from(sessions.a as Uint8Array).toString()).toBe('sess-a');
    await auth.saveCreds();
    expect(await ownsAuthState({ db, secretKey, channelId: 'ch_auth', token: 'one' })).toBe(true);

    const newer = await createStoreAuthState({
      db,
      secretKey,
      channelId: 'ch_auth',
      fence: { token: 'two', claim: true },
    });
    expect(newer.state.creds.registrationId).toBe(auth.state.creds.registrationId); // the saved creds
    await expect(auth.saveCreds()).rejects.toThrow();
    await newer.clear();
    expect(await newer.state.keys.get('session', ['a'])).toEqual({});
    expect(await ownsAuthState({ db, secretKey, channelId: 'ch_auth', token: 'two' })).toBe(true);
  });
});
