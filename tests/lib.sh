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
# report WHAT [NOTE]: prints the counts; fails when a check failed.
report() {
  echo "$1: $passed passed, $failed failed${2:+ ($2)}"
  [ "$failed" -eq 0 ]
}

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

# The image service $1 runs.
image_of() { docker service inspect "$1" --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' | sed 's/@.*//'; }

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

# --- Load under faults (tests/*-failover.sh) --------------------------------

readonly LOADGEN=target/release/loadgen
# Seconds of load before each fault.
readonly FAULT_AFTER=8

build_loadgen() { [ -x "$LOADGEN" ] || cargo build --quiet --release --locked -p loadgen; }

# Waits (up to a minute) until the script's primary() names a node other
# than $1; prints it.
wait_new_primary() {
  local old=$1 now
  for _ in $(seq 1 120); do
    now=$(primary || true)
    [ -n "$now" ] && [ "$now" != "$old" ] && { printf '%s' "$now"; return 0; }
    sleep 0.5
  done
  return 1
}

# start_load DIR SECONDS: votes at 100/s through Traefik in the background
# ($! is its pid), logging every answer to DIR/load.
start_load() {
  "$LOADGEN" run --url "https://vote.localhost:$HTTPS/api/vote" --connect "127.0.0.1:$HTTPS" \
    --cacert .secrets/tls/ca.crt --out "$1/load" --rate 100 --seconds "$2" >"$1/loadgen.out" 2>&1 &
}

# break_under_load NAME DIR OLD OLD_ID SAMPLER: votes for LOAD_SECONDS while
# SAMPLER (a function: OUT STOPFILE) samples into DIR/samples; after
# FAULT_AFTER seconds runs fault_NAME OLD OLD_ID and, when the script defines
# heal_NAME, runs it FREEZE_SECONDS later. Leaves in DIR: load, samples,
# fault (ms when the fault began), effective (ms when it had taken effect,
# unless fault_NAME wrote it), heal (ms, when healed).
break_under_load() {
  local name=$1 dir=$2 old=$3 old_id=$4 sampler_fn=$5 load sampler
  start_load "$dir" "$LOAD_SECONDS"
  load=$!
  "$sampler_fn" "$dir/samples" "$dir/stop" &
  sampler=$!
  sleep "$FAULT_AFTER"
  now_ms >"$dir/fault"
  "fault_$name" "$old" "$old_id"
  [ -s "$dir/effective" ] || now_ms >"$dir/effective"
  if declare -F "heal_$name" >/dev/null; then
    sleep "$FREEZE_SECONDS"
    now_ms >"$dir/heal"
    "heal_$name" "$old" "$old_id"
  fi
  wait "$load" || true
  touch "$dir/stop"
  wait "$sampler" || true
  printf '    load: %s\n' "$(cat "$dir/loadgen.out")"
}

# why_not_acked LOG SINCE_MS: when requests of load log LOG were not
# acknowledged, prints their answers (HTTP status, 0 for none) and what the
# vote service logged as the reason since SINCE_MS, counted, so that a
# failed check says why.
why_not_acked() {
  local log=$1 since=$2
  awk '$4 == 0 { n[$3]++ } END { for (s in n) printf "      %d answered %s\n", n[s], (s == 0 ? "nothing (timeout or reset)" : "HTTP " s) }' "$log"
  docker service logs --raw --since "$(date -u -d "@$((since / 1000 - 1))" +%FT%TZ)" app_vote 2>&1 \
    | grep -o '"vote not recorded".*' | grep -oE '"error":"[^"]*"' | sort | uniq -c | sed 's/^/      vote logged /' || true
}

# Waits until every acknowledged vote of log $1 is stored (the worker drains
# the queue); prints the audit's summary line; fails if it never is.
audit_votes() {
  local log=$1 stored="$1.stored" verdict
  for _ in $(seq 1 90); do
    stored_votes >"$stored" || true
    verdict=$("$LOADGEN" audit --log "$log" --stored "$stored") && { head -n 1 <<<"$verdict"; return 0; }
    sleep 1
  done
  printf '%s\n' "$verdict"
  return 1
}

# Freezes container $1 (docker pause). The kernel's freezer can fail while a
# process sits in an uninterruptible wait (postgres in fsync): tried again,
# each time from a thawed cgroup.
freeze() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    timeout 20 docker pause "$1" >/dev/null 2>&1 && return 0
    thaw_cgroup "$1"
    sleep 0.1
  done
  timeout 20 docker pause "$1" >/dev/null
}

