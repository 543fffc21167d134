#!/usr/bin/env bash
# The fault harness against the deployed postgres stack (tests/faults/lib.sh
# runs the schedule and the checks). Alone, against ./deploy.sh's
# deployment:
#   TEST_HTTPS_PORT=443 SEED=42 COUNT=20 tests/faults/postgres.sh
# Settings (environment): SEED (default: random, printed; the same seed
# replays the same schedule), COUNT (faults, default 6), KINDS (default:
# every kind below), SWEEP_FROM_MS / SWEEP_TO_MS / SWEEP_STEP_MS (durations
# of the swept kinds, default 2000 / 30000 / 500), RECORD=1 (append the
# table to bench/RESULTS.md).
#
# A fault's recovery here is the time until the worker commits again (votes
# wait in Redis meanwhile, so the vote path itself does not stop); the goal
# is 15 s (RECOVERY_GOAL_MS), recorded, not asserted.
#
# Fault kinds (":swept" ones last a swept duration):
#   kill                    the primary's container killed (Swarm restarts it)
#   freeze:swept            the primary frozen (docker pause)
#   cut:swept               the primary cut off the network
#   cut-from-peers:swept    the primary cut off from the other PostgreSQL
#                           nodes only (Pgpool-II and the worker still reach it)
#   standby-freeze:swept    a standby frozen
#   thaw-at-promotion       the primary frozen, and thawed the moment another
#                           node runs as primary (where a sibling still
#                           attached to it could confirm its commits)
#   break-new-primary       the primary frozen until another node is promoted,
#                           then that new primary killed at once
#   pgpool-restart          one of the two Pgpool-II containers killed (Swarm
#                           restarts it; the other serves on)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/redis-lib.sh
source tests/redis-lib.sh
# shellcheck source=tests/postgres-lib.sh
source tests/postgres-lib.sh
# shellcheck source=tests/faults/lib.sh
source tests/faults/lib.sh

readonly ALL_KINDS="kill,freeze:swept,cut:swept,cut-from-peers:swept,standby-freeze:swept,thaw-at-promotion,break-new-primary,pgpool-restart"
export RECOVERY_GOAL_MS=${RECOVERY_GOAL_MS:-15000}

# The primary by the tier's rule: of the nodes running as primary, the one
# on the highest timeline.
tier_primary() {
  node_roles | awk -F'[=/]' '$2 == "primary" && $3 + 0 > best { best = $3 + 0; name = $1 } END { if (name) print name }'
}

