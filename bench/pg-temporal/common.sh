# Shared settings for setup.sh / start.sh / stop.sh. Override any of them via the environment.
PGT_DIR=${PGT_DIR:-/tmp/pgtemporal}                  # binaries, schema, pgdata, logs
PGT_VERSION=${PGT_VERSION:-v1.32.2}                  # go.temporal.io/server release
PGT_GOTOOLCHAIN=${PGT_GOTOOLCHAIN:-go1.27.3}         # v1.32.2 needs go >= 1.26.10
PGT_PG_PORT=${PGT_PG_PORT:-55432}
PGT_PORT=${PGT_PORT:-7243}                           # frontend gRPC; history/matching/worker use +1/+2/+6
PGT_SHARDS=${PGT_SHARDS:-4}                          # fixed per database: use another PGT_DB to change it
PGT_DB=${PGT_DB:-temporal}                           # visibility goes to ${PGT_DB}_visibility
PGT_NAMESPACE=${PGT_NAMESPACE:-default}
PGT_TEMPORAL_CLI=${PGT_TEMPORAL_CLI:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.tools/temporal/bin/temporal}
PGT_PGBIN=${PGT_PGBIN:-/usr/lib/postgresql/15/bin}
PGDATA="$PGT_DIR/pgdata"
PGT_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PGT_DIR PGT_PG_PORT PGT_PORT PGT_SHARDS PGT_DB PGT_HERE

# postgres refuses to run as root: run its tools as the `postgres` user then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_running() { as_pg "$PGT_PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
pg_start() { pg_running || as_pg "$PGT_PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/postgres.log" -w \
  -o "-p $PGT_PG_PORT -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null; }
psql_pg() { as_pg psql -h 127.0.0.1 -p "$PGT_PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
