#!/usr/bin/env bash
# Starts redis-server with the password from $REDIS_PASSWORD_FILE, written to
# a private config file so that it never shows in the process list.
set -euo pipefail

: "${REDIS_PASSWORD_FILE:?set REDIS_PASSWORD_FILE to the Docker secret holding the password}"
[ -s "$REDIS_PASSWORD_FILE" ] || { echo "redis: $REDIS_PASSWORD_FILE is missing or empty" >&2; exit 2; }
password=$(cat "$REDIS_PASSWORD_FILE")
conf=$(mktemp /tmp/redis.XXXXXX.conf)
chmod 0600 "$conf"
cat >"$conf" <<CONF
bind * -::*
port 6379
dir /data
# Every acknowledged write is in the append-only file within a second.
appendonly yes
appendfsync everysec
requirepass "$password"
masterauth "$password"
protected-mode no
CONF
exec redis-server "$conf"
