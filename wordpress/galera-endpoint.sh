#!/usr/bin/env bash
# HTTP endpoint of a Galera node (one request per process, run by socat on
# :9200 as the mysql user).
#   GET /health  200 "ok" when this node may take queries: wsrep_local_state=4
#                (Synced) or 2 (Donor/Desynced), wsrep_ready=ON,
#                wsrep_cluster_status=Primary;
#                else 503 with the reason. HAProxy routes by it.
#   GET /live    200 while the entrypoint is deliberately not running mysqld
#                (waiting, recovering) or mysqld answers; the container
#                HEALTHCHECK (a restart would not help a waiting node).
#   GET /state   200, key=value lines the partners read at start-up. Works
#                while mysqld is down: the position then comes from the
#                entrypoint's recovery (or grastate.dat).
# mysqld is asked over its unix socket as the SQL user "mysql", which the
# unix_socket plugin lets in because this process runs as the OS user mysql:
# no password anywhere.
set -euo pipefail
export LC_ALL=C
DATADIR=${GALERA_DATADIR:-/var/lib/mysql/data}
RUN_DIR=${GALERA_RUN_DIR:-/run/galera}
SOCKET=${GALERA_SOCKET:-/run/mysqld/mysqld.sock}

respond() { # <code> <reason> <body>
    printf 'HTTP/1.0 %s %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "$2" "${#3}" "$3"
    exit 0
}

# the wsrep status variables as "name value" lines (empty when mysqld is down)
wsrep_status() {
    timeout 3 mariadb --no-defaults --protocol=socket --socket="$SOCKET" -u mysql \
        --connect-timeout=2 -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN
        ('wsrep_local_state','wsrep_local_state_comment','wsrep_ready','wsrep_cluster_status',
         'wsrep_cluster_size','wsrep_local_state_uuid','wsrep_cluster_state_uuid','wsrep_last_committed')" \
        2>/dev/null || true
}

# the status variables as STATUS[name]=value (empty when mysqld is down);
# bash only: this runs every second for every HAProxy, so no extra forks
declare -A STATUS=()
load_status() {
    local k v
    while IFS=$'\t' read -r k v; do
        if [[ -n $k ]]; then STATUS[$k]=$v; fi
    done <<<"$(wsrep_status)"
}

file() { # first line of a run file, empty if missing
    head -n1 "$RUN_DIR/$1" 2>/dev/null || true
}

grastate() { # <key>
    sed -n "s/^$1:[[:space:]]*//p" "$DATADIR/grastate.dat" 2>/dev/null | head -n1 || true
}

method="" path=""
if ! IFS=' ' read -r -t 2 method path _; then
    [[ -n $method ]] || respond 400 "Bad Request" $'bad request\n'
fi
while IFS= read -r -t 1 line; do # drain the headers
    line=${line%$'\r'}
    [[ -z $line ]] && break
done
path=${path%%\?*}
[[ $method == GET || $method == HEAD ]] || respond 405 "Method Not Allowed" $'GET only\n'

case $path in
/health)
    load_status
    [[ ${#STATUS[@]} -gt 0 ]] || respond 503 "Service Unavailable" "mysqld is not answering (phase: $(file phase))"$'\n'
    state=${STATUS[wsrep_local_state]:-} ready=${STATUS[wsrep_ready]:-} status=${STATUS[wsrep_cluster_status]:-}
    # 2 is Donor/Desynced: a node sending a joiner its state by mariabackup
    # keeps serving (the copy is taken online). Counted down, the writer
    # left rotation whenever a node joined and HAProxy cut its sessions: a
    # WordPress install under way at deploy time died part way.
    if [[ ($state == 4 || $state == 2) && $ready == ON && $status == Primary ]]; then
        respond 200 OK $'ok\n'
    fi
    respond 503 "Service Unavailable" "not ready: wsrep_local_state=$state (${STATUS[wsrep_local_state_comment]:-}) wsrep_ready=$ready wsrep_cluster_status=$status"$'\n'
    ;;
/live)
    phase=$(file phase)
    case $phase in
    running | stopping) ;;
    *) respond 200 OK "phase $phase"$'\n' ;;
    esac
    if timeout 3 mariadb --no-defaults --protocol=socket --socket="$SOCKET" -u mysql \
        --connect-timeout=2 -N -B -e 'SELECT 1' >/dev/null 2>&1; then
        respond 200 OK $'mysqld answers\n'
    fi
    respond 503 "Service Unavailable" $'mysqld does not answer\n'
    ;;
/state)
    load_status
    body="node=${GALERA_NODE_NAME:-}"$'\n'
    body+="cluster_name=$(file cluster_name)"$'\n'
    body+="phase=$(file phase)"$'\n'
    if [[ -e $DATADIR/mysql || -e $DATADIR/grastate.dat ]]; then
        body+="has_data=1"$'\n'
    else
        body+="has_data=0"$'\n'
    fi
    body+="foreign=$(file foreign)"$'\n'
    if ((${#STATUS[@]} > 0)); then
        # Running: the live position. A non-Primary node commits nothing, so
        # its position is as stable as a stopped node's.
        body+="mysqld=running"$'\n'
        body+="uuid=${STATUS[wsrep_local_state_uuid]:-}"$'\n'
        body+="seqno=${STATUS[wsrep_last_committed]:-}"$'\n'
        body+="cluster_uuid=${STATUS[wsrep_cluster_state_uuid]:-}"$'\n'
        body+="cluster_status=${STATUS[wsrep_cluster_status]:-}"$'\n'
        body+="local_state=${STATUS[wsrep_local_state]:-}"$'\n'
        body+="cluster_size=${STATUS[wsrep_cluster_size]:-}"$'\n'
        if [[ ${STATUS[wsrep_cluster_status]:-} == Primary ]]; then body+="primary=1"$'\n'; else body+="primary=0"$'\n'; fi
        # nodes a bootstrap went on without (see record_left_out)
        body+="left_out=$(timeout 3 mariadb --no-defaults --protocol=socket --socket="$SOCKET" -u mysql \
            --connect-timeout=2 -N -B -e 'SELECT GROUP_CONCAT(node) FROM galera_meta.left_out' 2>/dev/null | sed 's/^NULL$//' || true)"$'\n'
    else
        pos=$(file position)
        body+="mysqld=down"$'\n'
        body+="uuid=${pos%%:*}"$'\n'
        body+="seqno=${pos##*:}"$'\n'
        body+="primary=0"$'\n'
    fi
    body+="safe_to_bootstrap=$(grastate safe_to_bootstrap)"$'\n'
    body+="grastate_seqno=$(grastate seqno)"$'\n'
    body+="candidate=$(file candidate)"$'\n'
    body+="basis=$(file basis)"$'\n'
    body+="sst_auth=$(file sst_auth)"$'\n'
    respond 200 OK "$body"
    ;;
*)
    respond 404 "Not Found" $'try /health /live /state\n'
    ;;
esac
