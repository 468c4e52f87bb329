#!/usr/bin/env bash
# Build (or reuse) temporal-server + temporal-sql-tool, init a PostgreSQL cluster, create and migrate the schemas.
# Idempotent. Leaves postgres in the state it found it (running or stopped).
set -euo pipefail
source "$(dirname "$0")/common.sh"
mkdir -p "$PGT_DIR/bin"
export GOTOOLCHAIN=$PGT_GOTOOLCHAIN GOFLAGS=-mod=mod

# 1. Binaries, from the Go module proxy (~9 min on 2 cores the first time).
if ! "$PGT_DIR/bin/temporal-server" --version 2>/dev/null | grep -q "${PGT_VERSION#v}"; then
  echo "building go.temporal.io/server@$PGT_VERSION (slow) ..."
  start=$(date +%s)
  GOBIN="$PGT_DIR/bin" go install go.temporal.io/server/cmd/server@"$PGT_VERSION" go.temporal.io/server/cmd/tools/sql@"$PGT_VERSION"
  mv "$PGT_DIR/bin/server" "$PGT_DIR/bin/temporal-server"
  mv "$PGT_DIR/bin/sql" "$PGT_DIR/bin/temporal-sql-tool"
  echo "built in $(( $(date +%s) - start ))s"
fi
if [ ! -d "$PGT_DIR/schema/$PGT_VERSION" ]; then
  moddir=$(go mod download -json go.temporal.io/server@"$PGT_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$PGT_DIR/schema/$PGT_VERSION" && cp -r "$moddir/schema/postgresql/v12/." "$PGT_DIR/schema/$PGT_VERSION/"
fi

# 2. PostgreSQL cluster (default durability settings: fsync, synchronous_commit on).
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"; [ "$(id -u)" != 0 ] || chown postgres: "$PGDATA"
  as_pg "$PGT_PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
was_running=1; pg_running || { was_running=0; pg_start; }

# 3. Role, databases, schemas.
psql_pg -d postgres -tc "SELECT 1 FROM pg_roles WHERE rolname='temporal'" | grep -q 1 ||
  psql_pg -d postgres -c "CREATE ROLE temporal LOGIN PASSWORD 'temporal'"
sqltool() { "$PGT_DIR/bin/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p "$PGT_PG_PORT" -u temporal --pw temporal --db "$1" "${@:2}"; }
for pair in "$PGT_DB:temporal" "${PGT_DB}_visibility:visibility"; do
  db=${pair%%:*} dir="$PGT_DIR/schema/$PGT_VERSION/${pair#*:}/versioned"
  psql_pg -d postgres -tc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 ||
    psql_pg -d postgres -c "CREATE DATABASE $db OWNER temporal"
  psql_pg -d "$db" -tc "SELECT to_regclass('schema_version') IS NOT NULL" | grep -q t ||
    sqltool "$db" setup-schema -v 0.0 >>"$PGT_DIR/setup.log" 2>&1
  sqltool "$db" update-schema -d "$dir" >>"$PGT_DIR/setup.log" 2>&1 || { tail -20 "$PGT_DIR/setup.log"; exit 1; }
done
[ "$was_running" = 1 ] || as_pg "$PGT_PGBIN/pg_ctl" -D "$PGDATA" -w stop >/dev/null
echo "setup done: $PGT_DIR (databases $PGT_DB, ${PGT_DB}_visibility on 127.0.0.1:$PGT_PG_PORT)"
