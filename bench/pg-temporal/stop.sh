#!/usr/bin/env bash
# Stop the Temporal server started by start.sh, then postgres. Data stays in $PGT_DIR/pgdata.
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ -f "$PGT_DIR/temporal.pid" ]; then
  pid=$(cat "$PGT_DIR/temporal.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PGT_DIR/temporal.pid"
fi
! pg_running || as_pg "$PGT_PGBIN/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null
echo stopped
