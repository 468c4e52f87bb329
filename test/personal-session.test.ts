/**
 * The personal-account (Baileys) session: the store-backed auth state, message normalisation, the session
 * activity in a real Temporal worker (against the run's dev server, with a fake `makeWASocket`), the QR /
 * pairing-code API, and worker death mid-session. A stand-in channel workflow records the `sessionUpdate`
 * signals; a stand-in chat workflow echoes through `sendText` on the session worker's own queue.
 */
import { newChannelState } from '../api/channel-gateway.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import {
  BufferJSON,
  proto,
  type AuthenticationCreds,
  type SignalDataTypeMap,
  type UserFacingSocketConfig,
  type WAMessage,
} from '@whiskeysockets/baileys';
import express from 'express';
import QRCode from 'qrcode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { backoffDelay } from '../activities/personal-session/close-policy.js';
import { createSessionActivities } from '../activities/personal-session/index.js';
import { RecentSends, SESSION_UNAVAILABLE, type MakeSocket } from '../activities/personal-session/session-registry.js';
import { errorHandler } from '../api/errors.js';
import { personalRouter, type PersonalGateway } from '../api/personal.router.js';
import { AuthStateFencedError, createStoreAuthState, OWNER_KEY } from '../lib/store/auth-state.js';
import { addressToJid, jidToAddress, normalizeWaMessage } from '../lib/baileys/normalize.js';
import { notFound } from '../lib/errors.js';
import { formatReply } from '../lib/format/index.js';
import { createLogger } from '../lib/logger.js';
import { unseal } from '../lib/store/crypto.js';
import type { Db, Sql } from '../lib/store/db.js';
import { migrate } from '../lib/store/migrations.js';
import { openSqlite } from '../lib/store/sqlite.js';
import { createStore, type Store } from '../lib/store/store.js';
import type { ChannelState, InboundMessage, Provider } from '../lib/types.js';
import { PROVIDER_INFO } from '../lib/types.js';
import type { SessionUpdate } from '../workflows/channel-messages.js';
import { chatWorkflowId } from '../workflows/chat-messages.js';
import { bundleWorkflows } from '../workers/workflow-bundle.js';
import { createFakeBaileys, waMessage, type FakeBaileys, type FakeSocket } from './fakes/baileys-socket.js';
import {
  chatReceivedQuery,
  restartSession,
  sessionRunsQuery,
  sessionUpdatesQuery,
  type SessionHarnessInput,
} from './fixtures/session-workflows.js';

try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // installed already in this test process
}

const log = createLogger(process.env.WHARF_TEST_LOG ?? 'silent');
const secretKey = randomBytes(32);
const uid = (): string => randomBytes(5).toString('hex');

let dir: string;
let db: Db;
let store: Store;
let client: Client;
let nativeConnection: NativeConnection;
let workflowCode: string;

// One fake WhatsApp per channel; the activities' socket factory dispatches on the channel id.
const fakes = new Map<string, FakeBaileys>();
const fakeFor = (channelId: string): FakeBaileys => {
  let f = fakes.get(channelId);
  if (!f) fakes.set(channelId, (f = createFakeBaileys()));
  return f;
};
const makeSocket: MakeSocket = (config, meta) => fakeFor(meta!.channelId).makeSocket(config);

type Truthy<T> = Exclude<T, null | undefined | false | 0 | ''>;
async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as Truthy<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- a "process": session activities + a main-queue worker (workflows, runSession) + its own session queue
interface TestProcess {
  name: string;
  sessionQueue: string;
  acts: ReturnType<typeof createSessionActivities>;
  stop(): Promise<void>;
}

async function startProcess(
  name: string,
  mainQueue: string,
  opts: { dead?: () => boolean; realBaileys?: Partial<UserFacingSocketConfig> } = {},
): Promise<TestProcess> {
  const sessionQueue = `${mainQueue}-session-${name}`;
  const acts = createSessionActivities({
    store,
    db,
    secretKey,
    client,
    taskQueue: mainQueue,
    sessionQueue,
    log: log.child({ process: name }),
    makeSocket: opts.realBaileys ? undefined : makeSocket,
    socketConfig: opts.realBaileys,
    backoff: { initialMs: 100, maxMs: 400 },
    heartbeatMs: 250,
    random: () => 1,
    heartbeatGate: opts.dead ? () => !opts.dead!() : undefined,
  });
  const echoPlan = async ({ channelId, markdown }: { channelId: string; markdown: string }) => {
    const updates = await client.workflow.getHandle(`channel-${channelId}`).query(sessionUpdatesQuery);
    const last = updates.at(-1);
    return {
      parts: formatReply(markdown, { limit: PROVIDER_INFO.whatsapp_user.textLimit }),
      sessionQueue: last?.status === 'connected' ? (last.sessionQueue ?? null) : null,
    };
  };
  // A dead process still "polls" here (one test process hosts both), but never works on what it takes.
  const runSession: typeof acts.runSession = (input) =>
    opts.dead?.() ? new Promise((_, reject) => void Context.current().cancelled.catch(reject)) : acts.runSession(input);
  const common = {
    connection: nativeConnection,
    maxHeartbeatThrottleInterval: '100 milliseconds',
    defaultHeartbeatThrottleInterval: '100 milliseconds',
    shutdownGraceTime: '1 second',
    shutdownForceTime: '5 seconds',
    // Two "processes" share this test process (and so the SDK runtime): distinct build ids let both poll one queue.
    workerDeploymentOptions: {
      version: { deploymentName: 'wharf-personal-test', buildId: name },
      useWorkerVersioning: false,
    },
  } as const;
  const main = await Worker.create({
    ...common,
    taskQueue: mainQueue,
    workflowBundle: { code: workflowCode },
    activities: { runSession, echoPlan },
  });
  const session = await Worker.create({ ...common, taskQueue: sessionQueue, activities: { sendText: acts.sendText } });
  const running = [main.run(), session.run()];
  return {
    name,
    sessionQueue,
    acts,
    async stop() {
      for (const w of [main, session]) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(running);
    },
  };
}

let mainQueue: string;
let proc: TestProcess;
const started: WorkflowHandle[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-personal-'));
  db = await openSqlite(join(dir, 'store-sqlite'));
  await migrate(db);
  store = createStore(db, secretKey);
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({ connection });
  nativeConnection = await NativeConnection.connect({ address: inject('temporalAddress') });
  workflowCode = (await bundleWorkflows(fileURLToPath(new URL('./fixtures/session-workflows.ts', import.meta.url))))
    .code;
  mainQueue = `wharf-personal-${uid()}`;
  proc = await startProcess('a', mainQueue);
});

