#!/usr/bin/env bash
# The fault harness's tier-independent part: a seeded schedule of faults,
# each under its own steady vote load, then the checks that must always
# hold. Sourced by tests/faults/<tier>.sh after tests/lib.sh; the tier
# script defines:
#   tier_whole          succeeds once the tier is whole (all nodes back)
#   tier_primary        prints the node the tier's authority names primary
#   tier_drained        succeeds once every queued vote was delivered and
#                       acknowledged (read on the nodes themselves)
#   tier_fault_wait_s K how long fault K may wait for a failover (seconds)
#   tier_sample OUT     appends one "ms writers..." line to OUT (all proxies
#                       and nodes at one moment; see tier_writers_ok)
#   fault_KIND P D      (dashes of the kind as underscores) breaks primary P for D seconds (0: instantaneous),
#                       healing before it returns; may write $FAULT_DIR/effective
# and may define:
#   tier_recovery_ms F  prints the ms from F (ms when the fault took effect)
#                       until the tier served again, where that is not the
#                       vote path's own recovery (PostgreSQL: the worker's
#                       first commit); default: loadgen's, from the load log
#
# What a run leaves in $FAULT_ARTIFACTS: the schedule, each fault's load log,
# the samples, the stored votes read from every PostgreSQL node, and
# rows.txt: "kind duration_ms primary recovery_ms not_acked promoted".

FAULT_ARTIFACTS=${FAULT_ARTIFACTS:-$ARTIFACTS/faults}
# Seconds of load before and after each fault's heal.
readonly LOAD_BEFORE=${LOAD_BEFORE:-3} LOAD_AFTER=${LOAD_AFTER:-12}
# How long the queue may take to drain once the faults are over.
readonly DRAIN_BOUND_S=${DRAIN_BOUND_S:-120}

# Runs psql as postgres on PostgreSQL node $1 (1..3) itself; "$@" are psql's.
node_psql() {
  local n=$1 id
  shift
  id=$(container_of "postgres_pg-$n")
  [ -n "$id" ] || return 1
  docker exec -u postgres "$id" psql -X -h /var/run/postgresql -d votes -At "$@"
}

