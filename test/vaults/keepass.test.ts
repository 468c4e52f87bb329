/**
 * KeePass connections on databases created and edited by Debian's keepassxc-cli (a real peer, installed
 * here when missing): KDBX 3.1 (what keepassxc-cli's db-create makes), KDBX 4 with Argon2d/AES and with
 * Argon2id/ChaCha20 (made with kdbxweb, then edited by keepassxc-cli), key files, wrong credentials, and
 * edits showing up without a restart. Real Temporal, PGlite, HTTP, files.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vaultRegistry } from '../../lib/vaults/index.js';
import { startFakeGraph, type FakeGraph } from '../fakes/graph-server.js';
import { expectError, uid, vaultItem } from '../support/cloud.js';
import { startWharf, type TestWharf } from '../support/wharf.js';
import {
  addEntry,
  createDb31,
  createDb4,
  dbInfo,
  editPassword,
  ensureKeepassxcCli,
  entryUuid,
  kdbxVersion,
  kpcli,
  mkdir,
} from './keepassxc.js';
import { capturingLogger, cloudSecrets, expectNoSecrets, runEndToEnd } from './scenario.js';

const cli = ensureKeepassxcCli();
let w: TestWharf;
let graph: FakeGraph;
let dir: string;
const logs = capturingLogger();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-kdbx-'));
  graph = await startFakeGraph();
  w = await startWharf({ graphUrl: graph.url, log: logs.log });
});
afterAll(async () => {
  await w?.close({ purge: true });
  await graph?.close();
  rmSync(dir, { recursive: true, force: true });
});

const connect = async (settings: Record<string, unknown>, password?: string) => {
  const id = `kp-${uid()}`;
  const body = {
    id,
    kind: 'keepass',
    settings: {
      ...settings,
      ...(password !== undefined ? { password: await vaultItem(w, `kp-${uid()}`, password) } : {}),
    },
  };
  return { id, r: await w.api('POST', '/api/vaults', body) };
};

describe.skipIf(!cli)('a KeePass connection', () => {
  it('walks the whole path on a KDBX 4 (Argon2id, ChaCha20) file edited in keepassxc-cli — and leaks nothing', async () => {
    const s = cloudSecrets();
    const keys = { password: `SECRET-master-${uid()}` };
    const path = join(dir, `e2e-${uid()}.kdbx`);
    await createDb4(path, keys, 'argon2id', 'chacha20');
    mkdir(path, keys, 'Meta');
    const access = addEntry(path, keys, 'Meta/access token', s.accessToken);
    const verify = addEntry(path, keys, 'Meta/verify token', s.verifyToken);
    const app = addEntry(path, keys, 'Meta/app secret', s.appSecret);
    expect(dbInfo(path, keys)).toMatch(/Cipher: ChaCha20[\s\S]*KDF: Argon2id/);
    const id = `kp-${uid()}`;
    const ref = (item: string) => ({ vault: id, item, field: 'Password' });

    const seen = await runEndToEnd(
      w,
      graph,
      {
        connection: {
          id,
          kind: 'keepass',
          settings: { path, password: await vaultItem(w, `kp-${uid()}`, keys.password) },
        },
        refs: { access_token: ref(access), verify_token: ref(verify), app_secret: ref(app) },
        // Rotated in KeePassXC (its CLI), not through Wharf: the file is read again when it changes.
        rotatesBehindWharf: true,
        rotate: async (value) => editPassword(path, keys, 'Meta/access token', value),
        down: async () => renameSync(path, `${path}.away`),
        up: async () => renameSync(`${path}.away`, path),
        downReason: /unreachable \(cannot read the database file: ENOENT\)/,
      },
      s,
    );
    expect(kdbxVersion(readFileSync(path))).toBe('4.0');
    expectNoSecrets(
      [...seen, ...logs.lines],
      [s.accessToken, s.verifyToken, s.appSecret, s.rotatedToken, keys.password],
    );
  }, 180_000);

  it.each([
    {
      format: 'KDBX 3.1, AES-KDF, AES (keepassxc-cli db-create)',
      version: '3.1',
      info: /Cipher: AES 256-bit[\s\S]*KDF: AES/,
      make: (p: string, k: { password: string }) => createDb31(p, k),
    },
    {
      format: 'KDBX 4, Argon2d, AES',
      version: '4.0',
      info: /Cipher: AES 256-bit[\s\S]*KDF: Argon2d/,
      make: (p: string, k: { password: string }) =>
        createDb4(p, k, 'argon2d', 'aes', { entry: 'custom', key: 'api_secret', value: 'SECRET-custom' }),
    },
    {
      format: 'KDBX 4, Argon2id, ChaCha20',
      version: '4.0',
      info: /Cipher: ChaCha20[\s\S]*KDF: Argon2id/,
      make: (p: string, k: { password: string }) =>
        createDb4(p, k, 'argon2id', 'chacha20', { entry: 'custom', key: 'api_secret', value: 'SECRET-custom' }),
    },
  ])(
    'reads $format: entries by UUID, group path + title as name, standard fields and custom strings',
    async ({ version, info, make }) => {
      const keys = { password: `SECRET-master-${uid()}` };
      const path = join(dir, `fmt-${uid()}.kdbx`);
      await make(path, keys);
      mkdir(path, keys, 'Ops');
      const uuid = addEntry(path, keys, 'Ops/bot', 'SECRET-bot', 'botuser');
      expect(dbInfo(path, keys)).toMatch(info);
      expect(kdbxVersion(readFileSync(path))).toBe(version);

      const { id, r } = await connect({ path }, keys.password);
      expect(r.status, JSON.stringify(r.data)).toBe(201);
      expect(r.data).toMatchObject({ kind: 'keepass', writable: false });
      const items = await w.api('GET', `/api/vaults/${id}/items`);
      expect(items.data).toEqual(
        expect.arrayContaining([
          { item: uuid, name: 'Ops/bot', fields: expect.arrayContaining(['UserName', 'Password', 'URL', 'Notes']) },
        ]),
      );
      expect(JSON.stringify(items.data)).not.toContain('SECRET');
      const registry = vaultRegistry(w.store);
      expect(await registry.resolve({ vault: id, item: uuid, field: 'Password' })).toBe('SECRET-bot');
      expect(await registry.resolve({ vault: id, item: uuid, field: 'UserName' })).toBe('botuser');
      if (version === '4.0') {
        // A custom string written by kdbxweb, read by KeePassXC and by Wharf.
        expect(kpcli(['show', '-q', '-a', 'api_secret', path, 'custom'], `${keys.password}\n`).trim()).toBe(
          'SECRET-custom',
        );
        const custom = (items.data as Array<{ item: string; name: string; fields: string[] }>).find(
          (i) => i.name === 'custom',
        )!;
        expect(custom.fields).toContain('api_secret');
        expect(await registry.resolve({ vault: id, item: custom.item, field: 'api_secret' })).toBe('SECRET-custom');
      }
    },
    60_000,
  );

  it('opens a database with a key file, and refuses a wrong password or a wrong key file with a clear reason', async () => {
    const keyFile = join(dir, `key-${uid()}.bin`);
    writeFileSync(keyFile, randomBytes(64));
    const wrongKey = join(dir, `wrong-${uid()}.bin`);
    writeFileSync(wrongKey, randomBytes(64));
    const keys = { password: `SECRET-master-${uid()}`, keyFile };
    const path = join(dir, `key-${uid()}.kdbx`);
    createDb31(path, keys);
    const uuid = addEntry(path, keys, 'token', 'SECRET-keyed');

    const good = await connect({ path, keyFile }, keys.password);
    expect(good.r.status, JSON.stringify(good.r.data)).toBe(201);
    expect(await vaultRegistry(w.store).resolve({ vault: good.id, item: uuid, field: 'Password' })).toBe(
      'SECRET-keyed',
    );

    const wrongPassword = await connect({ path, keyFile }, 'SECRET-not-the-password');
    expectError(wrongPassword.r, 422, 'not_possible_now');
    expect(wrongPassword.r.data.error.message).toBe(
      `The connection was not saved: vault '${wrongPassword.id}' refused Wharf's credentials (the master password or the key file is wrong).`,
    );
    const wrongKeyFile = await connect({ path, keyFile: wrongKey }, keys.password);
    expectError(wrongKeyFile.r, 422, 'not_possible_now');
    expect(wrongKeyFile.r.data.error.message).toContain('the master password or the key file is wrong');
    const noKeyFile = await connect({ path }, keys.password);
    expect(noKeyFile.r.data.error.message).toContain('the master password is wrong (or the database needs a key file)');
    const missingKeyFile = await connect({ path, keyFile: join(dir, 'nope.bin') }, keys.password);
    expect(missingKeyFile.r.data.error.message).toContain('is misconfigured (cannot read the key file: ENOENT)');
    const missingDb = await connect({ path: join(dir, 'nope.kdbx') }, keys.password);
    expect(missingDb.r.data.error.message).toContain('unreachable (cannot read the database file: ENOENT)');
    const notKdbx = join(dir, `not-${uid()}.kdbx`);
    writeFileSync(notKdbx, 'hello');
    expect((await connect({ path: notKdbx }, keys.password)).r.data.error.message).toMatch(
      /is misconfigured \(the file is not a KDBX/,
    );
    for (const r of [wrongPassword.r, wrongKeyFile.r, noKeyFile.r])
      expect(JSON.stringify(r.data)).not.toContain('SECRET');
  }, 60_000);

  it('is read-only: new credentials, rotation and deletion are refused with what to do instead', async () => {
    const keys = { password: `SECRET-master-${uid()}` };
    const path = join(dir, `ro-${uid()}.kdbx`);
    createDb31(path, keys);
    const uuid = addEntry(path, keys, 'token', 'SECRET-ro');
    const { id } = await connect({ path }, keys.password);
    expectError(
      await w.api('POST', `/api/vaults/${id}/items`, { name: 'x', fields: { value: 'y' } }),
      422,
      'not_possible_now',
    );
    expectError(
      await w.api('PUT', `/api/vaults/${id}/items/${uuid}`, { fields: { Password: 'y' } }),
      422,
      'not_possible_now',
    );
    expectError(await w.api('DELETE', `/api/vaults/${id}/items/${uuid}`), 422, 'not_possible_now');
    expect(entryUuid(path, keys, 'token')).toBe(uuid);
  }, 60_000);
});
