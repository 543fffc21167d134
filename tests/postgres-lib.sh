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

# The running Pgpool-II ("db") containers, one id per line.
pool_ids() {
  docker ps -q --filter label=com.docker.swarm.service.name=postgres_db
}

# Pgpool-II's nodes as "name status role" lines, asked of the instance in
# container $1 (each instance decides on its own, so ask each, not "db").
pool_nodes_of() {
  docker exec -u postgres "$1" timeout 3 psql -X -h 127.0.0.1 -U "${REPMGR_USERNAME:-repmgr}" -d postgres -c 'SHOW pool_nodes' 2>/dev/null \
    | awk -F'|' 'NR > 2 && NF > 8 { gsub(/ /, ""); print $2, $4, $7 }'
}

# Succeeds when every Pgpool-II instance the service asks for runs, and
# each has all three nodes up and primary $1: every path to the database
# names the same primary.
pools_name() {
  local primary=$1 want id n=0
  want=$(docker service inspect --format '{{.Spec.Mode.Replicated.Replicas}}' postgres_db 2>/dev/null) || return 1
  for id in $(pool_ids); do
    [ "$(pool_nodes_of "$id" | awk '$2 == "up" { up++ } $3 == "primary" && $2 == "up" { p = $1 } END { print up + 0, p }')" = "3 $primary" ] || return 1
    n=$((n + 1))
  done
  [ "$n" -eq "$want" ]
}

# Each Pgpool-II instance's primary as one field "pools=P1,P2" ("-" for
# none or no answer), in the order of pool_ids.
pool_primaries() {
  local id p out=""
  for id in $(pool_ids); do
    p=$(pool_nodes_of "$id" | awk '$3 == "primary" && $2 == "up" { print $1 }')
    out+="${p:--},"
  done
  printf 'pools=%s\n' "${out%,}"
}

# Of sample lines "... pg-1=ROLE pg-2=ROLE pg-3=ROLE pools=P1,P2" (see
# node_roles, pool_primaries), prints "STALE SPLIT": the samples in which
# an instance routed writes to a node running as primary on an older
# timeline than another primary (a superseded one), and those in which two
# instances named different nodes that both ran as primary. Neither makes
# a writer by itself: a superseded primary has no standby to confirm a
# commit (writers_of counts the ones that do).
pool_routes() {
  awk '{
      delete role; delete tl; newest = 0; pools = ""
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "pools") { pools = kv[2]; continue }
        split(kv[2], r, "/")
        if (r[1] == "primary") { role[kv[1]] = 1; tl[kv[1]] = r[2] + 0; if (r[2] + 0 > newest) newest = r[2] + 0 }
      }
      n = split(pools, p, ",")
      s = 0; d = 0
      for (i = 1; i <= n; i++) {
        if (p[i] in role && tl[p[i]] < newest) s = 1
        for (j = 1; j < i; j++) if (p[i] != p[j] && p[i] in role && p[j] in role) d = 1
      }
      stale += s; split_ += d
    } END { print stale + 0, split_ + 0 }' "$1"
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
