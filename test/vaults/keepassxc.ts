/**
 * Debian's `keepassxc-cli` as a real peer for the KeePass tests: it creates databases (KDBX 3.1 with
 * AES-KDF is what `db-create` makes in 2.7), adds and edits entries, and reads back what Wharf reads.
 * KDBX 4 files with Argon2d/Argon2id and AES/ChaCha20 (which `db-create` cannot choose) are made with
 * kdbxweb and then edited by keepassxc-cli, which keeps their format.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as kdbxweb from 'kdbxweb';
import { kdbxweb as loadKdbxweb } from '../../lib/vaults/keepass.js';

/** Installs keepassxc (for keepassxc-cli) with apt-get when it is missing and we are root; false if unavailable. */
export function ensureKeepassxcCli(): boolean {
  const has = (): boolean => spawnSync('keepassxc-cli', ['--version'], { stdio: 'ignore' }).status === 0;
  if (has()) return true;
  if (process.getuid?.() !== 0) return false;
  const install = (): boolean =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'keepassxc'], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 300_000,
    }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 300_000 });
    install();
  }
  return has();
}

/** Runs keepassxc-cli with `stdin` (passwords, one a line); returns stdout. Throws with stderr on failure. */
export function kpcli(args: string[], stdin: string): string {
  // keepassxc-cli 2.7.4 now and then (about 1 save in 100 here, on KDBX 4 files) fails a save with
  // "Writing the database failed Cannot process 0 length data." and leaves the file as it was (it saves
  // through a temporary file): that one error is tried again, up to twice.
  for (let attempt = 0; ; attempt++) {
    try {
      return execFileSync('keepassxc-cli', args, {
        input: stdin,
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: 60_000,
      });
    } catch (err) {
      if (attempt >= 2 || !/Writing the database failed/.test(String((err as { stderr?: unknown }).stderr))) throw err;
    }
  }
}

/** Options of a database: its password and an optional key file. */
export interface DbKeys {
  password: string;
  keyFile?: string;
}
const keyArgs = (k: DbKeys): string[] => (k.keyFile ? ['-k', k.keyFile] : []);

/** Creates a KDBX 3.1 database (AES-KDF, AES) with keepassxc-cli. */
export function createDb31(path: string, k: DbKeys): void {
  kpcli(
    ['db-create', '-q', '-p', '-t', '100', ...(k.keyFile ? ['--set-key-file', k.keyFile] : []), path],
    `${k.password}\n${k.password}\n`,
  );
}

/** Creates a KDBX 4 database with kdbxweb: the chosen Argon2 variant and cipher, small Argon2 memory for speed. */
export async function createDb4(
  path: string,
  k: DbKeys,
  kdf: 'argon2d' | 'argon2id',
  cipher: 'aes' | 'chacha20',
  customString?: { entry: string; key: string; value: string },
): Promise<void> {
  await loadKdbxweb(); // installs kdbxweb's Argon2 implementation
  const keyFile = k.keyFile ? new Uint8Array(readFileSync(k.keyFile)) : undefined;
  const db = kdbxweb.Kdbx.create(
    new kdbxweb.Credentials(kdbxweb.ProtectedValue.fromString(k.password), keyFile),
    'wharf-test',
  );
  db.setKdf(kdf === 'argon2id' ? kdbxweb.Consts.KdfId.Argon2id : kdbxweb.Consts.KdfId.Argon2d);
  const params = db.header.kdfParameters!;
  params.set('M', kdbxweb.VarDictionary.ValueType.UInt64, kdbxweb.Int64.from(1024 * 1024));
  params.set('I', kdbxweb.VarDictionary.ValueType.UInt64, kdbxweb.Int64.from(2));
  db.header.dataCipherUuid = new kdbxweb.KdbxUuid(
    cipher === 'chacha20' ? kdbxweb.Consts.CipherId.ChaCha20 : kdbxweb.Consts.CipherId.Aes,
  );
  if (customString) {
    const e = db.createEntry(db.getDefaultGroup());
    e.fields.set('Title', customString.entry);
    e.fields.set(customString.key, kdbxweb.ProtectedValue.fromString(customString.value));
  }
  writeFileSync(path, Buffer.from(await db.save()));
}

/** Adds a group. */
export function mkdir(path: string, k: DbKeys, group: string): void {
  kpcli(['mkdir', '-q', ...keyArgs(k), path, group], `${k.password}\n`);
}

/** Adds an entry with a password (and username) as someone would in KeePassXC; returns its UUID (hex). */
export function addEntry(path: string, k: DbKeys, entry: string, password: string, username = 'wharf'): string {
  kpcli(
    ['add', '-q', ...keyArgs(k), '-u', username, '--url', 'https://example.com', '-p', path, entry],
    `${k.password}\n${password}\n`,
  );
  return entryUuid(path, k, entry);
}

/** Changes an entry's password. */
export function editPassword(path: string, k: DbKeys, entry: string, password: string): void {
  kpcli(['edit', '-q', ...keyArgs(k), '-p', path, entry], `${k.password}\n${password}\n`);
}

/** An entry's UUID as keepassxc-cli shows it, as 32 hex digits. */
export function entryUuid(path: string, k: DbKeys, entry: string): string {
  const out = kpcli(['show', '-q', ...keyArgs(k), path, entry], `${k.password}\n`);
  const m = /Uuid: \{([0-9a-f-]+)\}/i.exec(out);
  if (!m) throw new Error(`no Uuid in keepassxc-cli show output for ${entry}`);
  return m[1].replace(/-/g, '').toLowerCase();
}

/** `db-info` as keepassxc-cli reports it (cipher and KDF). */
export function dbInfo(path: string, k: DbKeys): string {
  return kpcli(['db-info', '-q', ...keyArgs(k), path], `${k.password}\n`);
}

/** The KDBX version in the file's header, e.g. `3.1` or `4.0`. */
export function kdbxVersion(bytes: Buffer): string {
  return `${bytes.readUInt16LE(10)}.${bytes.readUInt16LE(8)}`;
}
