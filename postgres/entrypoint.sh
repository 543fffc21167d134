#!/usr/bin/env bash
# First boot: initdb, then the application user and database from the
# POSTGRESQL_* variables and secrets, in a staging directory that becomes
# $PGDATA only when complete (a crash mid-way starts over). Then: postgres.
set -euo pipefail

secret() { # Prints the secret in file $1, failing clearly when it is missing.
  local file=${1:?missing file}
  [ -s "$file" ] || { echo "postgres: secret file $file is missing or empty" >&2; exit 2; }
  cat "$file"
}

: "${POSTGRESQL_USERNAME:?set POSTGRESQL_USERNAME}"
: "${POSTGRESQL_DATABASE:?set POSTGRESQL_DATABASE}"
: "${POSTGRESQL_PASSWORD_FILE:?set POSTGRESQL_PASSWORD_FILE to a Docker secret}"
: "${POSTGRESQL_POSTGRES_PASSWORD_FILE:?set POSTGRESQL_POSTGRES_PASSWORD_FILE to a Docker secret}"

initialise() {
  local staging="$PGDATA.init" pwfile app_password
  echo "postgres: first boot, initialising $PGDATA" >&2
  rm -rf "$staging"
  pwfile=$(mktemp)
  secret "$POSTGRESQL_POSTGRES_PASSWORD_FILE" >"$pwfile"
  # Inside the container the postgres user logs in by peer; over the network
  # everyone needs a scram-sha-256 password.
  initdb -D "$staging" -U postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pwfile"
  cat >>"$staging/pg_hba.conf" <<HBA
# Any container on the stack's network, with a password.
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
HBA
  pg_ctl -D "$staging" -o "-c listen_addresses=''" -w start >/dev/null
  app_password=$(secret "$POSTGRESQL_PASSWORD_FILE")
  # psql variables quote the values: no password or name is spliced into SQL.
  psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres \
    -v user="$POSTGRESQL_USERNAME" -v pass="$app_password" -v db="$POSTGRESQL_DATABASE" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'user', :'pass')
 WHERE :'user' <> 'postgres' \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') \gexec
SQL
  pg_ctl -D "$staging" -m fast -w stop >/dev/null
  mv "$staging" "$PGDATA"
}

[ -s "$PGDATA/PG_VERSION" ] || initialise
exec postgres -D "$PGDATA" -c listen_addresses='*'