# Thaws container $1 (docker unpause). Seen here: after a failed freeze,
# runc's resume hung with the cgroup v1 freezer left FROZEN, and Docker
# answered nothing about that container (not even inspect) until the cgroup
# was thawed directly. If Docker still calls it paused after that, it is
# killed (Swarm starts it again), and said so.
thaw() {
  timeout 20 docker unpause "$1" >/dev/null 2>&1 && return 0
  thaw_cgroup "$1"
  timeout 20 docker unpause "$1" >/dev/null 2>&1 && return 0
  [ "$(timeout 10 docker inspect --format '{{.State.Paused}}' "$1" 2>/dev/null)" = true ] || return 0
  echo "    Docker cannot unpause $1 (its freezer got stuck): killing it instead" >&2
  timeout 20 docker kill "$1" >/dev/null 2>&1 || true
}

# Writes THAWED into the cgroup v1 freezer of container $1 (an id or its
# prefix, as docker ps prints it), when it has one; never asks Docker.
thaw_cgroup() {
  local f
  for f in /sys/fs/cgroup/freezer/docker/"$1"*/freezer.state; do
    if [ -w "$f" ]; then echo THAWED >"$f" 2>/dev/null || true; fi
  done
}

# throttle_disk ID BPS IOPS: limits container ID's reads and writes on the
# disk that holds Docker's volumes to BPS bytes and IOPS operations a
# second (cgroup v1 blkio throttling, which holds the writes of fsync, as
# Redis's AOF and PostgreSQL's WAL do; 0 0 lifts the limit).
throttle_disk() {
  local dir dev f
  dir=$(compgen -G "/sys/fs/cgroup/blkio/docker/$(docker inspect --format '{{.Id}}' "$1")" \
    || compgen -G "/sys/fs/cgroup/blkio/system.slice/docker-$(docker inspect --format '{{.Id}}' "$1").scope") \
    || { echo "no blkio cgroup for container $1 (cgroup v1 only)" >&2; return 1; }
  dev=$(findmnt -no MAJ:MIN -T /var/lib/docker | head -n 1)
  # A partition's limit goes on its disk.
  [ -e "/sys/dev/block/$dev/partition" ] && dev=$(cat "/sys/dev/block/$dev/../dev")
  for f in read_bps_device write_bps_device; do echo "$dev $2" >"$dir/blkio.throttle.$f"; done
  for f in read_iops_device write_iops_device; do echo "$dev $3" >"$dir/blkio.throttle.$f"; done
}

# Drops every packet in and out of the container's network namespace but
# loopback: a partition, as when a host's network fails. (docker network
# disconnect/connect does not serve: the reconnected task is left out of
# Swarm's DNS, so nothing could ever reach it by name again.)
partition() {
  local pid action=$2
  pid=$(docker inspect --format '{{.State.Pid}}' "$1")
  nsenter -t "$pid" -n iptables "$action" INPUT ! -i lo -j DROP
  nsenter -t "$pid" -n iptables "$action" OUTPUT ! -o lo -j DROP
}

# cut_from ID ACTION PEER...: drops packets between container ID and the
# peers (service names, resolved inside the container), both ways, in the
# container's own network namespace (ACTION -I cuts, -D heals). The heal
# removes exactly the addresses the cut resolved (kept in a file per
# container), without asking the container again: a peer restarted during
# the cut has a new address, and the old one's rules would stay.
cut_from() {
  local id=$1 action=$2 pid peer ip ips=() memo
  shift 2
  memo=${TMPDIR:-/tmp}/swarmvote-cut-$id
  pid=$(docker inspect --format '{{.State.Pid}}' "$id")
  if [ "$action" = -D ] && [ -s "$memo" ]; then
    mapfile -t ips <"$memo"
  else
    for peer in "$@"; do
      mapfile -t -O "${#ips[@]}" ips < <(docker exec "$id" getent ahosts "$peer" | awk '{ print $1 }' | sort -u)
    done
  fi
  if [ "$action" = -I ]; then printf '%s\n' "${ips[@]}" >>"$memo"; else rm -f "$memo"; fi
  for ip in "${ips[@]}"; do
    nsenter -t "$pid" -n iptables "$action" INPUT -s "$ip" -j DROP
    nsenter -t "$pid" -n iptables "$action" OUTPUT -d "$ip" -j DROP
  done
}
