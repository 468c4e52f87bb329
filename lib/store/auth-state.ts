/**
 * Baileys auth state (creds and signal keys) kept in the store's `auth_state` table, each value serialised
 * with Baileys' `BufferJSON` and sealed with the instance's secret key (aad `auth:<channelId>/<key>`). Same
 * interface as Baileys' `useMultiFileAuthState`, but nothing touches files or workflow history, so a restart
 * of the process or of the session activity reconnects without a new QR.
 *
 * Every write for one channel goes through one promise chain (module-level, per channel), so writes never
 * interleave — a reconnect's writes queue behind the previous socket's — and a multi-key `keys.set` is one
 * transaction. Reads wait for the writes queued before them (read-your-writes).
 *
 * Optional fencing: a session passes a `fence` token; it is written as the channel's owner and every later
 * write checks (inside its transaction) that the channel is still owned by that token. When another session
 * took the channel over, or the auth state was cleared from outside (relink, delete), writes are refused
 * and `onFenced` is called, so a stale session can never overwrite fresh auth state.
 */
import {
  BufferJSON,
  initAuthCreds,
  proto,
  type AuthenticationCreds,
  type AuthenticationState,
  type SignalDataSet,
  type SignalDataTypeMap,
} from '@whiskeysockets/baileys';
import { seal, unseal } from './crypto.js';
import type { Db, Sql } from './db.js';

/** The row key of the creds. Signal keys are stored as `<type>-<id>`. */
const CREDS_KEY = 'creds';
/** The row key of the fencing token (not auth material; survives `clear()` of the owning session). */
export const OWNER_KEY = '__owner';

/** Thrown (and reported through `onFenced`) when a fenced auth state lost ownership of its channel. */
export class AuthStateFencedError extends Error {
  override readonly name = 'AuthStateFencedError';
  constructor(readonly channelId: string) {
    super(
      `The auth state of channel ${channelId} is owned by another session (or was cleared); this session may no longer write it.`,
    );
  }
}

/** Thrown by writes after `close()`. */
export class AuthStateClosedError extends Error {
  override readonly name = 'AuthStateClosedError';
  constructor(readonly channelId: string) {
    super(`The auth state of channel ${channelId} was closed with its session; the write was dropped.`);
  }
}

/** Options of `createStoreAuthState`. */
export interface StoreAuthStateOptions {
  db: Db;
  secretKey: Buffer;
  channelId: string;
  /**
   * Fencing: `token` identifies the session. With `claim: true` (the first auth state of a session) the
   * token becomes the channel's owner; every write then checks it still is.
   */
  fence?: { token: string; claim?: boolean; onFenced?: (err: AuthStateFencedError) => void };
}

/** What `createStoreAuthState` returns: the same shape as `useMultiFileAuthState`, plus `clear` and `close`. */
export interface StoreAuthState {
  state: AuthenticationState;
  /** Writes the current creds (call on every `creds.update`). */
  saveCreds(): Promise<void>;
  /**
   * Deletes the channel's creds and keys (every row of the channel; a fenced session keeps its owner row).
   * Allowed after `close()` (a session clears the state of a socket that just closed); still fenced.
   */
  clear(): Promise<void>;
  /** Refuses every later write of this instance (a closed session must not write). Idempotent. */
  close(): void;
  /** True when the creds belong to a linked device (a QR was scanned or a pairing code entered). */
  isLinked(): boolean;
}

// One promise chain per channel: every write (and every read's wait) queues here.
const chains = new Map<string, Promise<unknown>>();

/** Runs `fn` after every write queued for `channelId` so far; the next one waits for it. */
function serialised<T>(channelId: string, fn: () => Promise<T>): Promise<T> {
  const prev = chains.get(channelId) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  chains.set(channelId, tail);
  // Forget the chain once idle so the map does not grow with every channel ever seen.
  void tail.then(() => {
    if (chains.get(channelId) === tail) chains.delete(channelId);
  });
  return run;
}

/** Resolves once every write queued for `channelId` so far has finished. */
function settled(channelId: string): Promise<unknown> {
  return chains.get(channelId) ?? Promise.resolve();
}

const aadFor = (channelId: string, key: string): string => `auth:${channelId}/${key}`;
const encode = (secretKey: Buffer, channelId: string, key: string, value: unknown): string =>
  seal(secretKey, JSON.stringify(value, BufferJSON.replacer), aadFor(channelId, key));
const decode = (secretKey: Buffer, channelId: string, key: string, ciphertext: string): unknown =>
  JSON.parse(unseal(secretKey, ciphertext, aadFor(channelId, key)), BufferJSON.reviver);

/**
 * Whether the session holding `token` still owns the channel's auth state (see `fence`). A stale session
 * checks this before it reports anything, so it can never overwrite what the current session reported.
 */
export async function ownsAuthState({
  db,
  secretKey,
  channelId,
  token,
}: {
  db: Db;
  secretKey: Buffer;
  channelId: string;
  token: string;
}): Promise<boolean> {
  await settled(channelId);
  const [row] = await db.query<{ ciphertext: string }>(
    'select ciphertext from auth_state where channel_id = $1 and key = $2',
    [channelId, OWNER_KEY],
  );
  if (!row) return false;
  try {
    return decode(secretKey, channelId, OWNER_KEY, row.ciphertext) === token;
  } catch {
    return false;
  }
}

