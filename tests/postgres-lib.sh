#!/usr/bin/env bash
# Helpers for tests of the postgres stack: every node's own word on its
# role, and Pgpool-II's. Sourced after tests/lib.sh.

# Each node's own word on its role, one "pg-N=ROLE" per node: "standby",
# "?" (no answer: frozen, killed) or "primary/TIMELINE/CONFIRMING", where
# CONFIRMING counts the synchronous standbys that confirmed its WAL within
# the last 2 s. With ANY 1 synchronous replication, a primary that has one
# is acknowledging commits.
node_roles() {
  local n r
  for n in 1 2 3; do
    r=$(timeout 3 docker exec -u postgres "$(container_of "postgres_pg-$n")" psql -X -h /var/run/postgresql -d postgres -At -c \
      "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary/'
         || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int || '/'
         || (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')
             AND reply_time > clock_timestamp() - interval '2 seconds') END" 2>/dev/null || true)
    printf 'pg-%s=%s\n' "$n" "${r:-?}"
  done
}

# WRITERS of roles "pg-1=ROLE pg-2=ROLE pg-3=ROLE" (see node_roles): the
# primaries acknowledging commits, plus one when any of them runs on an
# older timeline than another primary (a superseded primary acknowledging
# commits the new timeline lacks). Above 1 is wrong.
writers_of() {
  awk '{
      for (i = 1; i <= NF; i++) {
        split($i, kv, "="); split(kv[2], r, "/")
        if (r[1] != "primary") continue
        t[i] = r[2] + 0; c[i] = r[3] + 0; if (t[i] > newest) newest = t[i]
      }
      for (i in t) if (c[i] > 0) { w++; if (t[i] < newest) stale = 1 }
      print w + stale }' <<<"$1"
}

# Pgpool-II's nodes as "name status role" lines, asked through db.
pool_nodes() {
  local id n
  for n in 1 2 3; do
    id=$(container_of "postgres_pg-$n")
    [ -n "$id" ] && break
  done
  docker exec -u postgres "$id" timeout 3 psql -X -h db -U "${REPMGR_USERNAME:-repmgr}" -d postgres -c 'SHOW pool_nodes' 2>/dev/null \
    | awk -F'|' 'NR > 2 && NF > 8 { gsub(/ /, ""); print $2, $4, $7 }'
}

# Succeeds when every node runs repmgrd (monitoring, and the metadata) and a
# failover watcher that published within the last 3 s: a standby starts
# both only once its own registration has replicated and it runs; until
# then nothing could promote it.
watchers_everywhere() {
  local n id
  for n in pg-1 pg-2 pg-3; do
    id=$(container_of "postgres_$n")
    [ -n "$id" ] || return 1
    # shellcheck disable=SC2016 # expanded inside the container
    timeout 5 docker exec "$id" sh -c 'pgrep -x repmgrd >/dev/null &&
      at=$(sed -n "s/^watch_at=//p" /run/pgha/watch) && [ $(( $(date +%s) - ${at:-0} )) -le 3 ]' 2>/dev/null || return 1
  done
}
