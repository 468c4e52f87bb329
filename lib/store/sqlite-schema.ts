/**
 * The store's schema in SQLite's dialect. A SQLite store always starts on a fresh data dir, so instead of
 * replaying PostgreSQL's history it gets one baseline equal to the result of PostgreSQL migrations 1–14,
 * recorded as version 14; a later migration carries its own `sqlite` text (lib/store/migrations.ts).
 * `test/sqlite-schema.test.ts` compares this with the PostgreSQL schema, so the two cannot drift.
 *
 * Column types name what PostgreSQL has and how SQLite stores it; the SQLite session (lib/store/sqlite.ts)
 * converts values by these names so rows come back in the shapes PostgreSQL gives:
 * `timestamp_text` — ISO-8601 UTC text with microseconds (`2026-12-02T12:00:00.000123Z`, so text order is
 * time order), returned as a `Date`; `json_text` — JSON text, returned parsed; `bool_int` — 0/1, returned as a
 * boolean; `blob` — bytes, returned as a `Buffer`. None of the names contains INT, CHAR or TEXT by accident:
 * SQLite derives a column's affinity from its type's name, and these get TEXT (JSON, time) or INTEGER (bool).
 */
import type { Migration } from './migrations.js';

/**
 * A time column's default: the session's `now()` (lib/store/sqlite.ts), which writes the same text as every
 * other time the store writes. (SQLite's own `strftime` has milliseconds only; a `sqlite3` shell can read
 * this database but not insert rows that rely on this default.)
 */
export const SQLITE_NOW = '(now())';

/** The version the SQLite baseline stands for: every PostgreSQL migration up to it is included. */
export const SQLITE_BASELINE_VERSION = 14;

/** PostgreSQL migrations 1–14 as one SQLite schema. */
export const SQLITE_BASELINE: Migration = {
  version: SQLITE_BASELINE_VERSION,
  name: 'sqlite-baseline',
  sql: `
    create table spaces (
      name text not null primary key,
      channel_id text unique,
      created_at timestamp_text not null default ${SQLITE_NOW}
    );
    create table agents (
      id text not null primary key,
      kind text not null,
      config json_text not null default '{}',
      created_at timestamp_text not null default ${SQLITE_NOW}
    );
    create table vault_items (
      vault text not null,
      id text not null,
      name text not null,
      kind text not null,
      field_names json_text not null,
      ciphertext text not null,
      created_at timestamp_text not null default ${SQLITE_NOW},
      updated_at timestamp_text not null default ${SQLITE_NOW},
      primary key (vault, id),
      unique (vault, name)
    );
    create table channels (
      id text not null primary key,
      provider text not null,
      space text not null,
      agent text not null,
      status text not null,
      state json_text not null,
      version integer not null,
      deleted bool_int not null default 0,
      created_at timestamp_text not null,
      updated_at timestamp_text not null
    );
    create index channels_status on channels (status) where not deleted;
    create table channel_diagnostics (
      channel_id text not null primary key,
      last_webhook_at timestamp_text,
      last_verification_at timestamp_text,
      verifications_refused integer not null default 0,
      bad_signature_events integer not null default 0,
      last_send_error json_text,
      subscribed_apps integer,
      subscribed_apps_checked_at timestamp_text
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
      detail json_text,
      claim text,
      created_at timestamp_text not null default ${SQLITE_NOW},
      updated_at timestamp_text not null default ${SQLITE_NOW},
      type text not null default 'text',
      claim_node text,
      primary key (channel_id, direction, key)
    );
    create index messages_recent on messages (channel_id, created_at desc);
    create index messages_provider_id on messages (channel_id, provider_id);
    create index messages_unsent_claims on messages (channel_id) where direction = 'out' and claim is not null and provider_id is null;
    create table policy_sets (
      id integer primary key autoincrement,
      text text not null,
      created_at timestamp_text not null default ${SQLITE_NOW}
    );
    create table auth_state (
      channel_id text not null,
      key text not null,
      ciphertext text not null,
      updated_at timestamp_text not null default ${SQLITE_NOW},
      primary key (channel_id, key)
    );
    create table session_link (
      channel_id text not null primary key,
      qr text,
      pairing_code text,
      expires_at timestamp_text,
      updated_at timestamp_text not null default ${SQLITE_NOW}
    );
    create table vault_connections (
      id text not null primary key,
      kind text not null,
      settings json_text not null,
      created_at timestamp_text not null default ${SQLITE_NOW},
      updated_at timestamp_text not null default ${SQLITE_NOW}
    );
    create table wharf_nodes (
      id text not null primary key,
      seen_at timestamp_text not null default ${SQLITE_NOW}
    );
    create table media (
      id text not null primary key,
      mime text not null,
      size integer not null,
      bytes blob not null,
      created_at timestamp_text not null default ${SQLITE_NOW},
      seen_at timestamp_text not null default ${SQLITE_NOW}
    );
    create index media_seen_at on media (seen_at);
    create table media_uploads (
      phone_number_id text not null,
      media_id text not null,
      meta_id text not null,
      uploaded_at timestamp_text not null default ${SQLITE_NOW},
      primary key (phone_number_id, media_id)
    );
    create table session_holders (
      channel_id text not null primary key,
      node_id text not null,
      workflow_id text not null,
      run_id text not null,
      activity_id text not null,
      attempt integer not null,
      updated_at timestamp_text not null default ${SQLITE_NOW}
    )
  `,
};
