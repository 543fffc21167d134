#!/usr/bin/env bash
# Measures what high availability costs the worker: votes per second drained
# from the Redis stream into PostgreSQL through Pgpool-II ("db") onto the
# repmgr cluster, whose commits wait for a standby (synchronous replication),
# versus the same workers writing straight to a single PostgreSQL (same
# image, same settings, no standby), in interleaved rounds of the same run.
# Appends a table to bench/RESULTS.md. Deploys first (./deploy.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VOTES=100000
ROUNDS=2

usage() {
  cat <<'USAGE'
Usage: bench/postgres-ha.sh [--no-record] [--help]

Deploys (./deploy.sh), starts a single PostgreSQL (bench_pg, removed at the
end), and in each round fills the vote stream with 100,000 votes while the
workers are stopped, starts the 2 workers and times the drain: once through
db (Pgpool-II, synchronous replication), once straight to bench_pg. Prints
the lowest ratio and appends the table to bench/RESULTS.md unless
--no-record. The votes it queues are made-up voters that stay in the
deployment's tally: run it on a test deployment.
USAGE
}

# shellcheck source=bench/deployed.sh
source bench/deployed.sh
bench_args "$@"
bench_prepare >/dev/null || exit 1

inspect() { docker service inspect --format "$2" "$1"; }
pg_image=$(inspect postgres_pg-1 '{{.Spec.TaskTemplate.ContainerSpec.Image}}')
workers=$(inspect app_worker '{{.Spec.Mode.Replicated.Replicas}}')
# Mass insertion (redis-cli --pipe does not authenticate from REDISCLI_AUTH:
# the stream starts with an AUTH command, made inside the container).
redis_pipe() {
  local id
  id=$(docker ps -q --filter label=com.docker.swarm.service.name=redis_sentinel-1 | head -n 1)
  # shellcheck disable=SC2016 # expanded inside the container
  docker exec -i "$id" bash -c '{ printf "AUTH %s\r\n" "$(cat /run/secrets/redis_password)"; cat; } | redis-cli -h redis-master --pipe'
}

cleanup() {
  docker service update --detach=true --env-add POSTGRESQL_HOST=db app_worker >/dev/null 2>&1 || true
  docker service scale --detach=true "app_worker=$workers" >/dev/null 2>&1 || true
  docker service rm bench_pg >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "postgres-ha.sh: starting a single PostgreSQL (bench_pg)" >&2
# shellcheck disable=SC2016 # expanded inside the container
docker service create --detach=false --quiet --name bench_pg --network pg_net --endpoint-mode dnsrr \
  --user postgres --entrypoint bash "$pg_image" -c '
    set -e
    initdb -D /tmp/pg -U postgres --auth=trust >/dev/null
    echo "host all all all trust" >>/tmp/pg/pg_hba.conf
    pg_ctl -D /tmp/pg -o "-c listen_addresses=" -w start >/dev/null
    psql -q -U postgres -c "CREATE ROLE votes LOGIN" -c "CREATE DATABASE votes OWNER votes"
    pg_ctl -D /tmp/pg -m fast -w stop >/dev/null
    exec postgres -D /tmp/pg -c listen_addresses="*" -c shared_buffers=128MB' >/dev/null

# The consumer group's count of entries read (monotonic; it can lag
# behind entries-added across a failover, so only its changes are used).
entries_read() { redis_cli XINFO GROUPS votes | tr -d '\r' | awk 'f && !done { print; done = 1 } /^entries-read$/ { f = 1 }'; }

# The stream's count of entries ever added (monotonic).
entries_added() { redis_cli XINFO STREAM votes | tr -d '\r' | awk 'f && !done { print; done = 1 } /^entries-added$/ { f = 1 }'; }

# Votes per second of one drain of VOTES entries into host $1 (of those the
# stream took: a connection cut mid-way would queue fewer).
drain() {
  local host=$1 start read t0="" n0=0 now added
  docker service scale --detach=false app_worker=0 >/dev/null 2>&1
  docker service update --detach=false --quiet --env-add "POSTGRESQL_HOST=$host" app_worker >/dev/null 2>&1
  start=$(entries_read)
  added=$(entries_added)
  awk -v n="$VOTES" -v r="$RANDOM" 'BEGIN { srand(r); for (i = 0; i < n; i++) {
      printf "XADD votes * voter_id %08x", i
      for (j = 0; j < 6; j++) printf "%04x", int(rand() * 65536)
      printf " vote %s\n", (i % 2 ? "a" : "b") } }' \
    | redis_pipe >/dev/null
  added=$(($(entries_added) - added))
  [ "$added" -gt 0 ] || { echo "postgres-ha.sh: no vote could be queued" >&2; exit 1; }
  docker service scale --detach=true "app_worker=$workers" >/dev/null
  while :; do
    read=$(( $(entries_read) - start ))
    now=$(date +%s%3N)
    if [ -z "$t0" ] && [ "$read" -gt 0 ]; then t0=$now n0=$read; fi
    if drained; then
      awk -v n=$((added - n0)) -v ms=$((now - t0)) 'BEGIN { printf "%.0f", n * 1000 / (ms > 0 ? ms : 1) }'
      return
    fi
    sleep 0.2
  done
}

ratios=()
rows=""
for round in $(seq 1 "$ROUNDS"); do
  single=$(drain bench_pg)
  ha=$(drain db)
  ratio=$(awk -v h="$ha" -v s="$single" 'BEGIN {printf "%.2f", h / s}')
  ratios+=("$ratio")
  rows+="| $round | $ha | $single | ${ratio}× |"$'\n'
done
lowest=$(printf '%s\n' "${ratios[@]}" | sort -n | head -n 1)

table=$(cat <<TABLE
### Worker through Pgpool-II + synchronous replication vs a single PostgreSQL — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(bench_commit)

\`bench/postgres-ha.sh\` on $(nproc) cores; $VOTES votes queued with the workers stopped, then drained by $workers workers (batch 1000); votes/s from the first to the last entry acknowledged.

| round | through db (Pgpool-II, repmgr cluster, sync commit) votes/s | single PostgreSQL votes/s | ratio |
|---|---|---|---|
$rows
Lowest ratio: **${lowest}×**.
TABLE
)
printf '%s\n' "$table"
[ -z "$record" ] || printf '\n%s\n' "$table" >>bench/RESULTS.md
