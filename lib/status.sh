#!/usr/bin/env bash
# ./deploy.sh status: the state of every tier on one screen, asked from
# inside the containers (every tier at once), and with --all the details
# (every task, repmgr's and each Pgpool-II instance's view). Sourced by
# deploy.sh after lib/deploy.sh, not run.

# One row: tier, health (ok, WARN or DOWN), what was seen.
row() { printf '%-10s %-5s %s\n' "$1" "$2" "$3"; }
# A continuation of the row above.
more() { printf '%-16s %s\n' "" "$1"; }

# The first running container of service $1.
task_of() { docker ps -q --filter "label=com.docker.swarm.service.name=$1" | head -n 1; }

# Services whose running tasks are fewer than asked.
status_services() {
  local all short n=0 name replicas
  all=$(docker service ls --filter label=com.docker.stack.namespace --format '{{.Name}} {{.Replicas}}' 2>/dev/null | sort || true)
  [ -n "$all" ] || { row services DOWN "no stack is deployed (./deploy.sh deploys them)"; return; }
  short=""
  while read -r name replicas _; do
    n=$((n + 1))
    [ "${replicas%%/*}" = "${replicas#*/}" ] || short+=" $name $replicas,"
  done <<<"$all"
  if [ -z "$short" ]; then
    row services ok "$n of $n services run every task they ask for"
  else
    row services WARN "tasks missing:${short%,} (./deploy.sh status --all, ./deploy.sh logs SERVICE)"
  fi
}

