#!/bin/sh
# Creates Wharf's own role and database next to Temporal's (`temporal`, `temporal_visibility`).
#
# The postgres image runs the files in /docker-entrypoint-initdb.d only when it initialises an EMPTY data
# directory, i.e. on the very first start of the postgres-data volume. Changing WHARF_DB_PASSWORD later does
# not change the role's password; see docs/deployment.md.
#
# The entrypoint executes this file when it is executable and sources it otherwise; both work.
set -e

if [ -z "${WHARF_DB_PASSWORD:-}" ]; then
  echo "postgres-init: WHARF_DB_PASSWORD is not set; cannot create the wharf role" >&2
  exit 1
fi

# During initialisation the server listens on the Unix socket only; the password goes in as a psql variable
# (quoted by psql with :'...'), never through the shell.
PGHOST= PGHOSTADDR= psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
  --set wharf_password="$WHARF_DB_PASSWORD" <<'EOSQL'
CREATE ROLE wharf LOGIN PASSWORD :'wharf_password';
CREATE DATABASE wharf OWNER wharf;
EOSQL

echo "postgres-init: created role and database 'wharf'"
