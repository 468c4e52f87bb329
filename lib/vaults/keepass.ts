/**
 * KeePass: a `.kdbx` file on this machine (KDBX 4 with Argon2d/Argon2id or AES-KDF, AES or ChaCha20;
 * KDBX 3.1), read with kdbxweb and hash-wasm's Argon2. Items are entries (`item` = the entry's UUID in
 * hex, as KeePassXC shows it; `name` = group path + title), fields `Password`, `UserName`, `URL`, `Notes`
 * and custom strings. Read-only: edits are made in KeePass(XC), and the file is opened again when it
 * changes on disk (size, mtime or inode), so they show up without a restart.
 */
import { readFile, stat } from 'node:fs/promises';
import type * as Kdbxweb from 'kdbxweb';
import type { KeepassSettings } from './settings.js';
import { VaultError, type LocalSecretReader, type VaultConnection, type VaultItemSummary } from './types.js';

let library: Promise<typeof Kdbxweb> | null = null;
/**
 * kdbxweb with hash-wasm's Argon2, loaded with the first KeePass database opened: every process would
 * otherwise hold both (and kdbxweb's XML parser) from its start, ≈ 2.5 MB of heap, KeePass or not.
 */
export const kdbxweb = (): Promise<typeof Kdbxweb> =>
  (library ??= (async () => {
    const [lib, { argon2d, argon2id }] = await Promise.all([import('kdbxweb'), import('hash-wasm')]);
    // kdbxweb has no Argon2 of its own; hash-wasm's is WebAssembly, so it runs on every Node without a build.
    lib.CryptoEngine.setArgon2Impl(async (password, salt, memory, iterations, length, parallelism, type, version) => {
      if (version !== 0x13) throw new Error('only Argon2 version 1.3 is supported');
      const run = type === lib.CryptoEngine.Argon2TypeArgon2id ? argon2id : argon2d;
      const out = await run({
        password: new Uint8Array(password),
        salt: new Uint8Array(salt),
        memorySize: memory,
        iterations,
        hashLength: length,
        parallelism,
        outputType: 'binary',
      });
      return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer;
    });
    return lib;
  })());

/** How often the file's size and mtime are looked at, at most (ms): cheap, and edits show up within it. */
const STAT_EVERY_MS = 1000;
/** An opened database not used for this long is dropped from memory (ms). */
const IDLE_CLOSE_MS = 5 * 60 * 1000;

const STANDARD_FIELDS = ['UserName', 'Password', 'URL', 'Notes'];

const hexUuid = (u: Kdbxweb.KdbxUuid): string => Buffer.from(u.toBytes() ?? new Uint8Array(16)).toString('hex');

interface Opened {
  db: Kdbxweb.Kdbx;
  version: string;
  checkedAt: number;
  usedAt: number;
}

