#!/usr/bin/env bash
# The fault harness against the deployed redis stack (tests/faults/lib.sh
# runs the schedule and the checks). Alone, against ./deploy.sh's
# deployment:
#   TEST_HTTPS_PORT=443 SEED=42 COUNT=40 tests/faults/redis.sh
# Settings (environment): SEED (default: random, printed; the same seed
# replays the same schedule), COUNT (faults, default 8), KINDS (default:
# every kind below), SWEEP_FROM_MS / SWEEP_TO_MS / SWEEP_STEP_MS (durations
# of the swept kinds, default 1000 / 10000 / 500), RECORD=1 (append the
# table to bench/RESULTS.md).
#
# Fault kinds (":swept" ones last a swept duration):
#   kill                        the primary's container killed (Swarm restarts it)
#   restart                     the primary stopped gracefully (Swarm restarts it)
#   freeze:swept                the primary frozen (docker pause)
#   cut:swept                   the primary cut off the network
#   cut-from-sentinels:swept    the primary cut off from the Sentinels only
#   starve:swept                the primary given 1 % of a CPU
#   replica-freeze:swept        a replica frozen
#   sentinel-freeze:swept       a Sentinel frozen (vote cannot hear it)
#   replica-cut-from-primary:swept  a replica cut off from the primary only
#   thaw-at-switch              the primary frozen, and thawed the moment a
#                               Sentinel names its successor (the window
#                               where acknowledged votes were lost)
#   break-new-primary           the primary frozen until a successor is
#                               named, then the successor killed at once
#                               (recovery counts from the kill)
#   sentinel-away-kill          one Sentinel taken away, then the primary killed
#   thaw-at-split               one Sentinel taken away, the primary frozen,
#                               and thawed the moment the two others' first
#                               tries end with no successor (a split vote;
#                               the retry comes 6 s later), or when one is
#                               named; the log says which
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/redis-lib.sh
source tests/redis-lib.sh
# shellcheck source=tests/faults/lib.sh
source tests/faults/lib.sh

readonly ALL_KINDS="kill,restart,freeze:swept,cut:swept,cut-from-sentinels:swept,starve:swept,replica-freeze:swept,replica-cut-from-primary:swept,sentinel-freeze:swept,thaw-at-switch,break-new-primary,sentinel-away-kill,thaw-at-split"

# The node a majority (2 of 3) of the Sentinels names.
tier_primary() { sentinel_majority; }

# Whole: three nodes online, the Sentinels agree, both proxies healthy.
tier_whole() {
  for _ in $(seq 1 90); do
    if wait_whole_once && [ "$(docker ps -q --filter label=com.docker.swarm.service.name=redis_redis-master --filter health=healthy | wc -l)" -eq 2 ] \
      && [ "$(sentinels_name | sort -u | wc -l)" -eq 1 ] && [ "$(sentinels_name | wc -l)" -eq 3 ]; then
      return 0
    fi
    sleep 1
  done
  return 1
}
# Both other nodes replicate from the primary, online and acknowledging.
# (A restarted replica may stay listed twice until its old link times out:
# distinct names count.)
wait_whole_once() {
  local p
  p=$(tier_primary)
  [ -n "$p" ] && [ "$(sentinel_cli -h "$p" INFO replication 2>/dev/null \
    | sed -nE 's/^slave[0-9]+:ip=([^,]+),.*state=online,.*lag=([0-9]+).*/\1 \2/p' \
    | awk '$2 <= 2 { print $1 }' | sort -u | wc -l)" -eq 2 ]
}

tier_drained() { queue_drained; }

# One sample of every proxy and node at once, from inside the stack: the
# nodes each HAProxy has in rotation, and which nodes say role:master.
# Appends "ms writers union masters": writers is how many distinct nodes
# are open to writes: in some proxy's rotation and saying role:master. (A
# proxy a poll behind the other may still route to an old primary the
# Sentinels already demoted: it refuses writes, so it is no writer; such
# samples are counted apart, see proxies_disagreed.)
tier_sample() {
  local line
  # shellcheck disable=SC2016 # expanded inside the container
  line=$(in_redis_stack 'union=""
    for ip in $(getent ahosts redis-master | awk "{ print \$1 }" | sort -u); do
      exec 3<>"/dev/tcp/$ip/8404" || continue
      printf "GET /redis;csv HTTP/1.0\r\n\r\n" >&3
      up=$(timeout 1 cat <&3 | awk -F, "\$1 == \"primary\" && \$2 ~ /^redis-/ && \$18 ~ /^UP/ { print \$2 }")
      exec 3<&-
      union="$union $up"
    done
    masters=""
    for n in redis-1 redis-2 redis-3; do
      timeout 1 redis-cli --no-auth-warning -h "$n" INFO replication 2>/dev/null | grep -q "^role:master" && masters="$masters,$n"
    done
    set -- $(tr " " "\n" <<<"$union" | grep . | sort -u)
    writers=0
    for n in "$@"; do [[ ",$masters," == *",$n,"* ]] && writers=$((writers + 1)); done
    printf "%s %s %s\n" "$writers" "$(IFS=,; echo "${*:-none}")" "${masters#,}"') || return 0
  [ -n "$line" ] && printf '%s %s\n' "$(now_ms)" "$line" >>"$1"
}

# The kinds that wait for the Sentinels to name a successor.
tier_fault_wait_s() {
  case "$1" in
    thaw-at-switch | break-new-primary | sentinel-away-kill | thaw-at-split) echo 15 ;;
    *) echo 0 ;;
  esac
}

# --- Faults: $1 the primary's name, $2 the duration in seconds. ---

