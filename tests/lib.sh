#!/usr/bin/env bash
# Helpers shared by the deployment and failover tests: counting checks,
# HTTPS through Traefik, and reaching into the stacks' containers. Sourced.

ARTIFACTS=${ARTIFACTS:-tests/artifacts}
mkdir -p "$ARTIFACTS"
# Traefik's ports for the tests, so a deployment on 80/443 is not disturbed.
# shellcheck disable=SC2034 # used by the scripts that source this file
HTTP=${TEST_HTTP_PORT:-18080}
HTTPS=${TEST_HTTPS_PORT:-18443}

passed=0
failed=0
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
# fails COMMAND...: succeeds when the command fails.
fails() { ! "$@"; }

# curl through Traefik on 127.0.0.1 for host $1 (vote, result), path $2.
https() {
  local host="$1.localhost" path=$2
  shift 2
  curl -sS --max-time 10 --cacert .secrets/tls/ca.crt --resolve "$host:$HTTPS:127.0.0.1" "$@" "https://$host:$HTTPS$path"
}

# Prints the id of a running container of service $1 (e.g. redis_redis-1).
container_of() {
  docker ps -q --filter "label=com.docker.swarm.service.name=${1:?missing service}" | head -n 1
}

# Runs psql as postgres on the primary (through pg-haproxy's primary
# endpoint), from whichever PostgreSQL node container runs; "$@" are psql's.
primary_psql() {
  local id n
  for n in 1 2 3; do
    id=$(container_of "postgres_pg-$n")
    [ -n "$id" ] && break
  done
  docker exec -u postgres "$id" psql -X -h pg-haproxy -d votes -At "$@"
}

# Prints "voter vote" for every stored vote.
stored_votes() {
  primary_psql -F ' ' -c "SELECT voter_id, vote FROM votes" 2>/dev/null
}

# Milliseconds since the Unix epoch, as the load generator logs them.
now_ms() { date +%s%3N; }
