#!/usr/bin/env bash
# The measurement in results.md: signal-rate.mjs against (a) the PostgreSQL-backed server (start.sh) and
# (b) the embedded dev server started with Wharf's flags (workers/temporal-server.ts), one after the other.
#   bench/pg-temporal/compare.sh [pg|dev]...   (default: both; CONCURRENCY="64 256", SECONDS_PER_RUN=10)
# One JSON line per run goes to $PGT_DIR/results.jsonl (and stdout). Stops what it started.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$PGT_HERE/../.."
CONCURRENCY=${CONCURRENCY:-64 256} SECONDS_PER_RUN=${SECONDS_PER_RUN:-10} IDS=${IDS:-64}
# Wharf's DEV_SERVER_TUNING (workers/temporal-server.ts); DEV_TUNING="" gives a stock start-dev.
DEV_TUNING=${DEV_TUNING---sqlite-pragma journal_mode=wal --dynamic-config-value system.forceSearchAttributesCacheRefreshOnRead=false}
DEV_PORT=${DEV_PORT:-7263} SETTLE=${SETTLE:-20}  # seconds after start-up before measuring
run() { # label address cpu-spec
  for c in $CONCURRENCY; do
    node "$PGT_HERE/signal-rate.mjs" --address "$2" --seconds "$SECONDS_PER_RUN" --concurrency "$c" --ids "$IDS" \
      --cpu "$3" --label "$1" --json | tee -a "$PGT_DIR/results.jsonl"
  done
}
for what in "${@:-pg dev}"; do for w in $what; do case $w in
  pg)
    addr=$("$PGT_HERE/start.sh" | tail -1); sleep "$SETTLE"
    run "pg-shards$PGT_SHARDS" "$addr" "temporal=$(cat "$PGT_DIR/temporal.pid"),postgres=$(head -1 "$PGDATA/postmaster.pid")"
    "$PGT_HERE/stop.sh" >/dev/null ;;
  dev)
    rm -f "$PGT_DIR"/dev.sqlite*
    sa=(); for n in WharfChannelStatus WharfProvider WharfSpace WharfChannelId; do sa+=(--search-attribute "$n=Keyword"); done
    "$PGT_TEMPORAL_CLI" server start-dev --db-filename "$PGT_DIR/dev.sqlite" --ip 127.0.0.1 --port "$DEV_PORT" \
      --ui-port $((DEV_PORT + 1000)) --namespace default --log-level warn $DEV_TUNING "${sa[@]}" \
      >"$PGT_DIR/dev.log" 2>&1 </dev/null &
    dev=$!
    until "$PGT_TEMPORAL_CLI" operator cluster health --address "127.0.0.1:$DEV_PORT" 2>/dev/null | grep -q SERVING; do sleep 1; done
    sleep "$SETTLE"
    label=dev-sqlite-wharf; [ -n "$DEV_TUNING" ] || label=dev-sqlite-stock
    run "$label" "127.0.0.1:$DEV_PORT" "temporal=$dev"
    kill "$dev"; wait "$dev" || true ;;
esac; done; done