# Whole: one primary streaming to both standbys, repmgrd and the failover
# watcher on every node, repmgr's metadata naming that primary, and
# every Pgpool-II instance with all three nodes up and that primary as its
# own.
tier_whole_once() {
  local p
  p=$(tier_primary)
  [ -n "$p" ] || return 1
  [ "$(node_psql "${p#pg-}" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null)" = 2 ] || return 1
  watchers_everywhere || return 1
  [ "$(node_psql "${p#pg-}" -d repmgr -c "SELECT string_agg(node_name, ',') FROM repmgr.nodes WHERE type = 'primary' AND active" 2>/dev/null)" = "$p" ] || return 1
  pools_name "$p"
}
tier_whole() {
  for _ in $(seq 1 180); do
    tier_whole_once && return 0
    sleep 1
  done
  return 1
}

# The vote queue lives in Redis.
tier_drained() { queue_drained; }

# One sample of every node and every Pgpool-II instance: "ms WRITERS
# pg-1=ROLE pg-2=ROLE pg-3=ROLE pools=P1,P2" (see writers_of: above 1 is
# wrong; pool_routes reads the rest).
tier_sample() {
  local roles
  roles=$(node_roles | tr '\n' ' ')
  printf '%s %s %s%s\n' "$(now_ms)" "$(writers_of "$roles")" "$roles" "$(pool_primaries)" >>"$1"
}

tier_fault_wait_s() {
  case "$1" in
    thaw-at-promotion | break-new-primary) echo 30 ;;
    *) echo 0 ;;
  esac
}

# Ms from $1 until the worker's first commit of a transaction that began
# after it (votes.updated_at), read on the primary itself; waits up to 60 s.
tier_recovery_ms() {
  local p ms
  for _ in $(seq 1 60); do
    p=$(tier_primary)
    ms=$([ -z "$p" ] || node_psql "${p#pg-}" -c "SELECT round(extract(epoch FROM min(updated_at)) * 1000 - $1)::bigint
        FROM votes WHERE updated_at > to_timestamp($1 / 1000.0)" 2>/dev/null || true)
    [ -n "$ms" ] && { echo "$ms"; return 0; }
    sleep 1
  done
  return 1
}

# --- Faults: $1 the primary's name, $2 the duration in seconds. ---

id_of() { container_of "postgres_$1"; }
# A standby of primary $1 (the first other node).
standby_of() { local n; for n in pg-1 pg-2 pg-3; do [ "$n" != "$1" ] && { echo "$n"; return; }; done; }
others_of() { local n; for n in pg-1 pg-2 pg-3; do [ "$n" != "$1" ] && echo "$n"; done; }

# Recovery counts from the moment docker kill returned: counted from before,
# a batch begun while the kill was under way and committed on the primary
# it was about to kill read as a recovery of 24 to 110 ms (seed 20261209).
fault_kill() { docker kill "$(id_of "$1")" >/dev/null; now_ms >"$FAULT_DIR/effective"; }
# Recovery counts from the moment the fault is in place (effective): a batch
# that began just before and committed while docker pause was still under
# way read as a recovery of a few ms.
fault_freeze() { local id; id=$(id_of "$1"); freeze "$id"; now_ms >"$FAULT_DIR/effective"; sleep "$2"; thaw "$id"; }
fault_cut() { local id; id=$(id_of "$1"); partition "$id" -I; now_ms >"$FAULT_DIR/effective"; sleep "$2"; partition "$id" -D; }
fault_cut_from_peers() {
  local id
  id=$(id_of "$1")
  # shellcheck disable=SC2046 # one name per word
  cut_from "$id" -I $(others_of "$1")
  now_ms >"$FAULT_DIR/effective"
  sleep "$2"
  # shellcheck disable=SC2046
  cut_from "$id" -D $(others_of "$1")
}
fault_standby_freeze() { fault_freeze "$(standby_of "$1")" "$2"; }
fault_pgpool_restart() { docker kill "$(container_of postgres_db)" >/dev/null; now_ms >"$FAULT_DIR/effective"; }

# Waits (60 s at most) until a node other than $1 runs as primary; prints it.
promoted_other_than() {
  local n
  for _ in $(seq 1 300); do
    for n in $(others_of "$1"); do
      if [ "$(timeout 2 docker exec -u postgres "$(id_of "$n")" psql -X -h /var/run/postgresql -d postgres -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; then
        echo "$n"
        return 0
      fi
    done
  done
  return 1
}
fault_thaw_at_promotion() {
  local id
  id=$(id_of "$1")
  freeze "$id"
  now_ms >"$FAULT_DIR/effective"
  promoted_other_than "$1" >/dev/null || true
  thaw "$id"
}
fault_break_new_primary() {
  local id new
  id=$(id_of "$1")
  freeze "$id"
  new=$(promoted_other_than "$1" || true)
  # Recovery counts from the second fault, as tests/faults/redis.sh does.
  [ -z "$new" ] || { docker kill "$(id_of "$new")" >/dev/null; now_ms >"$FAULT_DIR/effective"; }
  thaw "$id"
}

main() {
  local seed=${SEED:-$((RANDOM * 32768 + RANDOM))} stale split_
  export SWEEP_FROM_MS=${SWEEP_FROM_MS:-2000} SWEEP_TO_MS=${SWEEP_TO_MS:-30000} SWEEP_STEP_MS=${SWEEP_STEP_MS:-500}
  harness postgres "$seed" "${COUNT:-6}" "${KINDS:-$ALL_KINDS}"
  read -r stale split_ < <(pool_routes "$FAULT_ARTIFACTS/samples" 2>/dev/null || echo "? ?")
  echo "    Pgpool-II: an instance routed writes to a superseded primary in $stale of $(wc -l <"$FAULT_ARTIFACTS/samples") samples; two instances named two running primaries in $split_ (shown, not asserted)"
  [ -z "${RECORD:-}" ] || record_results postgres "$seed" "${KINDS:-$ALL_KINDS}"
  report "fault harness (postgres)" "seed $seed; rows in $FAULT_ARTIFACTS/rows.txt"
}

main "$@"