/** Creates (loading the saved creds, or fresh ones) the store-backed auth state of one channel. */
export async function createStoreAuthState({
  db,
  secretKey,
  channelId,
  fence,
}: StoreAuthStateOptions): Promise<StoreAuthState> {
  let closed = false;

  const checkOwner = async (tx: Sql): Promise<void> => {
    if (!fence) return;
    // SQLite: the write transaction already holds the database's only write lock.
    const [row] = await tx.query<{ ciphertext: string }>(
      db.dialect === 'sqlite'
        ? 'select ciphertext from auth_state where channel_id = $1 and key = $2'
        : 'select ciphertext from auth_state where channel_id = $1 and key = $2 for update',
      [channelId, OWNER_KEY],
    );
    let owner: unknown = null;
    try {
      owner = row ? decode(secretKey, channelId, OWNER_KEY, row.ciphertext) : null;
    } catch {
      owner = null;
    }
    if (owner !== fence.token) {
      const err = new AuthStateFencedError(channelId);
      closed = true;
      fence.onFenced?.(err);
      throw err;
    }
  };

  /** One write transaction, queued behind the channel's earlier writes; refused once closed or fenced. */
  const write = (fn: (tx: Sql) => Promise<void>, evenWhenClosed = false): Promise<void> => {
    if (closed && !evenWhenClosed) return Promise.reject(new AuthStateClosedError(channelId));
    return serialised(channelId, async () => {
      await db.transaction(async (tx) => {
        await checkOwner(tx);
        await fn(tx);
      });
    });
  };

  const upsert = async (tx: Sql, keys: string[], ciphertexts: string[]): Promise<void> => {
    if (!keys.length) return;
    await tx.query(
      db.dialect === 'sqlite'
        ? `insert into auth_state (channel_id, key, ciphertext, updated_at)
       select $1, k.value, c.value, now() from json_each($2) k join json_each($3) c on c.key = k.key where true
       on conflict (channel_id, key) do update set ciphertext = excluded.ciphertext, updated_at = now()`
        : `insert into auth_state (channel_id, key, ciphertext, updated_at)
       select $1, t.k, t.c, now() from unnest($2::text[], $3::text[]) as t(k, c)
       on conflict (channel_id, key) do update set ciphertext = excluded.ciphertext, updated_at = now()`,
      [channelId, keys, ciphertexts],
    );
  };

  if (fence?.claim) {
    await serialised(channelId, () => upsert(db, [OWNER_KEY], [encode(secretKey, channelId, OWNER_KEY, fence.token)]));
  }

  await settled(channelId);
  const [credsRow] = await db.query<{ ciphertext: string }>(
    'select ciphertext from auth_state where channel_id = $1 and key = $2',
    [channelId, CREDS_KEY],
  );
  const creds: AuthenticationCreds = credsRow
    ? (decode(secretKey, channelId, CREDS_KEY, credsRow.ciphertext) as AuthenticationCreds)
    : initAuthCreds();

  const state: AuthenticationState = {
    creds,
    keys: {
      async get<T extends keyof SignalDataTypeMap>(
        type: T,
        ids: string[],
      ): Promise<{ [id: string]: SignalDataTypeMap[T] }> {
        const out: { [id: string]: SignalDataTypeMap[T] } = {};
        if (!ids.length) return out;
        await settled(channelId);
        const rows = await db.query<{ key: string; ciphertext: string }>(
          db.dialect === 'sqlite'
            ? 'select key, ciphertext from auth_state where channel_id = $1 and key in (select value from json_each($2))'
            : 'select key, ciphertext from auth_state where channel_id = $1 and key = any($2::text[])',
          [channelId, ids.map((id) => `${type}-${id}`)],
        );
        const prefix = `${type}-`;
        for (const row of rows) {
          let value = decode(secretKey, channelId, row.key, row.ciphertext);
          if (type === 'app-state-sync-key' && value)
            value = proto.Message.AppStateSyncKeyData.fromObject(value as Record<string, unknown>);
          out[row.key.slice(prefix.length)] = value as SignalDataTypeMap[T];
        }
        return out;
      },
      async set(data: SignalDataSet): Promise<void> {
        const keys: string[] = [];
        const ciphertexts: string[] = [];
        const removed: string[] = [];
        for (const type of Object.keys(data) as Array<keyof SignalDataSet>) {
          const entries = data[type] ?? {};
          for (const id of Object.keys(entries)) {
            const key = `${type}-${id}`;
            const value = entries[id];
            if (value) {
              keys.push(key);
              ciphertexts.push(encode(secretKey, channelId, key, value));
            } else {
              removed.push(key);
            }
          }
        }
        if (!keys.length && !removed.length) return;
        await write(async (tx) => {
          await upsert(tx, keys, ciphertexts);
          if (removed.length)
            await tx.query(
              db.dialect === 'sqlite'
                ? 'delete from auth_state where channel_id = $1 and key in (select value from json_each($2))'
                : 'delete from auth_state where channel_id = $1 and key = any($2::text[])',
              [channelId, removed],
            );
        });
      },
    },
  };

  return {
    state,
    saveCreds() {
      // Sealed now (a snapshot of this moment's creds), written in order behind earlier writes.
      const ciphertext = encode(secretKey, channelId, CREDS_KEY, state.creds);
      return write((tx) => upsert(tx, [CREDS_KEY], [ciphertext]));
    },
    clear() {
      return write(async (tx) => {
        // A fenced session keeps its ownership row, so it can write fresh creds after clearing.
        if (fence) await tx.query('delete from auth_state where channel_id = $1 and key <> $2', [channelId, OWNER_KEY]);
        else await tx.query('delete from auth_state where channel_id = $1', [channelId]);
      }, true);
    },
    close() {
      closed = true;
    },
    isLinked() {
      return !!state.creds.account && !!state.creds.me?.id;
    },
  };
}