# Redis: the primary the Sentinels name and whether every node agrees, the
# replicas, and the queue. Votes acknowledged and stored per second come
# from the worker group's counters (XINFO GROUPS: entries-read + lag is
# every entry added, entries-read - pending every entry the worker acked
# after its commit) taken 3 s apart.
status_redis() {
  local id n
  for n in 1 2 3; do id=$(task_of "redis_sentinel-$n"); [ -z "$id" ] || break; done
  [ -n "$id" ] || { row redis DOWN "no Sentinel is running"; return; }
  # shellcheck disable=SC2016 # expanded inside the container
  timeout 8 docker exec "$id" bash -c '
    export REDISCLI_AUTH=$(cat /run/secrets/redis_password)
    cli() { timeout 2 redis-cli --no-auth-warning "$@" 2>/dev/null | tr -d "\r"; }
    row() { printf "%-10s %-5s %s\n" "$1" "$2" "$3"; }
    more() { printf "%-16s %s\n" "" "$1"; }
    primary="" agree=0 masters="" replicas="" health=ok
    for s in sentinel-1 sentinel-2 sentinel-3; do
      p=$(cli -h "$s" -p 26379 SENTINEL get-master-addr-by-name swarmvote | head -n 1)
      [ -n "$p" ] || continue
      [ -n "$primary" ] || primary=$p
      [ "$p" != "$primary" ] || agree=$((agree + 1))
    done
    for node in redis-1 redis-2 redis-3; do
      info=$(cli -h "$node" INFO replication)
      case $(sed -n "s/^role://p" <<<"$info") in
        master) masters+=" $node" ;;
        slave) replicas+=" $node $(sed -n "s/^master_link_status://p" <<<"$info")," ;;
        *) replicas+=" $node not answering," ;;
      esac
    done
    masters=${masters# }
    if [ -z "$primary" ] || [ -z "$masters" ]; then health=DOWN
    elif [ "$masters" != "$primary" ] || [ "$agree" -lt 3 ] || [[ $replicas == *"down"* || $replicas == *"not answering"* ]]; then health=WARN
    fi
    row redis "$health" "primary ${primary:-none} (Sentinels agreeing: $agree of 3; nodes that say primary: ${masters:-none})"
    more "replicas:${replicas%,}"
    [ -n "$primary" ] || exit 0
    sample() { cli -h redis-master XINFO GROUPS votes | awk "NR % 2 == 1 { k = \$0; next } { v[k] = \$0 } END { print v[\"entries-read\"], v[\"lag\"], v[\"pending\"] }"; }
    read -r read0 lag0 pending0 < <(sample)
    sleep 3
    read -r read1 lag1 pending1 < <(sample)
    num() { [[ $1 =~ ^[0-9]+$ ]]; }
    if num "$read1" && num "$lag1" && num "$pending1"; then
      queue="$((lag1 + pending1)) waiting ($lag1 not yet read, $pending1 being stored)"
    else
      queue="unknown (no worker group yet, or its lag cannot be counted)"
    fi
    if num "$read0" && num "$lag0" && num "$pending0" && num "$read1" && num "$lag1" && num "$pending1" &&
      [ $((read1 + lag1)) -ge $((read0 + lag0)) ]; then
      rates=$(awk -v a=$(((read1 + lag1) - (read0 + lag0))) -v s=$(((read1 - pending1) - (read0 - pending0))) \
        "BEGIN { printf \"acknowledged %.1f/s, stored %.1f/s\", a / 3, s / 3 }")
    else
      rates="throughput unknown"
    fi
    memory=$(cli -h redis-master INFO memory | awk -F: "\$1 == \"used_memory\" { u = \$2 } \$1 == \"maxmemory\" { m = \$2 }
      END { if (m > 0) printf \"%d of %d MiB%s\", u / 1048576, m / 1048576, (u >= m ? \" FULL\" : \"\") }")
    health=ok
    # Entries waiting and none stored for 3 s: the worker is not committing.
    if num "$lag1" && num "$pending1" && [ $((lag1 + pending1)) -gt 0 ] && [[ $rates == *"stored 0.0/s"* ]]; then health=WARN; fi
    row votes "$health" "$rates (over 3 s); queue: $queue; queue memory ${memory:-unknown}"
    if [[ $memory == *FULL ]]; then
      row votes DOWN "the queue is FULL: new votes are refused until the worker drains it (is PostgreSQL up?)"
    fi
  ' 2>/dev/null || row redis DOWN "the Sentinel's container did not answer"
}

# What the Pgpool-II instances route to: "INSTANCES ROUTING WHOLE DETAILS":
# how many route writes to $1 (they see it up, as the primary), and how
# many of those also see every node up; what the others see.
pgpool_view() {
  local pool line n=0 routing=0 good=0 odd=""
  for pool in $(docker ps -q --filter label=com.docker.swarm.service.name=postgres_db); do
    n=$((n + 1))
    line=$(timeout 8 docker exec -u postgres "$pool" timeout 3 psql -X -h 127.0.0.1 -U "${REPMGR_USERNAME:-repmgr}" -d postgres -c 'SHOW pool_nodes' 2>/dev/null |
      awk -F'|' 'NR > 2 && NF > 8 { gsub(/ /, ""); sub(/^waiting$/, "up", $4); printf "%s%s %s %s", sep, $2, $4, $7; sep = ", " }' || true)
    [ -z "$1" ] || [[ $line != *"$1 up primary"* ]] || routing=$((routing + 1))
    if [ -n "$1" ] && [[ $line == *"$1 up primary"* ]] && [ "$(grep -o ' up ' <<<"$line" | wc -l)" -eq 3 ]; then
      good=$((good + 1))
    else
      odd+="; ${pool:0:12} sees ${line:-nothing (not answering)}"
    fi
  done
  printf '%s %s %s %s\n' "$n" "$routing" "$good" "${odd#; }"
}

# PostgreSQL: each node's role, the standbys' replication, what each
# Pgpool-II instance routes to, and the alarms of a rejoin.
status_postgres() {
  local n id role a primaries="" missing="" alarms=0 standbys="" pools routing good odd health=ok
  for n in 1 2 3; do
    id=$(task_of "postgres_pg-$n")
    if [ -z "$id" ]; then missing+=" pg-$n not running,"; continue; fi
    # shellcheck disable=SC2016 # expanded inside the container
    read -r role a < <(timeout 8 docker exec -u postgres "$id" sh -c \
      'r=$(timeout 3 psql -X -h /var/run/postgresql -d postgres -Atc "SELECT pg_is_in_recovery()" 2>/dev/null)
       echo "${r:-down} $(cat /var/lib/postgresql/data/ALARMS 2>/dev/null | wc -l)"' 2>/dev/null || echo "down 0")
    alarms=$((alarms + ${a:-0}))
    case $role in
      f) primaries+=" pg-$n" ;;
      t) ;;
      *) missing+=" pg-$n not answering," ;;
    esac
  done
  primaries=${primaries# }
  if [ -n "$primaries" ] && [[ $primaries != *" "* ]]; then
    standbys=$(timeout 8 docker exec -u postgres "$(task_of "postgres_$primaries")" timeout 3 psql -X -h /var/run/postgresql -d postgres -At -F ' ' -c \
      "SELECT application_name, state, sync_state, coalesce(extract(epoch FROM replay_lag), 0)::numeric(10,1) FROM pg_stat_replication ORDER BY 1" \
      2>/dev/null | awk '{ printf " %s %s (%s), lag %ss,", $1, $2, $3, $4 }' || true)
  fi
  missing=${missing%,}
  read -r pools routing good odd < <(pgpool_view "$primaries")
  if [ -z "$primaries" ] || [[ $primaries == *" "* ]] || [ "$routing" -eq 0 ]; then
    health=DOWN
  elif [ -n "$missing" ] || [ "$(grep -o ' streaming ' <<<"$standbys" | wc -l)" -ne 2 ] || [ "$good" -ne "$pools" ] || [ "$alarms" -gt 0 ]; then
    health=WARN
  fi
  row postgres "$health" "primary ${primaries:-none}${missing:+ (${missing# }}${missing:+)}"
  more "standbys:${standbys:- none streaming}"
  more "Pgpool-II (db): $routing of $pools instances route writes to ${primaries:-no primary}; $good see every node up${odd:+; $odd}"
  if [ "$alarms" -eq 0 ]; then
    more "alarms: none (no node kept commits aside when it rejoined)"
  else
    more "ALARMS: $alarms kept-aside records (./deploy.sh status --all lists them)"
  fi
}

