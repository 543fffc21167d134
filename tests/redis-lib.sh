#!/usr/bin/env bash
# Helpers for tests of the redis stack: asking its Sentinels and nodes.
# Sourced after tests/lib.sh.

# Runs redis-cli in a Sentinel's container with the stack's password.
sentinel_cli() {
  local id
  id=$(container_of redis_sentinel-1)
  [ -n "$id" ] || id=$(container_of redis_sentinel-2)
  # shellcheck disable=SC2016 # expanded inside the container
  docker exec "$id" bash -c 'REDISCLI_AUTH=$(cat /run/secrets/redis_password) redis-cli --no-auth-warning "$@"' _ "$@" | tr -d '\r'
}

# The node the Sentinels name primary.
primary() { sentinel_cli -p 26379 SENTINEL get-master-addr-by-name swarmvote 2>/dev/null | head -n 1; }

# INFO replication field $2 of node $1, asked over the network.
replication_field() { sentinel_cli -h "$1" INFO replication 2>/dev/null | sed -n "s/^$2://p"; }

# Waits until node $1 is a replica of $2 with its link up.
wait_replica_of() {
  local node=$1 upstream=$2
  for _ in $(seq 1 90); do
    [ "$(replication_field "$node" role)" = slave ] && [ "$(replication_field "$node" master_host)" = "$upstream" ] \
      && [ "$(replication_field "$node" master_link_status)" = up ] && return 0
    sleep 1
  done
  return 1
}

# The stack is whole again: three nodes online, all Sentinels agree.
wait_whole() {
  local p
  for _ in $(seq 1 90); do
    p=$(primary || true)
    if [ -n "$p" ] && [ "$(sentinel_cli -h "$p" INFO replication 2>/dev/null | grep -c 'state=online')" -eq 2 ] \
      && [ "$(sentinel_cli -p 26379 SENTINEL master swarmvote 2>/dev/null | sed -n '/^num-other-sentinels$/{n;p}')" = 2 ]; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# Runs a bash script in a running container of the redis stack (a Sentinel,
# else a node: the proxies hold no password but their checks') with
# REDISCLI_AUTH set; "$@" are the script's arguments.
in_redis_stack() {
  local script=$1 id s
  shift
  for s in redis_sentinel-1 redis_sentinel-2 redis_sentinel-3 redis_redis-1 redis_redis-2 redis_redis-3; do
    id=$(container_of "$s")
    [ -n "$id" ] && break
  done
  docker exec "$id" bash -c "export REDISCLI_AUTH=\$(cat /run/secrets/redis_password); $script" _ "$@" 2>/dev/null
}

# Prints the node each reachable Sentinel names, one per line.
sentinels_name() {
  # shellcheck disable=SC2016 # expanded inside the container
  in_redis_stack 'for s in sentinel-1 sentinel-2 sentinel-3; do
      timeout 1 redis-cli --no-auth-warning -h "$s" -p 26379 SENTINEL get-master-addr-by-name swarmvote 2>/dev/null | head -n 1
    done' | tr -d '\r' | grep -v '^$' || true
}

# The node a majority (2 of 3) of the Sentinels names.
sentinel_majority() { sentinels_name | sort | uniq -c | awk '$1 >= 2 { print $2; exit }'; }

# The vote queue drained (within DRAIN_BOUND_S): on the primary the
# Sentinels name, the group has been delivered everything the stream ever
# held and nothing is pending.
queue_drained() {
  local p state
  for _ in $(seq 1 $((${DRAIN_BOUND_S:-120} * 2))); do
    p=$(sentinel_majority)
    # shellcheck disable=SC2016 # expanded inside the container
    state=$(in_redis_stack 'cli() { redis-cli --no-auth-warning -h "$1" "${@:2}" | tr -d "\r"; }
        generated=$(cli "$1" XINFO STREAM votes | sed -n "/^last-generated-id$/{n;p}")
        cli "$1" XINFO GROUPS votes | awk -v g="$generated" "
          prev == \"last-delivered-id\" { d = \$0 } prev == \"pending\" { p = \$0 } { prev = \$0 }
          END { print (d == g && p == 0) ? \"drained\" : \"queued\" }"' "$p" || true)
    [ "$state" = drained ] && return 0
    sleep 0.5
  done
  return 1
}
