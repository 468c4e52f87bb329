/**
 * The change feed across processes, for a PostgreSQL store shared by several Wharf nodes: a console
 * connected to node A must also see what node B's worker wrote (a status, a QR, the message log).
 *
 * Each write is told to this process's listeners at once, as in the in-process feed, and published with
 * PostgreSQL's NOTIFY; every node LISTENs and re-emits what the others published. Publishing is coalesced
 * like the server-sent events themselves (one NOTIFY per COALESCE_MS carrying each channel and kind
 * once): at 1,000 messages a second that is a handful of NOTIFYs, not a second statement per write.
 */
import { randomBytes } from 'node:crypto';
import { createChangeFeed, type ChangeFeed, type ChangeKind, type ChannelChange } from './change-feed.js';
import type { Db } from './db.js';

/** The NOTIFY channel every Wharf node of one database listens on. */
export const CHANGES_CHANNEL = 'wharf_changes';

const COALESCE_MS = 50;
// PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; a batch is split below that.
const MAX_PAYLOAD = 7_000;
const KINDS: ReadonlySet<string> = new Set<ChangeKind>(['channel', 'messages', 'link', 'diagnostics']);

/** What one NOTIFY carries: the publishing node and its changes as `[channelId, what]` pairs. */
interface Published {
  from: string;
  changes: Array<[string, ChangeKind]>;
}

/** A change feed shared through the database, with the means to stop listening. */
export interface SharedChangeFeed extends ChangeFeed {
  /** Resolves once this node listens (changes published before that are not seen). */
  readonly ready: Promise<void>;
}

/** The changes in a NOTIFY payload from another node, or none when it is not one of ours (anyone may NOTIFY). */
export function parsePublished(payload: string, self: string): ChannelChange[] {
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return [];
  }
  const p = body as Partial<Published> | null;
  if (!p || typeof p !== 'object' || typeof p.from !== 'string' || p.from === self || !Array.isArray(p.changes))
    return [];
  return p.changes.flatMap((c): ChannelChange[] =>
    Array.isArray(c) && typeof c[0] === 'string' && c[0].length <= 200 && typeof c[1] === 'string' && KINDS.has(c[1])
      ? [{ channelId: c[0], what: c[1] }]
      : [],
  );
}

/** NOTIFY payloads for `changes`, each under PostgreSQL's limit. */
export function payloadsFor(from: string, changes: ChannelChange[]): string[] {
  const out: string[] = [];
  let batch: Array<[string, ChangeKind]> = [];
  let size = 0;
  for (const c of changes) {
    const entry: [string, ChangeKind] = [c.channelId, c.what];
    const len = JSON.stringify(entry).length + 1;
    if (batch.length && size + len > MAX_PAYLOAD) {
      out.push(JSON.stringify({ from, changes: batch }));
      batch = [];
      size = 0;
    }
    batch.push(entry);
    size += len;
  }
  if (batch.length) out.push(JSON.stringify({ from, changes: batch }));
  return out;
}

/**
 * A feed that also reaches and hears every other node on `db` (PostgreSQL: a `db` without `listen` only
 * publishes). The listening connection closes with `db`.
 */
export function createSharedChangeFeed(db: Db): SharedChangeFeed {
  const local = createChangeFeed();
  const self = randomBytes(8).toString('hex');
  const pending = new Map<string, ChannelChange>();
  let timer: NodeJS.Timeout | null = null;

  const publish = (): void => {
    timer = null;
    const changes = [...pending.values()];
    pending.clear();
    for (const payload of payloadsFor(self, changes)) {
      // A failed NOTIFY costs other nodes' consoles a live update, never the write that caused it.
      db.query('select pg_notify($1, $2)', [CHANGES_CHANNEL, payload]).catch(() => undefined);
    }
  };

  const ready = (
    db.listen?.(CHANGES_CHANNEL, (payload) => {
      for (const change of parsePublished(payload, self)) local.emit(change);
    }) ?? Promise.resolve()
  ).then(
    () => undefined,
    // No listener now (the database was unreachable): this node's console sees its own writes only.
    () => undefined,
  );

  return {
    ready,
    subscribe: (fn) => local.subscribe(fn),
    emit(change) {
      local.emit(change);
      pending.set(`${change.channelId}\u0000${change.what}`, change);
      timer ??= setTimeout(publish, COALESCE_MS);
    },
  };
}
