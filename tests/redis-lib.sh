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

