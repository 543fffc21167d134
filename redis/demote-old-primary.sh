#!/usr/bin/env bash
# Sentinel's client-reconfig-script (sentinel.conf): run by every Sentinel
# when it switches the primary, with the arguments
#   MASTER ROLE STATE FROM-HOST FROM-PORT TO-HOST TO-PORT
# It makes the old primary a replica of the new one as soon as it answers.
#
# Why: an old primary that was frozen or cut off, and comes back, still says
# role:master, and Sentinel itself turns it into a replica only about 8 s
# later. Votes are acknowledged only once every replica that could be
# promoted confirms them, and the old primary is one of those, so until it
# replicates again no vote is acknowledged. Anything it holds beyond the new
# primary's history was never acknowledged (the new primary never confirmed
# it), so nothing is lost by demoting it.
#
# It tries every 250 ms for up to 30 s (Sentinel allows a script 60 s), and
# gives up as soon as this Sentinel names another primary than TO-HOST. It
# re-points the old primary only while TO-HOST itself answers as a primary:
# a successor that died right after its promotion must not take the old
# primary (the one node holding the latest writes) with it; the Sentinels
# then choose among the survivors, and this script of the next switch acts.
set -euo pipefail

readonly PASSWORD_FILE=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
master=${1:?missing master name} from=${4:?missing old primary} to=${6:?missing new primary} to_port=${7:?missing port}
REDISCLI_AUTH=$(cat "$PASSWORD_FILE")
export REDISCLI_AUTH

cli() { timeout 1 redis-cli --no-auth-warning "$@" 2>/dev/null | tr -d '\r'; }
log() { printf '%s demote-old-primary: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

for _ in $(seq 1 120); do
  named=$(cli -p 26379 SENTINEL get-master-addr-by-name "$master" | head -n 1)
  [ "$named" = "$to" ] || { log "this Sentinel now names '${named:-nothing}', not $to: stopping"; exit 0; }
  if [ "$(cli -h "$to" -p "$to_port" ROLE | head -n 1)" != master ]; then
    sleep 0.25
    continue
  fi
  case "$(cli -h "$from" INFO replication | sed -n 's/^role://p')" in
    slave) exit 0 ;;
    master)
      log "$from came back still a primary; making it a replica of $to"
      cli -h "$from" REPLICAOF "$to" "$to_port" >/dev/null || true
      ;;
  esac
  sleep 0.25
done
exit 0