# Reads "voter vote" from every PostgreSQL node into DIR/stored.N; prints
# the numbers of the nodes that answered as primary, one per line.
read_every_node() {
  local dir=$1 n
  for n in 1 2 3; do
    node_psql "$n" -F ' ' -c "SELECT voter_id, vote FROM votes ORDER BY voter_id" >"$dir/stored.$n" 2>/dev/null || rm -f "$dir/stored.$n"
    [ "$(node_psql "$n" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && echo "$n"
  done
  return 0
}

# The audit, read from each node directly once the queue has drained: the
# primary's rows pass the audit of every load log, and every standby holds
# exactly the primary's rows (polled: a standby may be a moment behind).
audit_every_node() {
  local dir=$1 primaries n verdict
  cat "$dir"/load.* >"$dir/all-load" 2>/dev/null
  for _ in $(seq 1 30); do
    mapfile -t primaries < <(read_every_node "$dir")
    if [ "${#primaries[@]}" -eq 1 ]; then
      local same=1
      for n in 1 2 3; do
        [ "$n" = "${primaries[0]}" ] && continue
        cmp -s "$dir/stored.${primaries[0]}" "$dir/stored.$n" || same=0
      done
      [ "$same" = 1 ] && break
    fi
    sleep 1
  done
  check "one PostgreSQL node answers as primary (${primaries[*]:-none})" test "${#primaries[@]}" -eq 1
  [ "${#primaries[@]}" -eq 1 ] || return 0
  for n in 1 2 3; do
    [ "$n" = "${primaries[0]}" ] && continue
    check "pg-$n holds exactly the primary's rows" cmp -s "$dir/stored.${primaries[0]}" "$dir/stored.$n"
  done
  if verdict=$("$LOADGEN" audit --log "$dir/all-load" --stored "$dir/stored.${primaries[0]}"); then
    ok "no acknowledged vote lost or overridden, read from pg-${primaries[0]} ($(head -n 1 <<<"$verdict"))"
  else
    not_ok "acknowledged votes lost or overridden:"
    printf '%s\n' "$verdict" | sed 's/^/      /'
  fi
  # The audit must be able to fail: a copy with one acknowledged voter's row
  # removed and another's vote flipped is reported as damaged.
  damaged_copy_fails "$dir" "$dir/stored.${primaries[0]}"
}

# Damages a copy of the stored votes and checks the audit reports both.
damaged_copy_fails() {
  local dir=$1 stored=$2 voters out
  # Voters with one request, acknowledged: their stored vote must be it.
  mapfile -t voters < <(awk '{ n[$5]++; a[$5] = $4 } END { for (v in n) if (n[v] == 1 && a[v] == 1) print v }' \
    "$dir/all-load" | sort | head -n 2)
  [ "${#voters[@]}" -eq 2 ] || { not_ok "the damaged-copy check found no two acknowledged voters"; return 0; }
  awk -v gone="${voters[0]}" -v flip="${voters[1]}" '
    $1 == gone { next }
    $1 == flip { $2 = ($2 == "a" ? "b" : "a") }
    { print }' "$stored" >"$dir/stored.damaged"
  out=$("$LOADGEN" audit --log "$dir/all-load" --stored "$dir/stored.damaged" || true)
  check "the audit reports a damaged copy (one row removed, one flipped): $(head -n 1 <<<"$out")" \
    grep -q 'lost 1 / wrong 1$' <<<"$out"
}

# The most writers any sample of file $1 counted ("ms writers ..." lines).
most_writers() {
  awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$1" 2>/dev/null || echo '?'
}

# Samples the tier every ~0.3 s into $1 until file $2 exists.
sample_loop() {
  while [ ! -e "$2" ]; do
    tier_sample "$1" 2>/dev/null || true
    sleep 0.3
  done
}

# run_fault N KIND DURATION_MS: one fault under its own load; appends its row.
run_fault() {
  local n=$1 kind=$2 ms=$3 dir p after recovery rec_ms not_acked promoted=no
  dir="$FAULT_ARTIFACTS/$(printf '%03d' "$n")-$kind-$ms"
  mkdir -p "$dir"
  p=$(tier_primary || true)
  if [ -z "$p" ]; then
    not_ok "fault $n ($kind ${ms} ms): no primary to break"
    return 0
  fi
  local seconds
  # Kinds whose fault waits for a failover get that wait's worth more load.
  seconds=$(awk -v b="$LOAD_BEFORE" -v d="$ms" -v a="$LOAD_AFTER" -v w="$(tier_fault_wait_s "$kind")" \
    'BEGIN { printf "%d", b + d / 1000 + w + a + 0.999 }')
  start_load "$dir" "$seconds"
  local load=$!
  sleep "$LOAD_BEFORE"
  now_ms >"$dir/fault"
  FAULT_DIR=$dir "fault_${kind//-/_}" "$p" "$(awk -v d="$ms" 'BEGIN { printf "%.3f", d / 1000 }')" || true
  [ -s "$dir/effective" ] || cp "$dir/fault" "$dir/effective"
  now_ms >"$dir/healed"
  wait "$load" || true
  cp "$dir/load" "$FAULT_ARTIFACTS/load.$(printf '%03d' "$n")"
  # Who ends as primary is read once the tier is whole again: read earlier,
  # a superseded primary not yet fenced read as "no promotion".
  local whole=yes
  tier_whole || whole=no
  after=$(tier_primary || true)
  [ -n "$after" ] && [ "$after" != "$p" ] && promoted=yes
  recovery=$("$LOADGEN" recovery --log "$dir/load" --fault-ms "$(cat "$dir/effective")" || true)
  rec_ms=$(sed -nE 's/^recovered after ([0-9]+) ms.*/\1/p' <<<"$recovery")
  if declare -F tier_recovery_ms >/dev/null; then rec_ms=$(tier_recovery_ms "$(cat "$dir/effective")" || true); fi
  not_acked=$(sed -nE 's/.*\(([0-9]+) requests not acknowledged\).*/\1/p' <<<"$recovery")
  printf '%s %s %s %s %s %s\n' "$kind" "$ms" "$p" "${rec_ms:-never}" "${not_acked:-?}" "$promoted" >>"$FAULT_ARTIFACTS/rows.txt"
  printf '    %3d %-24s %6s ms  %-8s recovered %6s ms, %s not acknowledged, promotion: %s\n' \
    "$n" "$kind" "$ms" "$p" "${rec_ms:-never}" "${not_acked:-?}" "$promoted"
  if [ "$whole" = no ]; then
    not_ok "fault $n ($kind ${ms} ms on $p): the tier did not heal by itself"
    return 1
  fi
}

# harness TIER SEED COUNT KINDS: runs the schedule, then the checks.
harness() {
  local tier=$1 seed=$2 count=$3 kinds=$4 n=0 kind ms
  rm -rf "$FAULT_ARTIFACTS" && mkdir -p "$FAULT_ARTIFACTS"
  build_loadgen
  "$LOADGEN" schedule --seed "$seed" --count "$count" --kinds "$kinds" \
    --from-ms "${SWEEP_FROM_MS:-1000}" --to-ms "${SWEEP_TO_MS:-10000}" --step-ms "${SWEEP_STEP_MS:-500}" \
    >"$FAULT_ARTIFACTS/schedule"
  echo "fault harness, $tier: seed $seed, $count faults of $kinds (replay: SEED=$seed)"
  check "the $tier tier is whole before the first fault" tier_whole
  sample_loop "$FAULT_ARTIFACTS/samples" "$FAULT_ARTIFACTS/stop" &
  local sampler=$!
  while read -r kind ms; do
    n=$((n + 1))
    run_fault "$n" "$kind" "$ms" || break
  done <"$FAULT_ARTIFACTS/schedule"
  touch "$FAULT_ARTIFACTS/stop"
  wait "$sampler" || true
  check "the queue drained within ${DRAIN_BOUND_S}s (else: stuck)" tier_drained
  audit_every_node "$FAULT_ARTIFACTS"
  local samples worst
  samples=$(wc -l <"$FAULT_ARTIFACTS/samples" 2>/dev/null || echo 0)
  worst=$(most_writers "$FAULT_ARTIFACTS/samples")
  check "never more than one writer across every proxy and node ($samples samples, most $worst)" \
    test "$samples" -gt 0 -a "$worst" -le 1
  local not_met
  not_met=$(awk -v goal="${RECOVERY_GOAL_MS:-10000}" '$4 == "never" || $4 > goal' "$FAULT_ARTIFACTS/rows.txt" | wc -l)
  echo "    recovery goal ${RECOVERY_GOAL_MS:-10000} ms: met by $((n - not_met)) of $n faults (recorded, not asserted)"
}

# Appends the run's table to bench/RESULTS.md: per kind, faults, votes
# acknowledged, lost, wrong, recovery times, promotions.
record_results() {
  local tier=$1 seed=$2 kinds=$3 verdict acked lost wrong
  verdict=$("$LOADGEN" audit --log "$FAULT_ARTIFACTS/all-load" --stored "$(ls "$FAULT_ARTIFACTS"/stored.[123] | head -n 1)" | head -n 1 || true)
  acked=$(sed -nE 's/^acknowledged ([0-9]+) votes.*/\1/p' <<<"$verdict")
  lost=$(sed -nE 's/.* lost ([0-9]+) .*/\1/p' <<<"$verdict")
  wrong=$(sed -nE 's/.* wrong ([0-9]+)$/\1/p' <<<"$verdict")
  # shellcheck disable=SC2154 # passed and failed: tests/lib.sh counts them
  {
    printf '\n### Fault harness, %s tier: seed %s (%s)\n\n' "$tier" "$seed" "$(date -u +%F)"
    printf 'Command: `SEED=%s COUNT=%s KINDS=%s tests/faults/%s.sh` at %s%s. ' \
      "$seed" "$(wc -l <"$FAULT_ARTIFACTS/schedule")" "$kinds" "$tier" "$(git rev-parse --short HEAD)" \
      "$(git diff --quiet HEAD -- . ':!bench' || echo ' (dirty tree)')"
    printf 'Audit over all faults: %s acknowledged, %s lost, %s wrong; %s passed, %s failed checks.\n\n' \
      "${acked:-?}" "${lost:-?}" "${wrong:-?}" "$passed" "$failed"
    printf '| fault | durations (s) | faults | promotions | recovery median / max (ms) | goal %s ms met |\n|---|---|---|---|---|---|\n' "${RECOVERY_GOAL_MS:-10000}"
    sort -k1,1 -k2,2n "$FAULT_ARTIFACTS/rows.txt" | awk -v goal="${RECOVERY_GOAL_MS:-10000}" '
      { k = $1; n[k]++; if ($6 == "yes") p[k]++; if ($4 != "never" && $4 <= goal) met[k]++
        d = $2 / 1000; if (!(k in lo) || d < lo[k]) lo[k] = d; if (d > hi[k]) hi[k] = d
        r[k, n[k]] = ($4 == "never" ? 1e12 : $4) }
      END { for (k in n) {
          m = n[k]; for (i = 1; i <= m; i++) v[i] = r[k, i]
          for (i = 2; i <= m; i++) { x = v[i]; j = i - 1; while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
          med = v[int((m + 1) / 2)]; mx = v[m]
          printf "| %s | %s | %d | %d | %s / %s | %d of %d |\n", k, (lo[k] == hi[k] ? lo[k] : lo[k] "-" hi[k]), m, p[k] + 0,
            (med >= 1e12 ? "never" : med), (mx >= 1e12 ? "never" : mx), met[k] + 0, m } }' | sort
  } >>bench/RESULTS.md
  echo "    table appended to bench/RESULTS.md"
}