# Galera: how many nodes are Synced in the Primary component, and the size
# each sees.
status_galera() {
  local n state st size synced=0 odd="" sizes="" health=ok
  for n in 1 2 3; do
    state=$(galera_http "$n" /state || true)
    read -r st size < <(awk -F= '/^$/ { body = 1; next } body { v[$1] = $2 } END { print (v["local_state"] == 4 && v["cluster_status"] == "Primary" ? "Synced" : (v["phase"] ? v["phase"] : "down")), (v["cluster_size"] ? v["cluster_size"] : "-") }' <<<"$state")
    if [ "$st" = Synced ]; then synced=$((synced + 1)); else odd+=" mariadb-$n $st,"; fi
    sizes+="$size "
  done
  [ "$synced" -eq 3 ] || health=WARN
  [ "$synced" -gt 0 ] || health=DOWN
  row wordpress "$health" "Galera: $synced of 3 nodes Synced${odd:+ (${odd# }}${odd:+)}; cluster size seen: ${sizes% }"
}

# The one-screen view: every tier probed at once.
status_summary() {
  local dir part
  dir=$(mktemp -d)
  for part in services redis postgres galera; do "status_$part" >"$dir/$part" 2>&1 & done
  wait
  printf 'swarmvote at %s (./deploy.sh status --all for every task and node)\n' "$(date -u +%FT%TZ)"
  for part in services redis postgres galera; do
    if [ -s "$dir/$part" ]; then sed 's/,$//' "$dir/$part"; else row "$part" '?' "this view failed (./deploy.sh status --all)"; fi
  done
  rm -rf "$dir"
}

# ./deploy.sh status --all: every service and task of each stack, and each
# tier's own view in full.
status_all() {
  local stack
  for stack in "${STACKS[@]}"; do
    printf '\033[1m%s\033[0m\n' "$stack"
    if ! docker stack services "$stack" --format '{{.Name}}' >/dev/null 2>&1 || [ -z "$(docker stack services -q "$stack" 2>/dev/null)" ]; then
      printf '  not deployed\n'
      continue
    fi
    docker stack services --format '  {{.Name}}\t{{.Replicas}}\t{{.Image}}' "$stack" | column -t -s $'\t'
    docker stack ps --filter desired-state=running --format '  {{.Name}}\t{{.CurrentState}}\t{{.Error}}' "$stack" | column -t -s $'\t'
    [ "$stack" != redis ] || redis_status
    [ "$stack" != postgres ] || postgres_status
    [ "$stack" != wordpress ] || galera_status
  done
}