afterAll(async () => {
  await Promise.allSettled(started.map((h) => h.terminate('test over')));
  await proc?.stop();
  await nativeConnection?.close();
  await client?.connection.close();
  await db?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---- helpers over the harness -------------------------------------------------------------------------
async function startHarness(
  channelId: string,
  opts: { phoneNumber?: string; queue?: string; heartbeatTimeoutMs?: number } = {},
) {
  const input: SessionHarnessInput = {
    channelId,
    phoneNumber: opts.phoneNumber,
    heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 3000,
  };
  const handle = await client.workflow.start('sessionHarness', {
    workflowId: `channel-${channelId}`,
    taskQueue: opts.queue ?? mainQueue,
    args: [input],
  });
  started.push(handle);
  return handle;
}
const updatesOf = (h: WorkflowHandle): Promise<SessionUpdate[]> => h.query(sessionUpdatesQuery);
const waitForUpdate = (
  h: WorkflowHandle,
  pred: (u: SessionUpdate) => boolean,
  what: string,
  from = 0,
  timeoutMs = 20_000,
) => waitFor(async () => (await updatesOf(h)).slice(from).find(pred), what, timeoutMs);
const linkRow = async (channelId: string) =>
  (
    await db.query<{
      qr: string | null;
      pairing_code: string | null;
      expires_at: Date | string | null;
      updated_at: unknown;
    }>('select * from session_link where channel_id = $1', [channelId])
  )[0] ?? null;
const authKeys = async (channelId: string) =>
  (await db.query<{ key: string }>('select key from auth_state where channel_id = $1 order by key', [channelId])).map(
    (r) => r.key,
  );
const received = async (channelId: string, chatId: string): Promise<InboundMessage[]> => {
  try {
    return await client.workflow.getHandle(chatWorkflowId(channelId, chatId)).query(chatReceivedQuery);
  } catch {
    return [];
  }
};
const trackChat = (channelId: string, chatId: string) =>
  started.push(client.workflow.getHandle(chatWorkflowId(channelId, chatId)));

/** A channel whose session is open as +<number>. */
async function connectedChannel(number = '15550001111') {
  const channelId = `ch_${uid()}`;
  const fake = fakeFor(channelId);
  const h = await startHarness(channelId);
  const s0 = await fake.waitForSocket(0);
  await waitFor(() => s0.qrs.length > 0, 'first QR');
  s0.scan(number);
  await waitForUpdate(h, (u) => u.status === 'connected', 'connected');
  return { channelId, fake, h, socket: s0 };
}

// =========================================================================================================

describe('store-backed auth state', () => {
  it('round-trips creds and signal keys through the store, sealed (no plaintext key material in the table)', async () => {
    const channelId = `ch_${uid()}`;
    const a = await createStoreAuthState({ db, secretKey, channelId });
    expect(a.isLinked()).toBe(false);
    a.state.creds.me = { id: '15550001111:3@s.whatsapp.net', name: 'Owner' };
    a.state.creds.account = {
      details: randomBytes(16),
      accountSignatureKey: randomBytes(32),
      accountSignature: randomBytes(64),
      deviceSignature: randomBytes(64),
    };
    await a.saveCreds();
    const preKey = { public: randomBytes(32), private: randomBytes(32) };
    const session = randomBytes(64);
    const appKey = proto.Message.AppStateSyncKeyData.fromObject({ keyData: randomBytes(32), timestamp: 1700000000 });
    await a.state.keys.set({
      'pre-key': { '1': preKey, '2': { public: randomBytes(32), private: randomBytes(32) } },
      session: { 'abc.0': session },
      'app-state-sync-key': { AAEC: appKey },
    });
    await a.state.keys.set({ 'pre-key': { '2': null } });

    const b = await createStoreAuthState({ db, secretKey, channelId });
    expect(b.isLinked()).toBe(true);
    expect(b.state.creds.me?.id).toBe('15550001111:3@s.whatsapp.net');
    expect(Buffer.from(b.state.creds.noiseKey.private).equals(Buffer.from(a.state.creds.noiseKey.private))).toBe(true);
    expect(Buffer.isBuffer(b.state.creds.signedIdentityKey.public)).toBe(true);
    const pre = await b.state.keys.get('pre-key', ['1', '2', '3']);
    expect(Object.keys(pre)).toEqual(['1']);
    expect(Buffer.from(pre['1'].private).equals(preKey.private)).toBe(true);
    const sess = await b.state.keys.get('session', ['abc.0']);
    expect(Buffer.from(sess['abc.0']).equals(session)).toBe(true);
    const app = (await b.state.keys.get('app-state-sync-key', ['AAEC']))
      .AAEC as SignalDataTypeMap['app-state-sync-key'];
    expect(app).toBeInstanceOf(proto.Message.AppStateSyncKeyData);
    expect(Buffer.from(app.keyData!).equals(Buffer.from(appKey.keyData!))).toBe(true);

    const rows = await db.query<{ key: string; ciphertext: string }>(
      'select key, ciphertext from auth_state where channel_id = $1',
      [channelId],
    );
    expect(rows.map((r) => r.key).sort()).toEqual(['app-state-sync-key-AAEC', 'creds', 'pre-key-1', 'session-abc.0']);
    const secrets = [
      a.state.creds.noiseKey.private,
      a.state.creds.signedIdentityKey.private,
      preKey.private,
      session,
    ].map((x) => Buffer.from(x));
    for (const r of rows) {
      expect(r.ciphertext).toMatch(/^v1\./);
      expect(r.ciphertext).not.toContain('noiseKey');
      expect(r.ciphertext).not.toContain('15550001111');
      for (const s of secrets) {
        expect(r.ciphertext).not.toContain(s.toString('base64'));
        expect(r.ciphertext).not.toContain(s.toString('base64url'));
        expect(r.ciphertext).not.toContain(s.toString('hex'));
      }
    }
    // Bound to its row: the creds ciphertext does not open as another key or another channel's.
    const creds = rows.find((r) => r.key === 'creds')!.ciphertext;
    expect(() => unseal(secretKey, creds, `auth:${channelId}/pre-key-1`)).toThrow();
    expect(() => unseal(secretKey, creds, `auth:ch_other/creds`)).toThrow();
    expect(
      (JSON.parse(unseal(secretKey, creds, `auth:${channelId}/creds`), BufferJSON.reviver) as AuthenticationCreds).me
        ?.name,
    ).toBe('Owner');
    // And the wrong secret key cannot load it.
    await expect(createStoreAuthState({ db, secretKey: randomBytes(32), channelId })).rejects.toThrow();
  });

  it('serialises every write of one channel (no two transactions overlap), in call order, even across instances', async () => {
    const channelId = `ch_${uid()}`;
    let inFlight = 0;
    let maxInFlight = 0;
    const slowDb: Db = {
      ...db,
      query: db.query.bind(db),
      transaction: <T>(fn: (tx: Sql) => Promise<T>) =>
        db.transaction(async (tx) => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            await sleep(2);
            return await fn(tx);
          } finally {
            inFlight -= 1;
          }
        }),
    };
    const old = await createStoreAuthState({ db: slowDb, secretKey, channelId });
    const next = await createStoreAuthState({ db: slowDb, secretKey, channelId });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const who = i % 2 ? next : old;
      who.state.creds.nextPreKeyId = i;
      writes.push(who.saveCreds());
      writes.push(who.state.keys.set({ 'sender-key': { [`g${i % 5}`]: Buffer.from(String(i)) } }) as Promise<void>);
    }
    await Promise.all(writes);
    expect(maxInFlight).toBe(1);
    const reloaded = await createStoreAuthState({ db, secretKey, channelId });
    expect(reloaded.state.creds.nextPreKeyId).toBe(39);
    const sk = await reloaded.state.keys.get('sender-key', ['g0', 'g4']);
    expect(Buffer.from(sk.g0).toString()).toBe('35');
    expect(Buffer.from(sk.g4).toString()).toBe('39');
  });

  it('fences a superseded session: its writes are refused once another session claimed the channel or the state was cleared', async () => {
    const channelId = `ch_${uid()}`;
    const fenced: string[] = [];
    const first = await createStoreAuthState({
      db,
      secretKey,
      channelId,
      fence: { token: 'first', claim: true, onFenced: () => fenced.push('first') },
    });
    await first.saveCreds();
    const second = await createStoreAuthState({
      db,
      secretKey,
      channelId,
      fence: { token: 'second', claim: true, onFenced: () => fenced.push('second') },
    });
    await expect(first.saveCreds()).rejects.toBeInstanceOf(AuthStateFencedError);
    expect(fenced).toEqual(['first']);
    await second.saveCreds();
    // Clearing its own state keeps a session's ownership; clearing from outside (relink, delete) fences it.
    await second.clear();
    expect(await authKeys(channelId)).toEqual([OWNER_KEY]);
    await second.saveCreds();
    await store.authState.clear(channelId);
    await expect(second.saveCreds()).rejects.toBeInstanceOf(AuthStateFencedError);
    expect(await authKeys(channelId)).toEqual([]);
  });

  it('clear() removes every row of the channel and nothing of other channels; a closed instance writes nothing', async () => {
    const [c1, c2] = [`ch_${uid()}`, `ch_${uid()}`];
    const a = await createStoreAuthState({ db, secretKey, channelId: c1 });
    const b = await createStoreAuthState({ db, secretKey, channelId: c2 });
    await Promise.all([a.saveCreds(), b.saveCreds(), a.state.keys.set({ session: { x: randomBytes(4) } })]);
    await a.clear();
    expect(await authKeys(c1)).toEqual([]);
    expect(await authKeys(c2)).toEqual(['creds']);
    b.close();
    await expect(b.saveCreds()).rejects.toThrow(/closed/);
  });
});

