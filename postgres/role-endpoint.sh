#!/usr/bin/env bash
# HTTP role endpoint (one request per process, run by socat on :8008).
#   GET /primary  200 if this node is a primary (not in recovery) accepting connections
#                 whose fence check let it stay lately (a fresh `stay` in
#                 FENCE_FILE: a superseded primary back from a freeze does not
#                 pass before its next check fences it), else 503
#   GET /replica  200 if in recovery AND the WAL receiver is streaming, else 503
#   GET /health   200 if postgres accepts connections (pg_isready)
#   GET /state    200, key=value lines used by the partners at start-up and by
#                 their failover watchers (works
#                 while postgres is down: data-dir facts come from pg_controldata)
#   GET /metrics  200, Prometheus text: alarms (a standby held commits past a
#                 fork point: see check_past_fork in entrypoint.sh) and copies
#                 kept aside
set -euo pipefail
export LC_ALL=C
PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
FENCE_FILE=${FENCE_FILE:-/run/pgha/fence}
FENCE_FRESH=${FENCE_FRESH:-12}

respond() { # <code> <reason> <body>
    printf 'HTTP/1.0 %s %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "$2" "${#3}" "$3"
    exit 0
}

q() { # query the local server over the unix socket (peer auth as postgres)
    PGCONNECT_TIMEOUT=2 timeout 3 "$PGBIN/psql" -X -qAt -h /var/run/postgresql -p 5432 \
        -U postgres -d postgres -c "$1" 2>/dev/null || true
}

# How many alarms the entrypoint raised (lines of ALARMS), and how many
# copies it keeps aside; in bash alone, like the rest of this file where it
# can: each node serves about two requests a second, and every fork counts
# on two loaded cores.
alarms() {
    local lines=()
    [[ ! -f ${PGDATA%/*}/ALARMS ]] || mapfile -t lines <"${PGDATA%/*}/ALARMS"
    echo "${#lines[@]}"
}
kept_aside() {
    local copies=("${PGDATA%/*}"/kept-aside/*)
    [[ -e ${copies[0]} ]] || copies=()
    echo "${#copies[@]}"
}

# shellcheck source=postgres/pgdata-facts.sh
source /usr/local/lib/pgha/pgdata-facts.sh

method="" path=""
if ! IFS=' ' read -r -t 2 method path _; then
    [[ -n $method ]] || respond 400 "Bad Request" $'bad request\n'
fi
while IFS= read -r -t 1 line; do # drain headers
    line=${line%$'\r'}
    [[ -z $line ]] && break
done
path=${path%%\?*}
[[ $method == GET || $method == HEAD ]] || respond 405 "Method Not Allowed" $'GET only\n'

case $path in
/primary | /master | /read-write)
    at="" verdict=""
    [[ ! -r $FENCE_FILE ]] || read -r at verdict _ <"$FENCE_FILE" || true
    if [[ $verdict != stay || ! $at =~ ^[0-9]{1,12}$ ]] || ((EPOCHSECONDS - at > FENCE_FRESH)); then
        respond 503 "Service Unavailable" $'not a primary its fence check let stay lately\n'
    fi
    if [[ $(q "SELECT pg_is_in_recovery()") == f ]]; then
        respond 200 OK $'primary\n'
    fi
    respond 503 "Service Unavailable" $'not primary\n'
    ;;
/replica | /read-only)
    if [[ $(q "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')") == t ]]; then
        respond 200 OK $'replica streaming\n'
    fi
    respond 503 "Service Unavailable" $'not a streaming replica\n'
    ;;
/health)
    if "$PGBIN/pg_isready" -q -h /var/run/postgresql -p 5432; then respond 200 OK $'ok\n'; fi
    respond 503 "Service Unavailable" $'postgres not ready\n'
    ;;
/state)
    body="node=${NODE_NAME:-}"$'\n'
    state=""
    [[ ! -r /run/pgha/state ]] || read -r state </run/pgha/state || true
    body+="entrypoint_state=$state"$'\n'
    if [[ -s $PGDATA/PG_VERSION ]]; then
        data_timeline # the same as local_tli in entrypoint.sh
        a=$REPLY
        body+="initialized=1"$'\n'
        control "Database system identifier"
        body+="sysid=$REPLY"$'\n'
        body+="tli=$a"$'\n'
        control "Database cluster state"
        body+="cluster_state=$REPLY"$'\n'
        if [[ -f $PGDATA/standby.signal ]]; then body+="standby_signal=1"$'\n'; else body+="standby_signal=0"$'\n'; fi
    else
        body+="initialized=0"$'\n'
    fi
    # One query: in recovery, the WAL received; otherwise the timeline it
    # writes on (from its current WAL file). The failover watcher's own
    # lines (pgha/src/failover.rs) follow, and the time, to judge their age.
    IFS='|' read -r rec pos <<<"$(q "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text ELSE (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)::text END")"
    body+="in_recovery=$rec"$'\n'
    case $rec in
    t) body+="received=$pos"$'\n' ;;
    f) body+="write_tli=$pos"$'\n' ;;
    esac
    if [[ -r /run/pgha/watch ]]; then
        while IFS= read -r line; do
            [[ ! $line =~ ^watch_[a-z]+=[A-Za-z0-9._-]*$ ]] || body+=$line$'\n'
        done </run/pgha/watch
    fi
    body+="now=$EPOCHSECONDS"$'\n'
    body+="alarms=$(alarms)"$'\n'
    body+="kept_aside=$(kept_aside)"$'\n'
    respond 200 OK "$body"
    ;;
/metrics)
    body="# HELP pgha_alarms Times a standby held commits past the fork point of the primary it rejoined (they may have been acknowledged and lost).
# TYPE pgha_alarms counter
pgha_alarms $(alarms)
# HELP pgha_kept_aside Copies of WAL or data kept aside before a rewind.
# TYPE pgha_kept_aside gauge
pgha_kept_aside $(kept_aside)
"
    respond 200 OK "$body"
    ;;
*)
    respond 404 "Not Found" $'try /primary /replica /health /state /metrics\n'
    ;;
esac