# repmgr's view of the PostgreSQL cluster, Pgpool-II's node states, and each
# standby's replication lag, asked from inside the nodes' containers.
postgres_status() {
  local id="" n
  for n in 1 2 3; do
    id=$(docker ps -q --filter "label=com.docker.swarm.service.name=postgres_pg-$n" | head -n 1)
    [ -z "$id" ] || docker exec -u postgres "$id" pg_isready -q -h /var/run/postgresql 2>/dev/null && break
  done
  [ -n "$id" ] || { printf '  no PostgreSQL node is running\n'; return 0; }
  docker exec -u postgres "$id" repmgr -f /etc/pgha/repmgr.conf cluster show --compact 2>/dev/null | sed 's/^/  /' \
    || printf '  repmgr cluster show failed\n'
  local pool shown=0
  for pool in $(docker ps -q --filter label=com.docker.swarm.service.name=postgres_db); do
    printf '  Pgpool-II (db) instance %s, its nodes:\n' "$pool"
    docker exec -u postgres "$pool" timeout 5 psql -X -h 127.0.0.1 -U "${REPMGR_USERNAME:-repmgr}" -d postgres -c 'SHOW pool_nodes' 2>/dev/null \
      | awk -F'|' 'NR > 2 && NF > 8 { gsub(/ /, ""); printf "    %s %s, %s\n", $2, $4, $7 }' | grep . \
      || printf '    (this instance did not answer)\n'
    shown=$((shown + 1))
  done
  [ "$shown" -gt 0 ] || printf '  no Pgpool-II (db) instance is running\n'
  printf '  replication (on the primary):\n'
  docker exec -u postgres "$id" psql -X -h pg-haproxy -d postgres -At -F ' ' -c \
    "SELECT '    ' || application_name, state, sync_state, 'replay lag ' || coalesce(replay_lag::text, '0') FROM pg_stat_replication" \
    2>/dev/null || printf '    (the primary did not answer)\n'
  local alarms=""
  for n in 1 2 3; do
    id=$(docker ps -q --filter "label=com.docker.swarm.service.name=postgres_pg-$n" | head -n 1)
    [ -n "$id" ] || continue
    alarms+=$(docker exec "$id" sh -c 'f=/var/lib/postgresql/data/ALARMS; [ -s "$f" ] && sed "s/^/    ALARM /" "$f"' 2>/dev/null || true)
  done
  if [ -n "$alarms" ]; then
    printf '  ALARMS: a standby held commits past the fork point of the primary it rejoined; they may have been acknowledged and lost (kept aside as listed):\n%s\n' "$alarms"
  else
    printf '  alarms: none (no standby ever held commits past a fork point)\n'
  fi
}

# The Redis primary the Sentinels agree on, and each replica's state and lag,
# asked from inside a Sentinel's container.
redis_status() {
  local id
  id=$(docker ps -q --filter label=com.docker.swarm.service.name=redis_sentinel-1 | head -n 1)
  [ -n "$id" ] || id=$(docker ps -q --filter label=com.docker.stack.namespace=redis --filter name=sentinel | head -n 1)
  [ -n "$id" ] || { printf '  primary: unknown (no Sentinel is running)\n'; return 0; }
  # shellcheck disable=SC2016 # expanded inside the container
  docker exec "$id" bash -c '
    export REDISCLI_AUTH=$(cat /run/secrets/redis_password)
    primary=$(redis-cli --no-auth-warning -p 26379 SENTINEL get-master-addr-by-name swarmvote | head -n 1)
    printf "  primary: %s (as the Sentinels agree)\n" "${primary:-unknown}"
    [ -n "$primary" ] || exit 0
    redis-cli --no-auth-warning -h "$primary" INFO replication | tr -d "\r" \
      | sed -nE "s/^slave[0-9]+:ip=([^,]+),port=[0-9]+,state=([^,]+),offset=([0-9]+),lag=([0-9]+).*/  replica: \1 \2, offset \3, lag \4 s/p"
    redis-cli --no-auth-warning -h "$primary" INFO memory | tr -d "\r" | awk -F: "
      \$1 == \"used_memory\" { used = \$2 } \$1 == \"maxmemory\" { max = \$2 }
      END { if (max > 0) printf \"  queue memory: %d of %d MiB%s\\n\", used / 1048576, max / 1048576,
        (used >= max ? \" -- FULL: new votes are refused until the worker drains the queue (is PostgreSQL up?)\" : \"\") }"
    printf "  queued votes: %s\n" "$(redis-cli --no-auth-warning -h "$primary" XLEN votes)"
  ' 2>/dev/null || printf '  primary: unknown (the Sentinel did not answer)\n'
}

# The Galera cluster's size and each node's state, asked from the nodes'
# health endpoints.
galera_status() {
  local n state
  for n in 1 2 3; do
    if ! state=$(galera_http "$n" /state) || [ -z "$state" ]; then
      printf '  mariadb-%s: not running or not answering\n' "$n"
      continue
    fi
    awk -v n="mariadb-$n" -F= '
          /^$/ { body = 1; next }
          body { v[$1] = $2 }
          END {
            state = v["local_state"] == 4 ? "Synced" : (v["local_state"] == "" ? "not synced" : "state " v["local_state"])
            printf "  %s: %s, %s (%s), cluster size %s, seqno %s\n", n, v["phase"], v["cluster_status"] ? v["cluster_status"] : "mysqld " v["mysqld"], state, v["cluster_size"] ? v["cluster_size"] : "-", v["seqno"]
          }' <<<"$state"
  done
}
