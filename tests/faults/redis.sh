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
#   disk-starve:swept           the primary's disk limited to 4 KiB and one
#                               operation a second (its AOF's fsync stalls)
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
#   thaw-at-retry               the primary frozen while no replica may be
#                               promoted (replica-priority 0), and thawed the
#                               moment the Sentinels' first try gives up for
#                               that reason; the replicas are promotable
#                               again from then on (a failover pending for
#                               its retry, as after a split vote)
#   kill-at-retry               the same with the primary killed: Swarm
#                               restarts it while the retry is pending
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/redis-lib.sh
source tests/redis-lib.sh
# shellcheck source=tests/faults/lib.sh
source tests/faults/lib.sh

readonly ALL_KINDS="kill,restart,freeze:swept,cut:swept,cut-from-sentinels:swept,starve:swept,disk-starve:swept,replica-freeze:swept,replica-cut-from-primary:swept,sentinel-freeze:swept,thaw-at-switch,break-new-primary,sentinel-away-kill,thaw-at-retry,kill-at-retry"

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

# One sample of every proxy and node at once, from inside the stack: prints
# "union masters", the nodes some HAProxy has in rotation and the nodes
# that say role:master (comma-separated, "none" for no node).
proxies_and_masters() {
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'union=""
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
    union=$(tr " " "\n" <<<"$union" | grep . | sort -u | paste -sd ,)
    masters=${masters#,}
    printf "%s %s\n" "${union:-none}" "${masters:-none}"'
}

# How many nodes are open to writes: in some proxy's rotation ($1) and
# saying role:master ($2). (A proxy a poll behind the other may still route
# to an old primary the Sentinels already demoted: it refuses writes, so it
# is no writer; such samples are counted apart, see proxies_disagreed.)
writers_of_sample() {
  awk -v union="$1" -v masters="$2" 'BEGIN {
      n = split(masters, m, ","); for (i = 1; i <= n; i++) master[m[i]] = 1
      n = split(union, u, ","); w = 0; for (i = 1; i <= n; i++) if (u[i] in master) w++
      print w }'
}

# Appends "ms writers union masters" to $1.
tier_sample() {
  local union masters
  read -r union masters < <(proxies_and_masters) || return 0
  [ -n "$masters" ] && printf '%s %s %s %s\n' "$(now_ms)" "$(writers_of_sample "$union" "$masters")" "$union" "$masters" >>"$1"
}

# The one-writer check must be able to fail. A replica told to stop
# replicating says role:master beside the primary (the guard keeps it out
# of rotation); a live sample must see both masters, and the harness's
# check must fail on the samples with one more line in which a proxy routes
# to both. The replica then follows the primary again.
second_writer_fails() {
  local p r line union masters
  p=$(tier_primary)
  r=$(replica_of "$p")
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'redis-cli --no-auth-warning -h "$1" REPLICAOF NO ONE' "$r" >/dev/null
  line=$(proxies_and_masters || true)
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'redis-cli --no-auth-warning -h "$1" REPLICAOF "$2" 6379' "$r" "$p" >/dev/null
  read -r union masters <<<"$line"
  check "a live sample sees $r, told to stop replicating, say role:master beside $p (masters: ${masters:-?}; in rotation: ${union:-?})" \
    test "${masters:-}" = "$(printf '%s\n' "$p" "$r" | sort | paste -sd ,)"
  cp "$FAULT_ARTIFACTS/samples" "$FAULT_ARTIFACTS/samples.second-writer"
  printf '%s %s %s %s\n' "$(now_ms)" "$(writers_of_sample "$masters" "$masters")" "$masters" "$masters" >>"$FAULT_ARTIFACTS/samples.second-writer"
  check "the one-writer check fails on the samples plus one in which a proxy routes to both" \
    test "$(most_writers "$FAULT_ARTIFACTS/samples.second-writer")" -eq 2
  check "$r follows $p again" wait_replica_of "$r" "$p"
}