// =========================================================================================================

describe('normalising Baileys messages', () => {
  const self = '15550001111:12@s.whatsapp.net';
  const selfLid = '99887766@lid';
  const ctx = (sent: string[] = []) => ({ selfJid: self, selfLid, sentIds: new Set(sent) });
  const norm = (m: WAMessage, sent: string[] = []) => normalizeWaMessage('ch_x', m, ctx(sent));

  it('a direct text from a contact: +E.164 chat and sender, push name, millisecond timestamp', () => {
    const m = norm(
      waMessage({
        remoteJid: '4915123456789@s.whatsapp.net',
        text: 'Hallo',
        id: 'M1',
        pushName: 'Anna',
        timestamp: 1700000000,
      }),
    );
    expect(m).toEqual({
      id: 'M1',
      channelId: 'ch_x',
      chat: { kind: 'direct', id: '+4915123456789', name: 'Anna' },
      sender: { address: '+4915123456789', name: 'Anna' },
      text: 'Hallo',
      timestamp: 1700000000000,
    });
  });

  it('LID chats use the phone number when WhatsApp gives it, else the raw LID', () => {
    expect(
      norm(waMessage({ remoteJid: '1234567@lid', remoteJidAlt: '15557654321@s.whatsapp.net', text: 'x' }))?.sender
        .address,
    ).toBe('+15557654321');
    const raw = norm(waMessage({ remoteJid: '1234567:4@lid', text: 'x' }));
    expect(raw?.chat.id).toBe('1234567@lid');
    expect(raw?.sender.address).toBe('1234567@lid');
  });

  it('the owner in "Message yourself" (by number or by LID) is the linked number; fromMe anywhere else is dropped', () => {
    const bySelfPn = norm(waMessage({ remoteJid: '15550001111@s.whatsapp.net', fromMe: true, text: 'note to self' }));
    expect(bySelfPn).toMatchObject({
      chat: { kind: 'direct', id: '+15550001111' },
      sender: { address: '+15550001111' },
      text: 'note to self',
    });
    const bySelfLid = norm(waMessage({ remoteJid: '99887766@lid', fromMe: true, text: 'via lid' }));
    expect(bySelfLid).toMatchObject({ chat: { id: '+15550001111' }, sender: { address: '+15550001111' } });
    expect(
      norm(waMessage({ remoteJid: '4915123456789@s.whatsapp.net', fromMe: true, text: 'owner writes to a friend' })),
    ).toBeNull();
    expect(
      norm(
        waMessage({ remoteJid: '120363000000000001@g.us', participant: self, fromMe: true, text: 'owner in a group' }),
      ),
    ).toBeNull();
  });

  it('messages Wharf sent (by id) never come back, not even in the self chat', () => {
    expect(
      norm(waMessage({ remoteJid: '15550001111@s.whatsapp.net', fromMe: true, id: 'OURS', text: 'echo' }), ['OURS']),
    ).toBeNull();
    expect(
      norm(waMessage({ remoteJid: '4915123456789@s.whatsapp.net', id: 'OURS', text: 'echo' }), ['OURS']),
    ).toBeNull();
    const sent = new RecentSends(2);
    sent.add('a');
    sent.add('b');
    sent.add('c');
    expect([sent.has('a'), sent.has('b'), sent.has('c')]).toEqual([false, true, true]);
  });

  it('groups: kind group, the group jid as chat id, the participant (number preferred) as sender', () => {
    const m = norm(
      waMessage({
        remoteJid: '120363000000000001@g.us',
        participant: '555123@lid',
        participantAlt: '4915123456789@s.whatsapp.net',
        text: 'hi all',
        pushName: 'Anna',
      }),
    );
    expect(m).toMatchObject({
      chat: { kind: 'group', id: '120363000000000001@g.us' },
      sender: { address: '+4915123456789', name: 'Anna' },
      text: 'hi all',
    });
    const named = normalizeWaMessage(
      'ch_x',
      waMessage({ remoteJid: '120363000000000001@g.us', participant: '4915123456789@s.whatsapp.net', text: 'x' }),
      {
        ...ctx(),
        groupNames: new Map([['120363000000000001@g.us', 'Family']]),
      },
    );
    expect(named?.chat).toEqual({ kind: 'group', id: '120363000000000001@g.us', name: 'Family' });
  });

  it('text from captions, extended text (with the quoted id), wrappers and buttons; media kinds', () => {
    const from = '4915123456789@s.whatsapp.net';
    expect(
      norm(
        waMessage({
          remoteJid: from,
          message: { extendedTextMessage: { text: 'quoted', contextInfo: { stanzaId: 'Q1' } } },
        }),
      ),
    ).toMatchObject({ text: 'quoted', replyTo: 'Q1' });
    expect(
      norm(waMessage({ remoteJid: from, message: { imageMessage: { caption: 'look', mimetype: 'image/jpeg' } } })),
    ).toMatchObject({
      text: 'look',
      media: { kind: 'image', mimeType: 'image/jpeg', caption: 'look' },
    });
    expect(
      norm(
        waMessage({
          remoteJid: from,
          message: { documentMessage: { mimetype: 'application/pdf', fileName: 'a.pdf' } },
        }),
      ),
    ).toMatchObject({ text: '', media: { kind: 'document' } });
    expect(norm(waMessage({ remoteJid: from, message: { videoMessage: { caption: 'clip' } } }))?.media?.kind).toBe(
      'video',
    );
    expect(
      norm(waMessage({ remoteJid: from, message: { ephemeralMessage: { message: { conversation: 'disappearing' } } } }))
        ?.text,
    ).toBe('disappearing');
    expect(
      norm(
        waMessage({
          remoteJid: from,
          message: { buttonsResponseMessage: { selectedDisplayText: 'Yes', selectedButtonId: 'y' } },
        }),
      )?.text,
    ).toBe('Yes');
    expect(
      norm(
        waMessage({
          remoteJid: from,
          message: { locationMessage: { degreesLatitude: 1.5, degreesLongitude: 2.5, name: 'Home' } },
        }),
      )?.text,
    ).toBe('1.5,2.5 (Home)');
  });

  it('drops protocol messages, reactions, stubs, empty texts, status broadcasts and newsletters', () => {
    const from = '4915123456789@s.whatsapp.net';
    expect(
      norm(
        waMessage({
          remoteJid: from,
          message: { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE } },
        }),
      ),
    ).toBeNull();
    expect(
      norm(waMessage({ remoteJid: from, message: { reactionMessage: { text: '👍', key: { id: 'X' } } } })),
    ).toBeNull();
    expect(norm(waMessage({ remoteJid: from, text: '   ' }))).toBeNull();
    expect(
      norm({
        ...waMessage({ remoteJid: '120363000000000001@g.us', participant: from }),
        message: undefined,
        messageStubType: 27,
      }),
    ).toBeNull();
    expect(norm(waMessage({ remoteJid: 'status@broadcast', participant: from, text: 'story' }))).toBeNull();
    expect(norm(waMessage({ remoteJid: '120363999@newsletter', text: 'news' }))).toBeNull();
  });

  it('address helpers', () => {
    expect(jidToAddress('15551234567:3@s.whatsapp.net')).toBe('+15551234567');
    expect(jidToAddress('123:2@lid')).toBe('123@lid');
    expect(addressToJid('+15551234567')).toBe('15551234567@s.whatsapp.net');
    expect(addressToJid('120363000000000001@g.us')).toBe('120363000000000001@g.us');
    expect(() => addressToJid('not a number')).toThrow();
  });
});

