#!/usr/bin/env bash
# Deploys swarmvote on Docker Swarm with one command, and tells its state.
set -euo pipefail
# shellcheck source=lib/deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/deploy.sh"

readonly STACKS=(postgres redis app wordpress)

usage() {
  cat <<'USAGE'
Usage: ./deploy.sh [COMMAND]

Commands:
  (none), deploy       build the images and deploy every stack (postgres, redis,
                       app, wordpress), wait until all services are healthy,
                       print the URLs
  status               services, replicas and health of every stack
  down [--volumes]     remove the stacks; keep the data volumes unless --volumes
  logs SERVICE         recent logs of a service (e.g. vote or app_vote)
  -h, --help           this help

Configuration: .env (see .env.example); without one, everything works on
localhost with generated secrets in .secrets/ (mode 0600, git-ignored).
USAGE
}

# Prints where the system is and where the credentials are.
summary() {
  local https=""
  [ "$HTTPS_PORT" = 443 ] || https=":$HTTPS_PORT"
  log "swarmvote is up"
  cat <<SUMMARY
    vote:     https://$VOTE_SUB.$DOMAIN$https/
    result:   https://$RESULT_SUB.$DOMAIN$https/
    wordpress: https://$WP_SUB.$DOMAIN$https/ (user $WP_ADMIN_USER; password in .secrets/wp_admin_password unless WP_ADMIN_PASSWORD is set)
    stats:    https://$HAPROXY_SUB.$DOMAIN$https/redis, /postgres and /wordpress (user ${HAPROXY_AUTH_USER:-admin}; password in .secrets/haproxy_auth_password unless HAPROXY_AUTH_PASS is set)
    secrets:  .secrets/ (generated passwords, mode 0600)
SUMMARY
  printf '    TLS:      certificates from a local CA; trust .secrets/tls/ca.crt in your browser\n'
}

cmd_deploy() {
  local started=$SECONDS stack
  prepare
  for stack in "${STACKS[@]}"; do
    "deploy_$stack"
  done
  summary
  step "done in $((SECONDS - started))s"
}

cmd_status() {
  require_docker
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

cmd_down() {
  local volumes="" stack
  case "${1:-}" in
    "") ;;
    --volumes) volumes=1 ;;
    *) die "down: unknown option '$1' (only --volumes)" ;;
  esac
  require_docker
  for stack in wordpress app redis postgres; do
    docker stack rm "$stack" >/dev/null 2>&1 && step "removed stack $stack"
  done
  # Wait until the tasks' containers are gone, so that volumes are free.
  local deadline=$((SECONDS + 90))
  while [ -n "$(docker ps -aq --filter label=com.docker.stack.namespace)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "the stacks' containers are still there after 90s (docker ps -a)"
    sleep 1
  done
  if [ -n "$volumes" ]; then
    docker volume ls -q --filter label=com.docker.stack.namespace | xargs -r docker volume rm >/dev/null
    step "removed the data volumes"
  else
    step "kept the data volumes (./deploy.sh down --volumes removes them)"
  fi
}

cmd_logs() {
  local service=${1:?usage: ./deploy.sh logs SERVICE}
  require_docker
  if ! docker service inspect "$service" >/dev/null 2>&1; then
    local stack match=""
    for stack in "${STACKS[@]}"; do
      docker service inspect "${stack}_$service" >/dev/null 2>&1 && match="${stack}_$service"
    done
    [ -n "$match" ] || die "no service named '$service' (./deploy.sh status lists them)"
    service=$match
  fi
  docker service logs --tail 200 --timestamps "$service"
}

main() {
  local command=${1:-deploy}
  [ "$#" -eq 0 ] || shift
  case "$command" in
    deploy) [ "$#" -eq 0 ] || die "deploy takes no arguments (got: $*)"; cmd_deploy ;;
    status) [ "$#" -eq 0 ] || die "status takes no arguments"; cmd_status ;;
    down) [ "$#" -le 1 ] || die "down takes at most --volumes"; cmd_down "$@" ;;
    logs) [ "$#" -eq 1 ] || die "usage: ./deploy.sh logs SERVICE"; cmd_logs "$1" ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown command '$command'" ;;
  esac
}

main "$@"
