#!/usr/bin/env bash
# HAProxy's check of one Redis node (external-check; arguments: proxy address,
# proxy port, server address, server port; HAPROXY_SERVER_NAME is the node's
# service name). Passes only when the node says it is the primary AND a
# majority of the Sentinels name it: a node that restarted with an old
# configuration, or an old primary thawed or reconnected after a failover,
# answers role:master for a while, and must not get clients then. A majority
# can name only one node, so at most one node is ever in rotation.
set -uo pipefail

address=${3:?missing server address} port=${4:?missing server port}
name=${HAPROXY_SERVER_NAME:?missing server name}
REDISCLI_AUTH=$(cat "${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}") || exit 1
export REDISCLI_AUTH
sentinels=(sentinel-1 sentinel-2 sentinel-3)

timeout 1 redis-cli --no-auth-warning -h "$address" -p "$port" INFO replication 2>/dev/null \
  | grep -q '^role:master' || exit 1
agree=0
for sentinel in "${sentinels[@]}"; do
  named=$(timeout 1 redis-cli --no-auth-warning -h "$sentinel" -p 26379 \
    SENTINEL get-master-addr-by-name swarmvote 2>/dev/null | head -n 1 | tr -d '\r')
  [ "$named" = "$name" ] && agree=$((agree + 1))
  [ "$agree" -ge $((${#sentinels[@]} / 2 + 1)) ] && exit 0
done
exit 1