describe('reconnect backoff', () => {
  it('grows exponentially from initialMs, is capped at maxMs, and is fully jittered', () => {
    const b = { initialMs: 1000, maxMs: 60_000 };
    expect([0, 1, 2, 3, 5, 6, 7, 50].map((n) => backoffDelay(n, b, () => 1))).toEqual([
      1000, 2000, 4000, 8000, 32_000, 60_000, 60_000, 60_000,
    ]);
    expect(backoffDelay(4, b, () => 0)).toBe(0);
    expect(backoffDelay(4, b, () => 0.5)).toBe(8000);
  });
});

// =========================================================================================================

describe('the session activity (real worker, fake WhatsApp)', () => {
  it('shows the QR (rotating, one setup signal), links on scan, records the number, clears the QR, saves the auth state', async () => {
    const channelId = `ch_${uid()}`;
    const fake = fakeFor(channelId);
    const h = await startHarness(channelId);
    const s0 = await fake.waitForSocket(0);
    expect(s0.config.printQRInTerminal).toBe(false);
    expect(s0.config.markOnlineOnConnect).toBe(false);
    expect(s0.config.syncFullHistory).toBe(false);
    expect(s0.config.browser).toEqual(['Wharf', 'Chrome', '1.0']);

    await waitFor(() => s0.qrs.length === 1, 'first QR');
    const first = await waitFor(
      async () => (await linkRow(channelId))?.qr === s0.qrs[0] && (await linkRow(channelId)),
      'QR in session_link',
    );
    expect(new Date(first.expires_at!).getTime() - Date.now()).toBeGreaterThan(50_000);
    const setup = await waitForUpdate(h, (u) => u.status === 'setup', 'setup signal');
    expect(setup.reason).toMatch(/^Scan the QR code/);

    const second = s0.emitQr();
    const rotated = await waitFor(
      async () => (await linkRow(channelId))?.qr === second && (await linkRow(channelId)),
      'rotated QR',
    );
    expect(new Date(rotated.expires_at!).getTime() - Date.now()).toBeLessThanOrEqual(20_000);
    await sleep(300);
    expect((await updatesOf(h)).filter((u) => u.status === 'setup')).toHaveLength(1);

    s0.scan('15550001111');
    const connected = await waitForUpdate(h, (u) => u.status === 'connected', 'connected');
    expect(connected).toMatchObject({
      status: 'connected',
      selfAddress: '+15550001111',
      sessionQueue: proc.sessionQueue,
    });
    await waitFor(async () => (await linkRow(channelId)) === null, 'session_link cleared');
    expect(proc.acts.sessionRegistry.get(channelId)?.selfAddress).toBe('+15550001111');
    const saved = await waitFor(async () => {
      const a = await createStoreAuthState({ db, secretKey, channelId });
      return a.isLinked() && a;
    }, 'linked creds in the store');
    expect(saved.state.creds.me?.id).toBe('15550001111:7@s.whatsapp.net');
  });

  it('inbound text → normalised message in the chat workflow → echo reply formatted for WhatsApp, sent on the session queue; no loops', async () => {
    const { channelId, h, socket } = await connectedChannel('15550002222');
    const friend = '4915123456789@s.whatsapp.net';
    trackChat(channelId, '+4915123456789');
    trackChat(channelId, '+15550002222');
    socket.receive([
      waMessage({ remoteJid: friend, id: 'IN1', text: 'Hello **world**, see `code`', pushName: 'Anna' }),
    ]);
    const got = await waitFor(async () => (await received(channelId, '+4915123456789'))[0], 'inbound in chat workflow');
    expect(got).toMatchObject({
      id: 'IN1',
      channelId,
      chat: { kind: 'direct', id: '+4915123456789', name: 'Anna' },
      sender: { address: '+4915123456789' },
      text: 'Hello **world**, see `code`',
    });
    const reply = await waitFor(() => socket.sent[0], 'echo reply sent');
    expect(reply.jid).toBe(friend);
    expect(reply.content.text).toBe('Hello *world*, see `code`');
    expect(proc.acts.sessionRegistry.get(channelId)?.sentIds.has(reply.id)).toBe(true);

    // The owner writes to themselves: delivered (from the linked number) and answered in the self chat.
    socket.receive([waMessage({ remoteJid: '15550002222@s.whatsapp.net', fromMe: true, id: 'SELF1', text: '_note_' })]);
    const selfMsg = await waitFor(async () => (await received(channelId, '+15550002222'))[0], 'self-chat message');
    expect(selfMsg.sender.address).toBe('+15550002222');
    const selfReply = await waitFor(() => socket.sent[1], 'self-chat reply');
    expect(selfReply).toMatchObject({ jid: '15550002222@s.whatsapp.net', content: { text: '_note_' } });

    // Our own reply coming back as a fresh message in the self chat and the owner's messages to others: none
    // reaches a chat workflow, so nothing answers them. (History sync is `messaging-history.set`, which the
    // session does not read; `append` upserts are messages kept while offline — see personal-simulator.test.ts.)
    socket.receive([
      waMessage({ remoteJid: '15550002222@s.whatsapp.net', fromMe: true, id: selfReply.id, text: '_note_' }),
    ]);
    socket.receive([waMessage({ remoteJid: friend, fromMe: true, id: 'OWNER-OUT', text: 'owner to friend' })]);
    // And a later real message proves the pipeline kept flowing after those were dropped.
    socket.receive([waMessage({ remoteJid: friend, id: 'IN2', text: 'again' })]);
    await waitFor(async () => (await received(channelId, '+4915123456789')).length === 2, 'second inbound');
    await waitFor(() => socket.sent.length === 3, 'second echo');
    await sleep(500);
    expect((await received(channelId, '+4915123456789')).map((m) => m.id)).toEqual(['IN1', 'IN2']);
    expect((await received(channelId, '+15550002222')).map((m) => m.id)).toEqual(['SELF1']);
    expect(socket.sent).toHaveLength(3);
    expect((await updatesOf(h)).filter((u) => u.status !== 'connected' && u.status !== 'setup')).toEqual([]);
  });

  it('group messages arrive as chat.kind "group" (the policy decides; here the stand-in just records them)', async () => {
    const { channelId, socket } = await connectedChannel('15550003333');
    const group = '120363000000000042@g.us';
    trackChat(channelId, group);
    socket.ev.emit('groups.upsert', [{ id: group, subject: 'Family', owner: undefined, participants: [] }]);
    socket.receive([
      waMessage({
        remoteJid: group,
        participant: '4915123456789@s.whatsapp.net',
        id: 'G1',
        text: 'hi group',
        pushName: 'Anna',
      }),
    ]);
    const m = await waitFor(async () => (await received(channelId, group))[0], 'group message');
    expect(m).toMatchObject({
      chat: { kind: 'group', id: group, name: 'Family' },
      sender: { address: '+4915123456789', name: 'Anna' },
      text: 'hi group',
    });
    const reply = await waitFor(() => socket.sent[0], 'reply to the group');
    expect(reply.jid).toBe(group);
  });

  it('operator disconnect / activity restart: the socket closes without logging out; the next run reconnects from the store without a QR', async () => {
    const { channelId, fake, h, socket } = await connectedChannel('15550004444');
    const before = (await updatesOf(h)).length;
    await h.signal(restartSession, {});
    await waitFor(() => socket.ended, 'first socket closed');
    expect(socket.endError).toBeUndefined(); // closed, not logged out
    const s1 = await fake.waitForSocket(1);
    await waitForUpdate(h, (u) => u.status === 'connected', 'reconnected', before);
    expect(s1.qrs).toEqual([]);
    expect(s1.config.auth.creds.me?.id).toBe('15550004444:7@s.whatsapp.net');
    expect((await updatesOf(h)).slice(before).map((u) => u.status)).toEqual(['connected']);
    expect((await h.query(sessionRunsQuery))[0]).toEqual({ error: 'cancelled' });
    expect(await authKeys(channelId)).toContain('creds');
  });

  it('restartRequired (515, as after the first scan) reconnects at once without showing disconnected', async () => {
    const channelId = `ch_${uid()}`;
    const fake = fakeFor(channelId);
    const h = await startHarness(channelId);
    const s0 = await fake.waitForSocket(0);
    await waitFor(() => s0.qrs.length, 'QR');
    s0.scan('15550005555', { restart: true });
    const s1 = await fake.waitForSocket(1);
    expect(s1.config.auth.creds.me?.id).toBe('15550005555:7@s.whatsapp.net');
    await waitForUpdate(h, (u) => u.status === 'connected', 'connected after restart');
    expect((await updatesOf(h)).map((u) => u.status)).toEqual(['setup', 'connected']);
  });

  it.each([
    [408, 'connection lost', /connection lost or timed out/],
    [428, 'connection closed', /connection closed/],
    [503, 'service unavailable', /WhatsApp service unavailable/],
    [411, 'other errors', /status 411/],
  ])(
    'a transient close (%i, %s) shows disconnected with the reason and reconnects with backoff',
    async (code, _label, reason) => {
      const { h, fake, socket } = await connectedChannel(`1555001${code}`);
      const before = (await updatesOf(h)).length;
      socket.close(code);
      const down = await waitForUpdate(h, (u) => u.status === 'disconnected', 'disconnected', before);
      expect(down.reason).toMatch(reason);
      expect(down.reason).toMatch(/reconnecting in 0\.1s/);
      expect(down.final).toBeUndefined();
      await fake.waitForSocket(1);
      await waitForUpdate(h, (u) => u.status === 'connected', 'reconnected', before);
    },
  );

  it('loggedOut (revoked from the phone): disconnected with that reason, final, auth state cleared, no reconnect', async () => {
    const { channelId, h, fake, socket } = await connectedChannel('15550006666');
    socket.close(401, 'Connection Failure');
    const u = await waitForUpdate(h, (x) => x.status === 'disconnected', 'disconnected');
    expect(u).toMatchObject({ final: true, reason: expect.stringMatching(/revoked/) });
    await waitFor(async () => (await h.query(sessionRunsQuery))[0], 'runSession returned');
    expect((await h.query(sessionRunsQuery))[0].result?.ended).toBe('logged_out');
    expect((await authKeys(channelId)).filter((k) => k !== OWNER_KEY)).toEqual([]);
    await sleep(600);
    expect(fake.sockets).toHaveLength(1);
    expect(proc.acts.sessionRegistry.has(channelId)).toBe(false);
  });

  it('badSession (500 from WhatsApp): auth state cleared, setup "scan a new QR", a fresh QR at once', async () => {
    const { channelId, h, fake, socket } = await connectedChannel('15550007777');
    const before = (await updatesOf(h)).length;
    socket.close(500, 'Stream Errored (bad-mac)', { tag: 'bad-mac', attrs: {} });
    const u = await waitForUpdate(h, (x) => x.status === 'setup', 'setup', before);
    expect(u.reason).toMatch(/Bad session.*scan a new QR/);
    const s1 = await fake.waitForSocket(1);
    expect(s1.config.auth.creds.me).toBeUndefined();
    await waitFor(async () => (await linkRow(channelId))?.qr === s1.qrs[0], 'new QR pending');
  });

  it('connectionReplaced (440): disconnected, final, "another client took over"; auth state kept', async () => {
    const { channelId, h, fake, socket } = await connectedChannel('15550008888');
    socket.close(440, 'Stream Errored (conflict)');
    const u = await waitForUpdate(h, (x) => x.status === 'disconnected', 'disconnected');
    expect(u).toMatchObject({ final: true, reason: expect.stringMatching(/another client took over/i) });
    await waitFor(async () => (await h.query(sessionRunsQuery))[0]?.result?.ended === 'replaced', 'returned replaced');
    expect(await authKeys(channelId)).toContain('creds');
    expect(fake.sockets).toHaveLength(1);
  });

  it('forbidden (403): failed, final', async () => {
    const { h, socket } = await connectedChannel('15550009999');
    socket.close(403);
    const u = await waitForUpdate(h, (x) => x.status === 'failed', 'failed');
    expect(u).toMatchObject({ final: true, reason: expect.stringMatching(/403/) });
  });

  it('WhatsApp unreachable (DNS, as on these machines): a clear reason, capped backoff, the activity stays up; recovers when reachable', async () => {
    const channelId = `ch_${uid()}`;
    const fake = fakeFor(channelId);
    fake.onConnect = (s) => s.unreachable();
    const h = await startHarness(channelId);
    await fake.waitForSocket(6);
    const reasons = (await updatesOf(h)).map((u) => u.reason);
    expect(reasons[0]).toBe('WhatsApp unreachable: getaddrinfo ENOTFOUND web.whatsapp.com; retrying in 0.1s.');
    // (An unchanged reason is not signalled again: the channel's history does not fill up while it waits.)
    expect(reasons.map((r) => /retrying in ([\d.]+)s/.exec(r)?.[1])).toEqual(['0.1', '0.2', '0.4']);
    const gaps = fake.sockets.slice(1, 7).map((s, i) => s.createdAt - fake.sockets[i].createdAt);
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    for (const g of gaps.slice(2)) {
      expect(g).toBeGreaterThanOrEqual(395);
      expect(g).toBeLessThan(1000);
    }
    expect((await updatesOf(h)).every((u) => u.status === 'setup' && !u.final)).toBe(true);
    expect(await h.query(sessionRunsQuery)).toEqual([]);
    expect(await linkRow(channelId)).toBeNull();
    fake.onConnect = null;
    const s = await waitFor(() => fake.sockets.find((x) => x.qrs.length > 0), 'a QR once reachable');
    await waitFor(async () => (await linkRow(channelId))?.qr === s.qrs[0], 'QR pending');
  });

  it('when every QR of a connection expired unscanned, a new connection shows fresh QRs (status stays setup)', async () => {
    const channelId = `ch_${uid()}`;
    const fake = fakeFor(channelId);
    const h = await startHarness(channelId);
    const s0 = await fake.waitForSocket(0);
    await waitFor(() => s0.qrs.length, 'QR');
    s0.close(408, 'QR refs attempts ended');
    const s1 = await fake.waitForSocket(1);
    await waitFor(async () => s1.qrs.length > 0 && (await linkRow(channelId))?.qr === s1.qrs[0], 'fresh QR');
    expect((await updatesOf(h)).map((u) => u.status)).toEqual(['setup']);
  });

  it('sendText: retryable WharfSessionUnavailable without an open socket here; refuses chats that never wrote first', async () => {
    const err = await proc.acts
      .sendText({ channelId: 'ch_nowhere', to: '+15551230000', text: 'x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: SESSION_UNAVAILABLE, nonRetryable: false });

    const { channelId, socket } = await connectedChannel('15550001212');
    const stray = await proc.acts
      .sendText({ channelId, to: '+4915100000000', text: 'unsolicited' })
      .catch((e: unknown) => e);
    expect(stray).toMatchObject({ type: 'WharfSendRejected', nonRetryable: true });
    expect(socket.sent).toEqual([]);
    // A chat the message log knows (it wrote before a restart) may be answered.
    await store.messages.recordInbound(channelId, 'c', [
      { id: 'EARLIER', chatId: '+4915100000001', address: '+4915100000001', text: 'hi' },
    ]);
    const ok = await proc.acts.sendText({ channelId, to: '+4915100000001', text: 'hello again' });
    expect(socket.sent[0]).toMatchObject({ jid: '4915100000001@s.whatsapp.net', id: ok.messageId });
  });
});

// =========================================================================================================

describe('link API: QR (JSON and PNG), refresh, phone-number pairing code', () => {
  let server: Server;
  let base: string;
  const channels = new Map<string, Provider>();

  const project = async (id: string, provider: Provider) => {
    const now = new Date().toISOString();
    const state: ChannelState = {
      ...newChannelState({ id, provider, space: `space-${id}`, agent: 'echo', now }),
      version: 1,
    };
    await store.channels.project(state);
    channels.set(id, provider);
  };
  /** A personal-account channel whose session is running and showing its first QR. */
  const showingQr = async (channelId: string) => {
    await project(channelId, 'whatsapp_user');
    const fake = fakeFor(channelId);
    await startHarness(channelId);
    const s0 = await fake.waitForSocket(0);
    await waitFor(async () => (await linkRow(channelId))?.qr === s0.qrs[0], 'QR');
    return { fake, s0 };
  };

  beforeAll(async () => {
    // The real gateway reads the store and sends `relink` to the channel workflow; this stub reads the same
    // store and turns `relink` into the harness's restart (what the real channel workflow does on relink).
    const gateway = {
      async get(id: string) {
        const ch = await store.channels.get(id);
        if (!ch) throw notFound(`Channel "${id}"`);
        return ch;
      },
      handle(id: string) {
        return {
          async executeUpdate(_def: unknown, opts: { args: [{ phoneNumber?: string }] }) {
            await store.authState.clear(id);
            await db.query('delete from session_link where channel_id = $1', [id]);
            await client.workflow
              .getHandle(`channel-${id}`)
              .signal(restartSession, { phoneNumber: opts.args[0].phoneNumber });
            return store.channels.get(id);
          },
        };
      },
    } as unknown as PersonalGateway;
    const app = express();
    app.use(express.json());
    app.use('/api/channels', personalRouter({ store, gateway, linkCodeTimeoutMs: 10_000 }));
    app.use(errorHandler(log));
    server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
  });

  it('GET /:id/qr → {qr, dataUrl, expiresAt}; ?format=png → the PNG; follows rotation; 404 once linked', async () => {
    const channelId = `ch_${uid()}`;
    const { s0 } = await showingQr(channelId);

    const r = await fetch(`${base}/api/channels/${channelId}/qr`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const body = (await r.json()) as { qr: string; dataUrl: string; expiresAt: string };
    expect(body.qr).toBe(s0.qrs[0]);
    expect(body.dataUrl).toBe(await QRCode.toDataURL(s0.qrs[0], { errorCorrectionLevel: 'M', margin: 2, width: 320 }));
    expect(body.dataUrl).toMatch(/^data:image\/png;base64,/);
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());

    const png = await fetch(`${base}/api/channels/${channelId}/qr?format=png`);
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await png.arrayBuffer());
    expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(
      bytes.equals(await QRCode.toBuffer(s0.qrs[0], { type: 'png', errorCorrectionLevel: 'M', margin: 2, width: 320 })),
    ).toBe(true);

    const next = s0.emitQr();
    await waitFor(
      async () => ((await (await fetch(`${base}/api/channels/${channelId}/qr`)).json()) as { qr: string }).qr === next,
      'rotated QR through the API',
    );

    s0.scan('15550101010');
    await waitFor(async () => (await fetch(`${base}/api/channels/${channelId}/qr`)).status === 404, '404 once linked');
    const gone = (await (await fetch(`${base}/api/channels/${channelId}/qr`)).json()) as {
      error: { code: string; message: string };
    };
    expect(gone.error.code).toBe('not_found');
  });

  it('POST /:id/qr/refresh restarts the attempt: 202, then a new QR', async () => {
    const channelId = `ch_${uid()}`;
    const { fake, s0 } = await showingQr(channelId);
    const r = await fetch(`${base}/api/channels/${channelId}/qr/refresh`, { method: 'POST' });
    expect(r.status).toBe(202);
    expect(await r.json()).toEqual({ ok: true });
    const s1 = await fake.waitForSocket(1);
    await waitFor(
      async () =>
        s1.qrs.length > 0 &&
        ((await (await fetch(`${base}/api/channels/${channelId}/qr`)).json()) as { qr?: string }).qr === s1.qrs[0],
      'new QR',
    );
    expect(s1.qrs[0]).not.toBe(s0.qrs[0]);
  });

  it('POST /:id/link-code {phoneNumber} → the pairing code; entering it on the phone links; the QR route says a code is pending', async () => {
    const channelId = `ch_${uid()}`;
    await project(channelId, 'whatsapp_user');
    const fake = fakeFor(channelId);
    fake.pairingCode = 'WXYZ5678';
    const h = await startHarness(channelId);
    await fake.waitForSocket(0);

    const bad = await fetch(`${base}/api/channels/${channelId}/link-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phoneNumber: '12345' }),
    });
    expect(bad.status).toBe(400);

    const r = await fetch(`${base}/api/channels/${channelId}/link-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phoneNumber: '+1 555 020 2020' }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { code: string; expiresAt: string };
    expect(body.code).toBe('WXYZ-5678');
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());
    const s = fake.last();
    expect(s.pairingRequests).toEqual(['15550202020']);
    const qr = (await (await fetch(`${base}/api/channels/${channelId}/qr`)).json()) as { error: { message: string } };
    expect(qr.error.message).toMatch(/pairing code is pending/);
    expect(await (await fetch(`${base}/api/channels/${channelId}/link-code`)).json()).toEqual(body);
    await waitForUpdate(h, (u) => u.status === 'setup' && /pairing code/.test(u.reason), 'pairing-code setup signal');

    s.scan('15550202020', { viaCode: true });
    const up = await waitForUpdate(h, (u) => u.status === 'connected', 'connected');
    expect(up.selfAddress).toBe('+15550202020');
  });

  it('a pairing code request WhatsApp refuses falls back to the QR; link-code then answers 503 with the reason', async () => {
    const channelId = `ch_${uid()}`;
    await project(channelId, 'whatsapp_user');
    const fake = fakeFor(channelId);
    fake.pairingError = new Error('rate-overlimit');
    await startHarness(channelId);
    await fake.waitForSocket(0);
    const started = Date.now();
    const r = await fetch(`${base}/api/channels/${channelId}/link-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phoneNumber: '+15550303030' }),
    });
    expect(r.status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/did not issue a pairing code/);
    const s = fake.last();
    await waitFor(async () => (await linkRow(channelId))?.qr === s.qrs[0], 'the QR instead');
  });

  it('404 for unknown channels and Cloud API channels', async () => {
    expect((await fetch(`${base}/api/channels/ch_unknown/qr`)).status).toBe(404);
    const cloud = `ch_${uid()}`;
    await project(cloud, 'whatsapp_cloud');
    const r = await fetch(`${base}/api/channels/${cloud}/qr`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/Cloud API/);
  });
});

// =========================================================================================================

describe('real Baileys, WhatsApp out of reach', () => {
  it('the real makeWASocket fails DNS: a clear "WhatsApp unreachable" reason, retries back off, the activity keeps running', async () => {
    const queue = `wharf-personal-real-${uid()}`;
    // `.invalid` never resolves, so this behaves the same with or without internet access.
    const real = await startProcess('real', queue, {
      realBaileys: { waWebSocketUrl: 'wss://wharf-test.invalid/ws/chat' },
    });
    try {
      const channelId = `ch_${uid()}`;
      const h = await startHarness(channelId, { queue });
      const first = await waitForUpdate(h, () => true, 'first session update');
      expect(first.status).toBe('setup');
      expect(first.reason).toMatch(
        /^WhatsApp unreachable: getaddrinfo (ENOTFOUND|EAI_AGAIN) wharf-test\.invalid; retrying in 0\.1s\.$/,
      );
      await waitForUpdate(h, (u) => /retrying in 0\.4s/.test(u.reason), 'backoff grew to the cap');
      expect(await h.query(sessionRunsQuery)).toEqual([]);
      expect(await linkRow(channelId)).toBeNull();
    } finally {
      await real.stop();
    }
  });
});

// =========================================================================================================

describe('worker death mid-session', () => {
  it.each([
    ['its worker wakes up: the next heartbeat learns the attempt is gone', 'wakes'],
    ['WhatsApp kicks its older connection (440) while its worker still hangs', 'kicked'],
  ] as const)(
    'Temporal restarts the session on another worker from the stored auth state (no QR); sends follow it; the stale one stops quietly when %s',
    async (_label, how) => {
      const queue = `wharf-personal-death-${uid()}`;
      let aDead = false;
      const a = await startProcess('a', queue, { dead: () => aDead });
      let b: TestProcess | undefined;
      try {
        const channelId = `ch_${uid()}`;
        const fake = fakeFor(channelId);
        const h = await startHarness(channelId, { queue, heartbeatTimeoutMs: 2000 });
        const s0 = await fake.waitForSocket(0);
        await waitFor(() => s0.qrs.length, 'QR');
        s0.scan('15550404040');
        await waitForUpdate(h, (u) => u.status === 'connected' && u.sessionQueue === a.sessionQueue, 'connected on A');
        const before = (await updatesOf(h)).length;

        // A stops heartbeating (a hung or dead process); B comes up on the same queue.
        aDead = true;
        b = await startProcess('b', queue);
        const up = await waitForUpdate(
          h,
          (u) => u.status === 'connected' && u.sessionQueue === b!.sessionQueue,
          'connected on B',
          before,
          // Heartbeat timeout, retry backoff and a second worker's start: slow on a loaded 2-core machine.
          45_000,
        );
        expect(up.selfAddress).toBe('+15550404040');
        const sB = fake.sockets.find((s) => s.index > 0 && s.isOpen) as FakeSocket;
        expect(sB.qrs).toEqual([]);
        expect(b.acts.sessionRegistry.get(channelId)?.socket).toBe(sB);
        const afterB = (await updatesOf(h)).length;

        if (how === 'wakes') {
          // A wakes up: its next heartbeat learns the attempt is gone; it closes its socket.
          aDead = false;
          await waitFor(() => s0.ended, 'stale socket on A closed', 15_000);
        } else {
          // WhatsApp tells the older connection another client took over: A must not report that (B is live).
          s0.close(440, 'Stream Errored (conflict)');
        }
        await waitFor(() => !a.acts.sessionRegistry.has(channelId), 'A registry empty');
        await sleep(500);
        expect((await updatesOf(h)).slice(afterB)).toEqual([]);
        expect(b.acts.sessionRegistry.get(channelId)?.socket).toBe(sB);

        // Messages flow through B, and the reply goes out on B's socket (B's own queue).
        trackChat(channelId, '+4915177777777');
        sB.receive([waMessage({ remoteJid: '4915177777777@s.whatsapp.net', id: 'AFTER', text: '**still** here' })]);
        const reply = await waitFor(() => sB.sent[0], 'reply through B');
        expect(reply.content.text).toBe('*still* here');
        expect(s0.sent).toEqual([]);
        const fresh = await createStoreAuthState({ db, secretKey, channelId });
        expect(fresh.isLinked()).toBe(true);
      } finally {
        aDead = false;
        await b?.stop();
        await a.stop();
      }
    },
    90_000,
  );
});