/** Opens a connection to a KeePass database file. */
export function createKeepassVault(
  id: string,
  settings: KeepassSettings,
  readLocal: LocalSecretReader,
): VaultConnection {
  let opened: Opened | null = null;
  let opening: Promise<Opened> | null = null;

  const fileVersion = async (): Promise<string> => {
    try {
      const s = await stat(settings.path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (err) {
      throw new VaultError(
        id,
        'unreachable',
        `cannot read the database file: ${(err as { code?: string }).code ?? 'error'}`,
      );
    }
  };

  const open = async (version: string): Promise<Opened> => {
    let data: Buffer;
    try {
      data = await readFile(settings.path);
    } catch (err) {
      throw new VaultError(
        id,
        'unreachable',
        `cannot read the database file: ${(err as { code?: string }).code ?? 'error'}`,
      );
    }
    let keyFile: Uint8Array | undefined;
    if (settings.keyFile) {
      try {
        keyFile = new Uint8Array(await readFile(settings.keyFile));
      } catch (err) {
        throw new VaultError(
          id,
          'bad_config',
          `cannot read the key file: ${(err as { code?: string }).code ?? 'error'}`,
        );
      }
    }
    const kdbx = await kdbxweb();
    const password = settings.password
      ? kdbx.ProtectedValue.fromString(await readLocal('password', settings.password))
      : null;
    const credentials = new kdbx.Credentials(password, keyFile);
    try {
      const db = await kdbx.Kdbx.load(new Uint8Array(data).buffer, credentials);
      return { db, version, checkedAt: Date.now(), usedAt: Date.now() };
    } catch (err) {
      const code = err instanceof kdbx.KdbxError ? err.code : '';
      if (code === kdbx.Consts.ErrorCodes.InvalidKey) {
        throw new VaultError(
          id,
          'auth_failed',
          settings.keyFile
            ? 'the master password or the key file is wrong'
            : 'the master password is wrong (or the database needs a key file)',
        );
      }
      if (
        code === kdbx.Consts.ErrorCodes.BadSignature ||
        code === kdbx.Consts.ErrorCodes.InvalidVersion ||
        code === kdbx.Consts.ErrorCodes.FileCorrupt
      ) {
        throw new VaultError(id, 'bad_config', `the file is not a KDBX 3.1/4 database Wharf can read (${code})`);
      }
      if (code === kdbx.Consts.ErrorCodes.Unsupported)
        throw new VaultError(id, 'bad_config', `the database uses a format or cipher Wharf does not support (${code})`);
      // A file caught half-written by KeePassXC reads as corrupt: the next look (after its write) succeeds.
      throw new VaultError(id, 'bad_response', `the database could not be opened (${code || 'read error'})`);
    }
  };

  const database = async (): Promise<Kdbxweb.Kdbx> => {
    const now = Date.now();
    if (opened && now - opened.usedAt > IDLE_CLOSE_MS) opened = null;
    if (opened && now - opened.checkedAt < STAT_EVERY_MS) {
      opened.usedAt = now;
      return opened.db;
    }
    const version = await fileVersion();
    if (opened && opened.version === version) {
      opened.checkedAt = opened.usedAt = now;
      return opened.db;
    }
    opening ??= open(version).finally(() => (opening = null));
    opened = await opening;
    return opened.db;
  };

  // Entries outside the recycle bin, with their group path (the root group's own name left out).
  const entries = (db: Kdbxweb.Kdbx): Array<{ entry: Kdbxweb.KdbxEntry; path: string[] }> => {
    const out: Array<{ entry: Kdbxweb.KdbxEntry; path: string[] }> = [];
    const bin = db.meta.recycleBinUuid?.id;
    const walk = (g: Kdbxweb.KdbxGroup, path: string[]): void => {
      if (bin && g.uuid.id === bin) return;
      for (const e of g.entries) out.push({ entry: e, path });
      for (const sub of g.groups) walk(sub, [...path, sub.name ?? '']);
    };
    walk(db.getDefaultGroup(), []);
    return out;
  };
  const fieldsOf = (e: Kdbxweb.KdbxEntry): string[] =>
    [...e.fields.keys()].filter((k) => k !== 'Title' && (STANDARD_FIELDS.includes(k) || e.fields.get(k) !== undefined));
  const find = (db: Kdbxweb.Kdbx, item: string): Kdbxweb.KdbxEntry | undefined => {
    const want = item.toLowerCase().replace(/[{}-]/g, ''); // KeePassXC shows {8-4-4-4-12}; both forms work
    return entries(db).find(({ entry }) => hexUuid(entry.uuid) === want || entry.uuid.id === item)?.entry;
  };

  return {
    id,
    kind: 'keepass',
    async check() {
      await database();
    },
    async listItems(): Promise<VaultItemSummary[]> {
      const db = await database();
      return entries(db).map(({ entry, path }) => ({
        item: hexUuid(entry.uuid),
        name: [...path, String(entry.fields.get('Title') ?? '')].join('/'),
        fields: fieldsOf(entry),
      }));
    },
    async resolve(item, field) {
      const entry = find(await database(), item);
      if (!entry) throw new VaultError(id, 'not_found', `no entry ${item}`);
      const v = entry.fields.get(field);
      if (v === undefined || field === 'Title')
        throw new VaultError(id, 'not_found', `entry ${item} has no field '${field}'`);
      return typeof v === 'string' ? v : v.getText();
    },
    close() {
      opened = null;
    },
  };
}