# The kinds that wait for the Sentinels to name a successor.
tier_fault_wait_s() {
  case "$1" in
    thaw-at-switch | break-new-primary | sentinel-away-kill) echo 15 ;;
    thaw-at-retry | kill-at-retry) echo 30 ;;
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
# The primary's disk starved: 4 KiB and one operation a second.
fault_disk_starve() {
  local id
  id=$(id_of "$1")
  throttle_disk "$id" 4096 1
  sleep "$2"
  throttle_disk "$id" 0 0
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
# Sets replica-priority $2 on every node but primary $1. Sentinel never
# promotes a replica of priority 0. With 0, waits (30 s at most) until every
# Sentinel has read it (they read a replica's INFO every 10 s, every second
# once the primary is down).
replicas_priority() {
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'for n in redis-1 redis-2 redis-3; do
      [ "$n" = "$1" ] || timeout 2 redis-cli --no-auth-warning -h "$n" CONFIG SET replica-priority "$2" >/dev/null
    done
    [ "$2" = 0 ] || exit 0
    for _ in $(seq 1 300); do
      seen=0
      for s in sentinel-1 sentinel-2 sentinel-3; do
        timeout 0.5 redis-cli --no-auth-warning -h "$s" -p 26379 SENTINEL replicas swarmvote 2>/dev/null | tr -d "\r" \
          | awk "/^slave-priority\$/ { getline; if (\$0 != 0) bad = 1; n++ } END { exit !(n >= 2 && !bad) }" && seen=$((seen + 1))
      done
      [ "$seen" -eq 3 ] && exit 0
      sleep 0.1
    done; exit 1' "$1" "$2"
}
# at_retry P BREAK MEND: with no replica of P promotable, breaks P (the
# command BREAK, given P's container), waits (30 s at most) for the
# Sentinels' first failover try to give up for want of a replica to
# promote, makes the replicas promotable again and runs MEND (given the
# container): the moment a failover is pending, its retry 2 x
# failover-timeout (6 s) after the first try. This is the window of a
# failover delayed by a split vote, which cannot be brought about at will
# (a Sentinel votes for the first other one that asks it in an epoch).
at_retry() {
  local p=$1 break=$2 mend=$3 id how
  id=$(id_of "$p")
  if ! replicas_priority "$p" 0; then
    replicas_priority "$p" 100
    echo "          the Sentinels did not see the replicas unpromotable within 30 s: no fault"
    return 0
  fi
  # Every Sentinel's abort event, subscribed to before the fault.
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'd=$(mktemp -d)
    for s in sentinel-1 sentinel-2 sentinel-3; do
      timeout 40 redis-cli --no-auth-warning -h "$s" -p 26379 SUBSCRIBE -failover-abort-no-good-slave >"$d/$s" 2>&1 &
    done
    sleep 0.5; echo subscribed
    for _ in $(seq 1 300); do
      grep -qx message "$d"/* && { echo aborted; kill $(jobs -p) 2>/dev/null; exit 0; }
      sleep 0.1
    done; kill $(jobs -p) 2>/dev/null; exit 1' >"$FAULT_DIR/retry" &
  local watcher=$!
  for _ in $(seq 1 50); do grep -q subscribed "$FAULT_DIR/retry" 2>/dev/null && break; sleep 0.1; done
  now_ms >"$FAULT_DIR/effective"
  $break "$id"
  wait "$watcher" || true
  how=$(grep -q aborted "$FAULT_DIR/retry" && echo "the first try gave up after $(($(now_ms) - $(cat "$FAULT_DIR/effective"))) ms" || echo "no try gave up within 30 s")
  replicas_priority "$p" 100
  $mend "$id"
  echo "          $how; replicas promotable again, then $mend"
}
kill_container() { docker kill "$1" >/dev/null; }
no_op() { :; }
fault_thaw_at_retry() { at_retry "$1" freeze thaw; }
fault_kill_at_retry() { at_retry "$1" kill_container no_op; }

# Samples in which the proxies had two nodes in rotation, one of them not
# a primary (shown, not asserted: such a node refuses writes).
proxies_disagreed() {
  awk '{ if (split($3, n, ",") > 1 && $2 <= 1) d++ } END { printf "%d of %d", d, NR }' "$FAULT_ARTIFACTS/samples" 2>/dev/null || echo "? of ?"
}

main() {
  local seed=${SEED:-$((RANDOM * 32768 + RANDOM))}
  harness redis "$seed" "${COUNT:-8}" "${KINDS:-$ALL_KINDS}"
  second_writer_fails
  echo "    proxies routing to two nodes, one of them no primary: $(proxies_disagreed) samples (shown, not asserted)"
  [ -z "${RECORD:-}" ] || record_results redis "$seed" "${KINDS:-$ALL_KINDS}"
  report "fault harness (redis)" "seed $seed; rows in $FAULT_ARTIFACTS/rows.txt"
}

main "$@"
