/**
 * Versioned schema migrations, applied in order at start inside one transaction each. One dialect serves
 * PGlite and PostgreSQL. Never edit a shipped migration: add the next one.
 */
import type { Db, Sql } from './db.js';
import { SQLITE_BASELINE, SQLITE_BASELINE_VERSION, SQLITE_NOW } from './sqlite-schema.js';

/** One migration step. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** The same step in SQLite's dialect; required for every migration after the SQLite baseline (14). */
  sqlite?: string;
}

/** All migrations, oldest first. */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
      create table spaces (
        name text primary key,
        channel_id text unique,
        created_at timestamptz not null default now()
      );
      create table agents (
        id text primary key,
        kind text not null,
        config jsonb not null default '{}'::jsonb,
        created_at timestamptz not null default now()
      );
      create table vault_items (
        vault text not null,
        id text not null,
        name text not null,
        kind text not null,
        field_names jsonb not null,
        ciphertext text not null,
        created_at timestamptz not null default now(),
        primary key (vault, id),
        unique (vault, name)
      );
      create table channels (
        id text primary key,
        provider text not null,
        space text not null,
        agent text not null,
        status text not null,
        state jsonb not null,
        version integer not null,
        deleted boolean not null default false,
        created_at timestamptz not null,
        updated_at timestamptz not null
      );
      create index channels_status on channels (status) where not deleted;
      create table channel_diagnostics (
        channel_id text primary key,
        last_webhook_at timestamptz,
        last_verification_at timestamptz,
        verifications_refused integer not null default 0,
        bad_signature_events integer not null default 0,
        last_send_error jsonb
      );
      create table messages (
        channel_id text not null,
        direction text not null,
        key text not null,
        provider_id text,
        chat_id text not null,
        address text,
        text text not null default '',
        status text not null,
        detail jsonb,
        claim text,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        primary key (channel_id, direction, key)
      );
      create index messages_recent on messages (channel_id, created_at desc);
      create index messages_provider_id on messages (channel_id, provider_id);
      create table policy_sets (
        id bigserial primary key,
        text text not null,
        created_at timestamptz not null default now()
      );
      create table auth_state (
        channel_id text not null,
        key text not null,
        ciphertext text not null,
        updated_at timestamptz not null default now(),
        primary key (channel_id, key)
      );
    `,
  },
  {
    version: 2,
    name: 'session-link',
    sql: `
      create table session_link (
        channel_id text primary key,
        qr text,
        pairing_code text,
        expires_at timestamptz,
        updated_at timestamptz not null default now()
      );
    `,
  },
  {
    version: 3,
    name: 'unsent-claims',
    // Outbound parts claimed and not yet sent: few at any time, so start-up finds the ones a dead process
    // left without reading the whole message log.
    sql: `
      create index messages_unsent_claims on messages (channel_id) where direction = 'out' and claim is not null and provider_id is null;
    `,
  },
  {
    version: 4,
    name: 'message-type',
    // What kind of message each entry is (text, image, reaction, system, …): every event Meta delivers is
    // recorded, including those no agent answers, and the log says which kind it was.
    sql: `
      alter table messages add column type text not null default 'text';
    `,
  },
  {
    version: 5,
    name: 'vault-connections',
    // Connections to external vaults (lib/vaults): settings only; their own secrets are refs into `local`.
    // Local items become rotatable: `updated_at` says when a value last changed.
    sql: `
      create table vault_connections (
        id text primary key,
        kind text not null,
        settings jsonb not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      );
      alter table vault_items add column updated_at timestamptz not null default now();
    `,
  },
  {
    version: 6,
    name: 'subscribed-apps',
    // How many apps Meta says receive the WABA's webhooks, checked when a Cloud API config is saved (none:
    // outbound works, inbound never arrives — the guide's most common failure). Null: not checked / unknown.
    sql: `
      alter table channel_diagnostics add column subscribed_apps integer;
      alter table channel_diagnostics add column subscribed_apps_checked_at timestamptz;
    `,
  },
  {
    version: 8,
    name: 'node-liveness',
    // Nodes sharing a PostgreSQL store note that they are alive; a claim on an outbound part names its
    // node, so a claim of a node that stopped noting it is given up at once instead of after its lease.
    sql: `
      create table wharf_nodes (
        id text primary key,
        seen_at timestamptz not null default now()
      );
      alter table messages add column claim_node text;
    `,
  },
  {
    version: 9,
    name: 'media',
    // Inbound files, content-addressed (id = SHA-256 of the bytes): the same file twice is stored once.
    // Outside workflow history; `seen_at` drives retention (WHARF_MEDIA_RETENTION_DAYS).
    sql: `
      create table media (
        id text primary key,
        mime text not null,
        size integer not null,
        bytes bytea not null,
        created_at timestamptz not null default now(),
        seen_at timestamptz not null default now()
      );
      create index media_seen_at on media (seen_at);
    `,
  },
  {
    version: 10,
    name: 'media uploads',
    // Files uploaded to Meta for sending, per phone number: a retried send (or the same file sent again)
    // reuses the upload instead of making another. Meta keeps an upload 30 days.
    sql: `
      create table media_uploads (
        phone_number_id text not null,
        media_id text not null,
        meta_id text not null,
        uploaded_at timestamptz not null default now(),
        primary key (phone_number_id, media_id)
      );
    `,
  },
  {
    version: 14,
    name: 'session-holders',
    // Which node holds each personal session's activity attempt (activities/session-failover.ts): when that
    // node stops noting that it is alive, another fails the attempt so Temporal restarts it at once instead
    // of after the 30 s heartbeat timeout.
    sql: `
      create table session_holders (
        channel_id text primary key,
        node_id text not null,
        workflow_id text not null,
        run_id text not null,
        activity_id text not null,
        attempt integer not null,
        updated_at timestamptz not null default now()
      );
    `,
  },
  {
    version: 15,
    name: 'outbound-provider-ids',
    // Only sent replies are looked up by the provider's id (a delivery status names a reply); an inbound row's
    // provider id is its key, already the primary key's. Indexing sent replies alone saves every received
    // message and every claimed reply an index write (the SQLite store's pages written per message: docs/performance.md).
    sql: `
      drop index messages_provider_id;
      create index messages_provider_id on messages (channel_id, provider_id)
        where direction = 'out' and provider_id is not null;
    `,
    sqlite: `
      drop index messages_provider_id;
      create index messages_provider_id on messages (channel_id, provider_id)
        where direction = 'out' and provider_id is not null;
    `,
  },
];

/**
 * The advisory lock every migrating process takes (an arbitrary constant, "wharf" in ASCII): nodes that
 * start at once on an empty PostgreSQL database otherwise race on the same DDL and one dies on a
 * duplicate type or relation.
 */
export const MIGRATION_LOCK = 0x7768617266;

/**
 * Applies every migration newer than the database's version; returns the versions applied. Each step runs
 * in its own transaction holding MIGRATION_LOCK and re-reads the applied versions under it, so of several
 * processes starting together exactly one applies each migration and the others wait for it, then skip it.
 * `migrations` is for the store template's tests (a template made with older migrations).
 */
export async function migrate(db: Db, migrations: Migration[] = migrationsFor(db)): Promise<number[]> {
  // SQLite has one process per data dir, and its write transaction holds the only write lock.
  const locked = async <T>(fn: (tx: Sql) => Promise<T>): Promise<T> =>
    db.transaction(async (tx) => {
      if (db.dialect === 'postgres') await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      return fn(tx);
    });
  const appliedVersions = async (tx: Sql): Promise<Set<number>> =>
    new Set(
      (await tx.query<{ version: number }>('select version from schema_migrations')).map((r) => Number(r.version)),
    );
  const done = await locked(async (tx) => {
    await tx.query(
      db.dialect === 'sqlite'
        ? `create table if not exists schema_migrations (
      version integer primary key, name text not null, applied_at timestamp_text not null default ${SQLITE_NOW})`
        : `create table if not exists schema_migrations (
      version integer primary key, name text not null, applied_at timestamptz not null default now())`,
    );
    return appliedVersions(tx);
  });
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    const ran = await locked(async (tx) => {
      if ((await appliedVersions(tx)).has(m.version)) return false; // another process applied it meanwhile
      for (const stmt of splitStatements(m.sql)) await tx.query(stmt);
      await tx.query('insert into schema_migrations (version, name) values ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (ran) applied.push(m.version);
  }
  return applied;
}

/**
 * The migrations of `db`'s dialect: PostgreSQL's as they are; on SQLite the baseline (PostgreSQL 1–14 as one
 * schema), then each later migration's `sqlite` text.
 */
export function migrationsFor(db: Pick<Db, 'dialect'>, all: Migration[] = MIGRATIONS): Migration[] {
  if (db.dialect === 'postgres') return all;
  return [
    SQLITE_BASELINE,
    ...all
      .filter((m) => m.version > SQLITE_BASELINE_VERSION)
      .map((m) => {
        if (m.sqlite === undefined) throw new Error(`migration ${m.version} (${m.name}) has no SQLite text`);
        return { ...m, sql: m.sqlite };
      }),
  ];
}

// Extended-protocol queries take one statement each; migrations hold no semicolons inside literals.
function splitStatements(sql: string): string[] {
  return sql
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
}
