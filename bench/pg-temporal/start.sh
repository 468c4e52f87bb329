#!/usr/bin/env bash
# Start postgres + the PostgreSQL-backed Temporal server in the background; register namespace + Wharf search attributes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ -f "$PGDATA/PG_VERSION" ] || { echo "run setup.sh first" >&2; exit 1; }
pg_start
addr="127.0.0.1:$PGT_PORT"
tctl() { "$PGT_TEMPORAL_CLI" "$@" --address "$addr"; }
if ! { [ -f "$PGT_DIR/temporal.pid" ] && kill -0 "$(cat "$PGT_DIR/temporal.pid")" 2>/dev/null; }; then
  setsid "$PGT_DIR/bin/temporal-server" --config-file "$PGT_HERE/config.template.yaml" --allow-no-auth start \
    >"$PGT_DIR/temporal.log" 2>&1 </dev/null &
  echo $! >"$PGT_DIR/temporal.pid"
fi
for i in $(seq 60); do
  tctl operator cluster health 2>/dev/null | grep -q SERVING && break
  kill -0 "$(cat "$PGT_DIR/temporal.pid")" 2>/dev/null || { tail -20 "$PGT_DIR/temporal.log"; exit 1; }
  [ "$i" = 60 ] && { echo "temporal not healthy after 60s" >&2; exit 1; }; sleep 1
done
tctl operator namespace describe -n "$PGT_NAMESPACE" >/dev/null 2>&1 || tctl operator namespace create -n "$PGT_NAMESPACE" >/dev/null
# Names/types as in lib/search-attributes.ts (WHARF_SEARCH_ATTRIBUTES): all Keyword.
existing=; for _ in $(seq 30); do existing=$(tctl operator search-attribute list -n "$PGT_NAMESPACE" 2>/dev/null) && break; sleep 1; done
for sa in WharfChannelStatus WharfProvider WharfSpace WharfChannelId; do
  grep -qw "$sa" <<<"$existing" || tctl operator search-attribute create -n "$PGT_NAMESPACE" --name "$sa" --type Keyword >/dev/null
done
echo "$addr"
