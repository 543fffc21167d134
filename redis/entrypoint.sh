#!/usr/bin/env bash
# Entrypoint of the redis stack's image. The first argument is the role:
#   node       a Redis node; asks the Sentinels who the primary is, then starts
#              as its replica (or as the primary when they name this node)
#   sentinel   a Sentinel
#   proxy      HAProxy, routing to the one node that is the agreed primary
#   health R   the container health check of role R (exit 0 or 1)
# Secrets (files in REDIS_SECRETS, default /run/secrets), one per Redis user
# (redis.conf says what each may do):
#   redis_password           the default user's: node, sentinel
#   redis_replica_password   node
#   redis_sentinel_password  node, sentinel
#   redis_monitor_password   node, sentinel, proxy (its checks log in with it)
#   redis_vote_password      node, sentinel
#   redis_worker_password    node
# Settings (environment): NODE_NAME (this node's service name, for node and
# sentinel),
# SENTINELS (default "sentinel-1 sentinel-2 sentinel-3"), MASTER_NAME
# (default swarmvote), INITIAL_PRIMARY (default redis-1), BOOT_WAIT_S
# (default 12: how long a node that held data and is named primary waits for
# a failover already under way to name another node).
set -euo pipefail

readonly TEMPLATES=/etc/swarmvote
readonly SECRETS=${REDIS_SECRETS:-/run/secrets}
readonly PASSWORD_FILE=$SECRETS/redis_password
read -r -a SENTINEL_HOSTS <<<"${SENTINELS:-sentinel-1 sentinel-2 sentinel-3}"
readonly MASTER=${MASTER_NAME:-swarmvote}
readonly INITIAL_PRIMARY=${INITIAL_PRIMARY:-redis-1}
readonly BOOT_WAIT_S=${BOOT_WAIT_S:-12}

