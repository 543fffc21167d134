#!/usr/bin/env bash
# What the benchmarks of the deployed system share (bench/edge.sh,
# bench/redis-ha.sh, bench/postgres-ha.sh): their one option, wrk, a
# deployment that is up to date, the URL of Traefik's HTTPS port, the vote
# queue's state, and CPU time by service. Sourced; the script defines
# usage().

BENCH=$(basename "$0")

# Reads the arguments: sets record ("" with --no-record); exits on --help.
# shellcheck disable=SC2034 # read by the sourcing script
bench_args() {
  record=1
  case "${1:-}" in
    "") ;;
    --no-record) record="" ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 1 ;;
  esac
}

# Checks for wrk, deploys (./deploy.sh is idempotent), prints Traefik's
# HTTPS URL on 127.0.0.1: url=$(bench_prepare) || exit 1
bench_prepare() {
  command -v wrk >/dev/null 2>&1 || { echo "$BENCH: wrk is missing (apt-get install wrk)" >&2; exit 1; }
  echo "$BENCH: deploying (./deploy.sh)" >&2
  ./deploy.sh >/dev/null 2>&1 || { echo "$BENCH: ./deploy.sh failed; run it to see why" >&2; exit 1; }
  local env_file=${SWARMVOTE_ENV_FILE:-.env} port=""
  # wrk sends from this host: without trust, the per-client limits at the
  # edge would measure themselves (429s), not the system.
  grep -qE '^TRUSTED_SOURCES=.*127\.0\.0\.1' "$env_file" 2>/dev/null \
    || { echo "$BENCH: add TRUSTED_SOURCES=127.0.0.1 to $env_file: the load comes from this host, and the per-client limits at the edge would throttle it" >&2; exit 1; }
  [ ! -f "$env_file" ] || port=$(sed -nE 's/^HTTPS_PORT=([0-9]+)$/\1/p' "$env_file" | tail -n 1)
  printf 'https://127.0.0.1:%s\n' "${port:-443}"
}

# Runs redis-cli against redis-master from a Sentinel's container.
redis_cli() {
  local id
  id=$(docker ps -q --filter label=com.docker.swarm.service.name=redis_sentinel-1 | head -n 1)
  # shellcheck disable=SC2016 # expanded inside the container
  docker exec -i "$id" bash -c 'REDISCLI_AUTH=$(cat /run/secrets/redis_password) redis-cli --no-auth-warning -h redis-master "$@"' _ "$@"
}

# Whether the workers have stored every queued vote: the group was given
# the stream's last entry, and none is pending. (entries-read can drift
# from entries-added, e.g. across a failover, so it is not compared.)
drained() {
  local last delivered
  last=$(redis_cli XINFO STREAM votes | tr -d '\r' | awk 'f { print; exit } /^last-generated-id$/ { f = 1 }')
  delivered=$(redis_cli XINFO GROUPS votes | tr -d '\r' | awk 'f { print; exit } /^last-delivered-id$/ { f = 1 }')
  [ -n "$last" ] && [ "$last" = "$delivered" ] \
    && [ "$(redis_cli XPENDING votes workers | tr -d '\r' | awk 'NR == 1')" = 0 ]
}

# Waits (at most 120 s) until the workers caught up, so that the next round
# does not share the machine with the last one's leftovers. Each poll is
# three docker execs, so it polls twice a second, not faster.
wait_drained() {
  local deadline=$((SECONDS + 120))
  until drained; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "$BENCH: the workers did not catch up within 120 s" >&2; return 1; }
    sleep 0.5
  done
}

# CPU seconds used by each running container, one "service.slot seconds"
# line each (cgroup v1 or v2), and "machine seconds" for all of it.
cpu_seconds() {
  local id name file
  for id in $(docker ps -q --no-trunc); do
    name=$(docker inspect --format '{{.Name}}' "$id" | sed -E 's|^/||; s/\.([0-9]+)\.[a-z0-9]+$/.\1/')
    for file in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat"; do
      [ -r "$file" ] || continue
      awk -v n="$name" '/^usage_usec/ { printf "%s %.3f\n", n, $2 / 1e6; exit } /^[0-9]+$/ { printf "%s %.3f\n", n, $1 / 1e9; exit }' "$file"
      break
    done
  done
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "machine %.3f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# Milliseconds of CPU per 1000 requests between two cpu_seconds snapshots
# $1 and $2 (files) over $3 requests: one "name ms" line for each app
# service and each other stack, biggest first; "other" is what no container
# used (wrk, the kernel's networking, Docker).
cpu_per_request() {
  join <(sort "$1") <(sort "$2") | awk -v n="$3" '
    { d = $3 - $2; if ($1 == "machine") { all = d; next }
      s = $1; sub(/\.[0-9]+$/, "", s); if (s !~ /^app_/) sub(/_.*/, " stack", s)
      by[s] += d; used += d }
    END { by["other"] = all - used; for (s in by) printf "%s|%.0f\n", s, by[s] * 1e6 / n }' | sort -t'|' -k2 -rn
}

# The commit measured, and whether the work tree differed from it.
bench_commit() {
  printf '%s' "$(git rev-parse --short HEAD)"
  git diff --quiet HEAD 2>/dev/null || printf ' + uncommitted changes'
}
