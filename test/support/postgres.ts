/**
 * A throwaway PostgreSQL cluster for the test run: initdb in a temp dir, a free port on 127.0.0.1, started
 * and stopped with pg_ctl. PostgreSQL refuses to run as root, so under root the server runs as the
 * `postgres` system user (or `nobody`) and its data dir is handed to that user.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A running throwaway cluster. */
export interface TestPostgres {
  /** URL of the cluster's `postgres` database, as the superuser `wharf` (trust auth on 127.0.0.1). */
  adminUrl: string;
  stop(): Promise<void>;
}

/** The directory holding initdb/pg_ctl: PG_BIN, else the newest Debian-style /usr/lib/postgresql/N/bin, else PATH. */
function findPgBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], 'bin');
  }
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'PostgreSQL binaries not found: install PostgreSQL (apt-get install postgresql) or set PG_BIN to the directory holding initdb and pg_ctl',
    );
  }
}

/** The unprivileged account the server runs as when the tests run as root. */
function serverAccount(): { name: string; uid: number; gid: number } | null {
  if (userInfo().uid !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    try {
      const id = (flag: string) =>
        Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
      return { name, uid: id('-u'), gid: id('-g') };
    } catch {
      // no such account; try the next
    }
  }
  throw new Error(
    'running as root and neither a `postgres` nor a `nobody` account exists to run the test PostgreSQL as',
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** Starts a fresh cluster; resolves once it accepts connections. */
export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = findPgBin();
  const account = serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'wharf-pg-'));
  const data = join(dir, 'data');
  if (account) {
    chownSync(dir, account.uid, account.gid);
    // The temp dir's parent must let that account reach it.
    chmodSync(dir, 0o700);
  }
  const run = (cmd: string, args: string[]): void => {
    const [file, argv] = account
      ? ['runuser', ['-u', account.name, '--', join(bin, cmd), ...args]]
      : [join(bin, cmd), args];
    execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  };
  run('initdb', ['-D', data, '-U', 'wharf', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  // Durability settings off: the cluster lives for one test run, and fsync on 2 shared cores only slows it.
  // Connections: two test files at a time, each with up to three Wharf nodes of ten pooled connections.
  const opts = `-p ${port} -h 127.0.0.1 -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB`;
  run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start']);
  const adminUrl = `postgres://wharf@127.0.0.1:${port}/postgres`;
  return {
    adminUrl,
    async stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Creates an empty database on the cluster at `adminUrl`; returns its URL. */
export async function createTestDatabase(adminUrl: string): Promise<string> {
  const name = 'wharf_' + Math.random().toString(36).slice(2, 12);
  await asAdmin(adminUrl, `create database ${name}`);
  return adminUrl.replace(/\/postgres$/, `/${name}`);
}

/** Drops the database at `url` (connections still open to it are closed). */
export async function dropTestDatabase(adminUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  if (!/^wharf_[a-z0-9]+$/.test(name)) throw new Error(`not a test database: ${name}`);
  await asAdmin(adminUrl, `drop database if exists ${name} with (force)`);
}

async function asAdmin(adminUrl: string, sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}