log() { printf '%s redis-entrypoint[%s]: %s\n' "$(date -u +%FT%TZ)" "${NODE_NAME:-$ROLE}" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# Prints the password in secret $1 (default redis_password), refusing one
# Redis cannot take in a config file line.
read_password() {
  local name=${1:-redis_password} password
  local file=$SECRETS/$name
  [ -r "$file" ] || die "the password secret $file is missing or unreadable: give the service the $name secret"
  password=$(cat "$file")
  [ -n "$password" ] || die "the password secret $file is empty"
  [[ "$password" =~ ^[[:graph:]]+$ && "$password" != *'"'* && "$password" != *\\* ]] \
    || die "the password in $file has spaces, quotes, backslashes or control characters: Redis config lines cannot hold it"
  printf '%s' "$password"
}

# Prints the SHA-256 of the password in secret $1, as an ACL user line takes
# it (#HASH): no file of a node holds another user's password.
password_hash() {
  local password
  password=$(read_password "$1")
  printf '%s' "$password" | sha256sum | cut -d ' ' -f 1
}

# Reads the secrets role $1 (node or sentinel) needs into the variables
# render uses.
read_users() {
  PASSWORD=$(read_password)
  SENTINEL_PASSWORD=$(read_password redis_sentinel_password)
  MONITOR_HASH=$(password_hash redis_monitor_password)
  VOTE_HASH=$(password_hash redis_vote_password)
  if [ "$1" = node ]; then
    REPLICA_PASSWORD=$(read_password redis_replica_password)
    REPLICA_HASH=$(password_hash redis_replica_password)
    SENTINEL_HASH=$(password_hash redis_sentinel_password)
    WORKER_HASH=$(password_hash redis_worker_password)
  fi
}

# Checks that NODE_NAME is set and a plain host name.
require_node_name() {
  [[ "${NODE_NAME:-}" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "NODE_NAME must be this service's name (e.g. redis-1), got '${NODE_NAME:-}'"
}

# Renders template $1 with the placeholders replaced; prints it.
render() {
  local text
  text=$(<"$TEMPLATES/$1")
  text=${text//@PASSWORD@/${PASSWORD:-}}
  text=${text//@REPLICA_PASSWORD@/${REPLICA_PASSWORD:-}}
  text=${text//@SENTINEL_PASSWORD@/${SENTINEL_PASSWORD:-}}
  text=${text//@REPLICA_HASH@/${REPLICA_HASH:-}}
  text=${text//@SENTINEL_HASH@/${SENTINEL_HASH:-}}
  text=${text//@MONITOR_HASH@/${MONITOR_HASH:-}}
  text=${text//@VOTE_HASH@/${VOTE_HASH:-}}
  text=${text//@WORKER_HASH@/${WORKER_HASH:-}}
  text=${text//@NODE_NAME@/${NODE_NAME:-}}
  text=${text//@MASTER@/$MASTER}
  text=${text//@PRIMARY@/$INITIAL_PRIMARY}
  printf '%s\n' "$text"
}

# Asks every Sentinel for the primary; prints "host epoch flags" from the one
# with the highest configuration epoch, or nothing when none answers.
ask_sentinels() {
  local sentinel reply best="" best_epoch=-1 host epoch flags
  for sentinel in "${SENTINEL_HOSTS[@]}"; do
    reply=$(REDISCLI_AUTH=$PASSWORD timeout 2 redis-cli --no-auth-warning -h "$sentinel" -p 26379 \
      SENTINEL master "$MASTER" 2>&1 | tr -d '\r') || continue
    if [[ "$reply" =~ (WRONGPASS|NOAUTH|invalid\ password) ]]; then
      log "$sentinel refused the password: this node's redis_password secret is not the one the stack uses"
      continue
    fi
    host=$(sed -n '/^ip$/{n;p;q}' <<<"$reply")
    epoch=$(sed -n '/^config-epoch$/{n;p;q}' <<<"$reply")
    flags=$(sed -n '/^flags$/{n;p;q}' <<<"$reply")
    [ -n "$host" ] && [[ "$epoch" =~ ^[0-9]+$ ]] || continue
    if [ "$epoch" -gt "$best_epoch" ]; then
      best="$host $epoch $flags"
      best_epoch=$epoch
    fi
  done
  printf '%s' "$best"
}

# Prints the primary the Sentinels name, waiting until one answers.
current_primary() {
  local answer waited=0
  while :; do
    answer=$(ask_sentinels)
    [ -n "$answer" ] && { printf '%s' "${answer%% *}"; return; }
    [ $((waited % 10)) -eq 0 ] && log "no Sentinel (${SENTINEL_HOSTS[*]}) answers yet; waiting for them to name the primary"
    sleep 1
    waited=$((waited + 1))
  done
}

# Decides this node's primary: prints the host to replicate, or nothing to
# start as the primary.
choose_upstream() {
  local primary waited=0
  primary=$(current_primary)
  if [ "$primary" != "$NODE_NAME" ]; then
    printf '%s' "$primary"
    return
  fi
  if [ ! -d /data/appendonlydir ]; then
    log "the Sentinels name this node the primary and it holds no data: first boot"
    return
  fi
  # This node held data and is still named primary: it may have died a moment
  # ago, with the Sentinels about to promote a replica. Serving writes now
  # would make two primaries, so give a failover under way time to finish.
  log "the Sentinels still name this node the primary; waiting up to ${BOOT_WAIT_S}s for a failover under way"
  while [ "$waited" -lt "$BOOT_WAIT_S" ]; do
    sleep 1
    waited=$((waited + 1))
    primary=$(current_primary)
    if [ "$primary" != "$NODE_NAME" ]; then
      printf '%s' "$primary"
      return
    fi
  done
  log "no failover happened in ${BOOT_WAIT_S}s: this node stays the primary"
}

run_node() {
  require_node_name
  read_users node
  local upstream conf=/data/redis.conf
  upstream=$(choose_upstream)
  [ -f "$conf" ] && log "replacing $conf from an earlier run: the Sentinels, not that file, decide the role"
  (umask 077 && render redis.conf >"$conf.new")
  if [ -n "$upstream" ]; then
    log "starting as a replica of $upstream"
    printf 'replicaof %s 6379\n' "$upstream" >>"$conf.new"
  else
    log "starting as the primary"
  fi
  mv "$conf.new" "$conf"
  exec redis-server "$conf"
}

# Copies a Sentinel config from stdin to stdout with the current passwords
# and users, this version's timings, and the settings of this version that
# an older file lacks. (Sentinel saves its users as user lines, the
# default one too: they are dropped, requirepass sets that one.)
refresh_passwords() {
  local line script="" fresh
  fresh=$(render sentinel.conf)
  while IFS= read -r line; do
    case "$line" in
      "requirepass "*) line="requirepass \"$PASSWORD\"" ;;
      # This version's users, and how it logs in to the nodes, follow.
      "user "* | "sentinel auth-user $MASTER "*) continue ;;
      "sentinel auth-pass $MASTER "* | "sentinel down-after-milliseconds $MASTER "* | "sentinel failover-timeout $MASTER "*)
        line=$(grep -m 1 "^${line% *} " <<<"$fresh") ;;
      "sentinel client-reconfig-script $MASTER "*) script=1 ;;
    esac
    printf '%s\n' "$line"
  done
  grep -E "^(user |sentinel auth-user $MASTER )" <<<"$fresh"
  [ -n "$script" ] || printf 'sentinel client-reconfig-script %s /usr/local/bin/redis-demote-old-primary\n' "$MASTER"
}

run_sentinel() {
  require_node_name
  read_users sentinel
  local conf=/data/sentinel.conf
  if [ -s "$conf" ] && grep -q "^sentinel monitor $MASTER " "$conf"; then
    log "keeping the Sentinel state in $conf; refreshing its passwords"
    (umask 077 && refresh_passwords <"$conf" >"$conf.new") && mv "$conf.new" "$conf"
  else
    [ -f "$conf" ] && log "$conf does not monitor $MASTER: replacing it"
    (umask 077 && render sentinel.conf >"$conf.new") && mv "$conf.new" "$conf"
  fi
  local pid watcher stopping="" kind node adopt=/tmp/adopt
  trap 'stopping=1; kill -TERM "$pid" "$watcher" 2>/dev/null || true' TERM INT
  while :; do
    rm -f "$adopt"
    # A node it cannot resolve (its task is not running yet, or gone) is
    # only logged as such and looked up again every second.
    redis-sentinel "$conf" &
    pid=$!
    tune_sentinel &
    watch_majority "$pid" "$conf" >"$adopt" &
    watcher=$!
    # Returns when either ends, or early when a signal arrives.
    wait -n "$pid" "$watcher" || true
    if [ -z "$stopping" ] && [ -s "$adopt" ] && kill -0 "$pid" 2>/dev/null; then
      read -r kind node <"$adopt"
      if [ "$kind" = finish ]; then
        log "this Sentinel's failover promoted $node, which the others name and find down: restarting it on $node at once, so that it can vote for and lead the next failover"
      else
        log "this Sentinel names $(sed -n "s/^sentinel monitor $MASTER \([^ ]*\) .*/\1/p" "$conf") while a majority of the Sentinels names $node, with no failover under way, for ${ADOPT_AFTER_S}s: restarting it on $node"
      fi
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" || true
      (umask 077 && adopt_primary "$node" <"$conf" >"$conf.new") && mv "$conf.new" "$conf"
      continue
    fi
    kill -TERM "$watcher" 2>/dev/null || true
    wait "$pid"
    return
  done
}

# How long a Sentinel may name another primary than the majority of the
# Sentinels, with no failover under way, before it adopts theirs (seconds;
# Sentinels exchange their views every 2 s).
readonly ADOPT_AFTER_S=${SENTINEL_ADOPT_AFTER_S:-10}

# Every second while Sentinel $1 (its file: $2) runs, asks it and the other
# Sentinels what they name, and the rule (sentinel-follow: common::sentinel::follow_majority)
# whether it should adopt the majority's primary. Prints "adopt NODE" and
# returns once that answer has lasted ADOPT_AFTER_S. (Sentinel adopts
# another's view only from a newer epoch: one that ended a failover of its
# own on the epoch the others used for another primary keeps a primary
# nobody else names, for good.) Prints "finish NODE" and returns at once
# when its own failover's successor died (see the rule).
watch_majority() {
  local pid=$1 conf=$2 dir answer last="" since=0 s n=0 failed=""
  dir=$(mktemp -d)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    sentinel_master 127.0.0.1 >"$dir/me"
    for s in "${SENTINEL_HOSTS[@]}"; do
      [ "$s" = "$NODE_NAME" ] && continue
      n=$((n + 1))
      sentinel_master "$s" >"$dir/other-$n"
    done
    n=0
    if ! answer=$(sentinel-follow "$dir/me" "$dir"/other-* 2>&1); then
      # Once per kind of failure (a Sentinel starting says nothing yet).
      [ "$answer" = "$failed" ] || log "$answer"
      failed=$answer last=""
      continue
    fi
    failed=""
    case "$answer" in
      "adopt "*)
        [ "$answer" = "$last" ] || { last=$answer; since=$SECONDS; }
        if ((SECONDS - since >= ADOPT_AFTER_S)); then
          printf '%s\n' "$answer"
          break
        fi
        ;;
      "finish "*)
        # Only a leader's saved file names its successor; another Sentinel
        # still trying (it lost the election) waits for the adopt rule.
        if grep -q "^sentinel monitor $MASTER ${answer#finish } " "$conf"; then
          printf '%s\n' "$answer"
          break
        fi
        last=""
        ;;
      *) last="" ;;
    esac
  done
  rm -rf "$dir"
}

# Prints Sentinel $1's answer to SENTINEL master, or nothing when it does not
# answer.
sentinel_master() {
  local reply
  reply=$(REDISCLI_AUTH=$PASSWORD timeout 1 redis-cli --no-auth-warning -h "$1" -p 26379 \
    SENTINEL master "$MASTER" 2>/dev/null) && [[ "$reply" != *ERR* ]] && printf '%s\n' "$reply"
  return 0
}

# Filters sentinel.conf to monitor node $1: the primary's line re-pointed,
# what the Sentinel learnt about the old one (replicas, epochs) dropped; it
# learns the rest from the other Sentinels. Its id and theirs are kept, so
# the others do not count it twice. A file that already monitors $1 (a
# failover's leader saves its successor as the primary) is kept whole: its
# replicas are the ones the next failover chooses from.
adopt_primary() {
  local node=${1:?missing node} line port quorum text
  text=$(cat)
  if grep -q "^sentinel monitor $MASTER $node " <<<"$text"; then
    printf '%s\n' "$text"
    return 0
  fi
  while IFS= read -r line; do
    case "$line" in
      "sentinel monitor $MASTER "*)
        read -r _ _ _ _ port quorum <<<"$line"
        line="sentinel monitor $MASTER $node $port $quorum"
        ;;
      "sentinel known-replica $MASTER "* | "sentinel config-epoch $MASTER "* | "sentinel leader-epoch $MASTER "*) continue ;;
    esac
    printf '%s\n' "$line"
  done <<<"$text"
}

# Settings Sentinel takes only at run time (SENTINEL DEBUG), applied once it
# answers:
#   tilt-period 5000: a Sentinel whose timer was late by over 2 s (the whole
#     machine stalled, as starting containers here does) takes no action for
#     this long. The default 30 s was measured to delay a failover by 30 s
#     when both remaining Sentinels stalled at once.
#   info-period 2000: replicas' offsets and roles are refreshed every 2 s,
#     not 10 s, so the replica promoted is the one that holds the most.
tune_sentinel() {
  for _ in $(seq 1 100); do
    REDISCLI_AUTH=$PASSWORD timeout 2 redis-cli --no-auth-warning -p 26379 \
      SENTINEL DEBUG tilt-period 5000 info-period 2000 2>/dev/null | grep -q OK && return 0
    sleep 0.3
  done
  log "could not shorten Sentinel's TILT period: a stall may delay failovers by 30 s"
}

# HAProxy's checks log in as the monitor user (PING and INFO on the nodes,
# the primary's address from the Sentinels), whose password haproxy.cfg
# holds hex-encoded (no quoting can break it); the rendered file is
# readable only by this user. The proxy has no other Redis password.
run_proxy() {
  local conf=/tmp/haproxy.cfg auth_hex password
  password=$(read_password redis_monitor_password)
  auth_hex=$(printf 'AUTH monitor %s\r\n' "$password" | od -An -v -tx1 | tr -d ' \n')
  (umask 077 && render haproxy.cfg | sed "s/@AUTH_HEX@/$auth_hex/g" >"$conf")
  # Clients' port only on their network (LISTEN_SUBNET), not on stats_net.
  exec listen-address exec haproxy -W -db -f "$conf"
}

# Health checks, over the network as clients see them.
health() {
  local role=${1:?usage: redis-entrypoint health node|sentinel|proxy}
  case "$role" in
    node | sentinel)
      local port=6379
      [ "$role" = sentinel ] && port=26379
      [ "$(REDISCLI_AUTH=$(cat "$PASSWORD_FILE") timeout 2 redis-cli --no-auth-warning -p "$port" ping)" = PONG ]
      ;;
    proxy)
      # Healthy (and so in Swarm's DNS, reachable by clients) only once at
      # most one node is in rotation and it passed its check since it got
      # there, and while a majority of the Sentinels answers its checks (a
      # Sentinel that answers is UP in the named-redis-N of the node it
      # names): an HAProxy that cannot hear them keeps every node in
      # maintenance, and its clients belong on the other one. ("* " marks a
      # check under way.)
      exec 3<>/dev/tcp/127.0.0.1/8404
      printf 'GET /redis;csv HTTP/1.0\r\n\r\n' >&3
      timeout 2 cat <&3 | awk -F, '
        { sub(/^\* /, "", $37) }
        $1 == "primary" && $2 ~ /^redis-/ && $18 ~ /^UP/ { up++; if ($37 != "L7OK") unchecked++ }
        $1 ~ /^named-redis-/ && $2 ~ /^sentinel-/ && $18 ~ /^UP/ && $37 != "INI" && $37 != "" { heard[$2] = 1 }
        END { for (s in heard) sentinels++; exit !(up <= 1 && unchecked == 0 && sentinels >= 2) }'
      ;;
    *) die "unknown role '$role'" ;;
  esac
}

ROLE=${1:-node}
case "$ROLE" in
  node) run_node ;;
  sentinel) run_sentinel ;;
  proxy) run_proxy ;;
  health) health "${2:-}" ;;
  *) die "unknown role '$ROLE' (node, sentinel, proxy or health ROLE)" ;;
esac