id_of() { container_of "redis_$1"; }
# A replica of primary $1 (the first other node).
replica_of() { local n; for n in redis-1 redis-2 redis-3; do [ "$n" != "$1" ] && { echo "$n"; return; }; done; }

fault_kill() { docker kill "$(id_of "$1")" >/dev/null; }
# A graceful stop (SIGTERM); Swarm starts a new task. (docker restart would
# revive the old container beside Swarm's new one: two nodes of one name.)
fault_restart() { docker stop -t 10 "$(id_of "$1")" >/dev/null; }
fault_freeze() { local id; id=$(id_of "$1"); freeze "$id"; sleep "$2"; thaw "$id"; }
fault_cut() { local id; id=$(id_of "$1"); partition "$id" -I; sleep "$2"; partition "$id" -D; }
fault_cut_from_sentinels() {
  local id
  id=$(id_of "$1")
  cut_from "$id" -I sentinel-1 sentinel-2 sentinel-3
  sleep "$2"
  cut_from "$id" -D sentinel-1 sentinel-2 sentinel-3
}
fault_starve() {
  local id
  id=$(id_of "$1")
  docker update --cpus 0.01 "$id" >/dev/null
  sleep "$2"
  # --cpus 0 would change nothing: all the cores is no limit.
  docker update --cpus "$(nproc)" "$id" >/dev/null
}
fault_replica_freeze() { fault_freeze "$(replica_of "$1")" "$2"; }
fault_sentinel_freeze() { fault_freeze sentinel-1 "$2"; }
fault_replica_cut_from_primary() {
  local id
  id=$(id_of "$(replica_of "$1")")
  cut_from "$id" -I "$1"
  sleep "$2"
  cut_from "$id" -D "$1"
}
# Waits (30 s at most) until a Sentinel names another node than $1; prints it.
named_other_than() {
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'for _ in $(seq 1 600); do
      for s in sentinel-1 sentinel-2 sentinel-3; do
        n=$(timeout 0.5 redis-cli --no-auth-warning -h "$s" -p 26379 SENTINEL get-master-addr-by-name swarmvote 2>/dev/null | head -n 1 | tr -d "\r")
        [ -n "$n" ] && [ "$n" != "$1" ] && { echo "$n"; exit 0; }
      done
      sleep 0.05
    done; exit 1' "$1"
}
fault_thaw_at_switch() {
  local id
  id=$(id_of "$1")
  freeze "$id"
  named_other_than "$1" >/dev/null || true
  thaw "$id"
}
fault_break_new_primary() {
  local id new
  id=$(id_of "$1")
  freeze "$id"
  new=$(named_other_than "$1" || true)
  if [ -n "$new" ]; then
    # The second fault: recovery counts from here (the first one's is the
    # switch itself).
    now_ms >"$FAULT_DIR/effective"
    docker kill "$(id_of "$new")" >/dev/null
  fi
  thaw "$id"
}
fault_sentinel_away_kill() {
  docker service scale --detach=true redis_sentinel-3=0 >/dev/null
  sleep 2
  now_ms >"$FAULT_DIR/effective"
  docker kill "$(id_of "$1")" >/dev/null
  named_other_than "$1" >/dev/null || true
  docker service scale --detach=true redis_sentinel-3=1 >/dev/null
}
# Waits (30 s at most) while the two Sentinels left try to fail $1 over;
# prints "split" once both have tried and neither is still trying, with $1
# still named, or "switched" once one names another node.
split_or_switched() {
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'declare -A tried=()
    end=$((SECONDS + 30))
    while ((SECONDS < end)); do
      busy=0
      for s in sentinel-1 sentinel-2; do
        out=$(timeout 0.5 redis-cli --no-auth-warning -h "$s" -p 26379 SENTINEL master swarmvote 2>/dev/null | tr -d "\r")
        ip=$(sed -n "/^ip$/{n;p;}" <<<"$out")
        if [ -n "$ip" ] && [ "$ip" != "$1" ]; then echo switched; exit 0; fi
        case $(sed -n "/^flags$/{n;p;}" <<<"$out") in
          *failover_in_progress*) tried[$s]=1; busy=1 ;;
        esac
      done
      [ "${#tried[@]}" -eq 2 ] && [ "$busy" = 0 ] && { echo split; exit 0; }
      sleep 0.05
    done; exit 1' "$1"
}
fault_thaw_at_split() {
  local id how
  docker service scale --detach=true redis_sentinel-3=0 >/dev/null
  sleep 2
  id=$(id_of "$1")
  now_ms >"$FAULT_DIR/effective"
  freeze "$id"
  how=$(split_or_switched "$1" || echo "neither within 30 s")
  thaw "$id"
  docker service scale --detach=true redis_sentinel-3=1 >/dev/null
  echo "          thawed when the first tries ended: $how"
}

# Samples in which the proxies had two nodes in rotation, one of them not
# a primary (shown, not asserted: such a node refuses writes).
proxies_disagreed() {
  awk '{ if (split($3, n, ",") > 1 && $2 <= 1) d++ } END { printf "%d of %d", d, NR }' "$FAULT_ARTIFACTS/samples" 2>/dev/null || echo "? of ?"
}

main() {
  local seed=${SEED:-$((RANDOM * 32768 + RANDOM))}
  harness redis "$seed" "${COUNT:-8}" "${KINDS:-$ALL_KINDS}"
  echo "    proxies routing to two nodes, one of them no primary: $(proxies_disagreed) samples (shown, not asserted)"
  [ -z "${RECORD:-}" ] || record_results redis "$seed" "${KINDS:-$ALL_KINDS}"
  report "fault harness (redis)" "seed $seed; rows in $FAULT_ARTIFACTS/rows.txt"
}

main "$@"
