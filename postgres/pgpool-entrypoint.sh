#!/usr/bin/env bash
# pgha pgpool entrypoint: generates pool_passwd (AES, pg_enc), pcp.conf and a
# runtime pgpool.conf from Docker secrets, runs pgpool in the foreground and a
# small reconciler that makes Pgpool route writes to the one primary the
# tier's rule names, and re-attaches backends Pgpool left detached although
# they are healthy (see reconcile; the rules are pgha::pool's).
set -euo pipefail

REPMGR_USERNAME=${REPMGR_USERNAME:-repmgr}
POSTGRESQL_USERNAME=${POSTGRESQL_USERNAME:-votes}
PGPOOL_ADMIN_USERNAME=${PGPOOL_ADMIN_USERNAME:-admin}
PGPOOL_AUTO_ATTACH=${PGPOOL_AUTO_ATTACH:-on}
PGPOOL_BACKENDS=${PGPOOL_BACKENDS:-pg-1,pg-2,pg-3}   # must match backend_hostnameN order

SRC_CONF_DIR=/etc/pgpool2
CONF_DIR=/run/pgpool-conf
HOME_DIR=/var/lib/postgresql
export PGPOOLKEYFILE=$HOME_DIR/.pgpoolkey
export PCPPASSFILE=$HOME_DIR/.pcppass
export PGPASSFILE=$HOME_DIR/.pgpass
export LC_ALL=C

log() { printf '%s pgpool-entrypoint %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
nap() { sleep "$1" & wait $! || true; }

secret() { # <env var holding a file path>: prints the file content
    local var=$1 f
    f=${!var:-}
    [[ -n $f ]] || die "$var is not set"
    [[ -r $f ]] || die "$var=$f is not readable"
    local v
    v=$(<"$f")
    printf '%s' "$v"
}

escape() { local s=${1//\\/\\\\}; printf '%s' "${s//:/\\:}"; }

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$CONF_DIR" /var/run/pgpool /var/log/pgpool
    umask 077
    cp "$SRC_CONF_DIR/pgpool.conf" "$CONF_DIR/"
    # postgres and repmgr only from the stack's own network (PG_REPL_SUBNET):
    # never from the apps' pg_net. Without it (tests on one bridge network),
    # from anywhere.
    admin_from=${PG_REPL_SUBNET:-0.0.0.0/0}
    [[ $admin_from =~ ^[0-9.]+/[0-9]+$ ]] || die "PG_REPL_SUBNET=$admin_from is not an IPv4 subnet"
    sed -e "s|@ADMIN_FROM@|$admin_from|g" -e "s|@REPMGR_USERNAME@|$REPMGR_USERNAME|g" \
        "$SRC_CONF_DIR/pool_hba.conf" >"$CONF_DIR/pool_hba.conf"
    # the monitoring user is configurable
    sed -i -E "s/^(sr_check_user|health_check_user)( *= *)'[^']*'/\1\2'$REPMGR_USERNAME'/" "$CONF_DIR/pgpool.conf"

    # pcp.conf: user:md5(password); md5sum reads the password from stdin
    admin_pw=$(secret PGPOOL_ADMIN_PASSWORD_FILE)
    printf '%s:%s\n' "$PGPOOL_ADMIN_USERNAME" "$(printf '%s' "$admin_pw" | md5sum | cut -d' ' -f1)" >"$CONF_DIR/pcp.conf"
    printf 'localhost:9898:%s:%s\n' "$(escape "$PGPOOL_ADMIN_USERNAME")" "$(escape "$admin_pw")" >"$PCPPASSFILE"

    # random AES key for pool_passwd, new at every start
    head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$PGPOOLKEYFILE"
    : >"$CONF_DIR/pool_passwd"
    # pg_enc -p needs a tty, so feed it a short-lived 0600 "user:password" file
    # (never a command-line argument); it is removed right after use.
    pairs=$CONF_DIR/.pairs
    {
        printf '%s:%s\n' "$POSTGRESQL_USERNAME" "$(secret POSTGRESQL_PASSWORD_FILE)"
        printf '%s:%s\n' "$REPMGR_USERNAME" "$(secret REPMGR_PASSWORD_FILE)"
        if [[ -n ${POSTGRESQL_POSTGRES_PASSWORD_FILE:-} ]]; then
            printf 'postgres:%s\n' "$(secret POSTGRESQL_POSTGRES_PASSWORD_FILE)"
        fi
        if [[ -n ${POSTGRESQL_RESULT_PASSWORD_FILE:-} ]]; then
            printf '%s:%s\n' "${POSTGRESQL_RESULT_USERNAME:-result}" "$(secret POSTGRESQL_RESULT_PASSWORD_FILE)"
        fi
    } >"$pairs"
    pg_enc -m -k "$PGPOOLKEYFILE" -f "$CONF_DIR/pgpool.conf" -i "$pairs" >/dev/null
    rm -f "$pairs"
    grep -q "^$POSTGRESQL_USERNAME:AES" "$CONF_DIR/pool_passwd" || die "pool_passwd generation failed"

    # libpq password file for the reconciler's direct backend checks
    printf '*:*:*:%s:%s\n' "$(escape "$REPMGR_USERNAME")" "$(escape "$(secret REPMGR_PASSWORD_FILE)")" >"$PGPASSFILE"

    chown -R postgres:postgres "$CONF_DIR" /var/run/pgpool /var/log/pgpool "$PGPOOLKEYFILE" "$PCPPASSFILE" "$PGPASSFILE"
    chmod 0600 "$PGPOOLKEYFILE" "$PCPPASSFILE" "$PGPASSFILE" "$CONF_DIR"/*
    exec gosu postgres "$0" "$@"
fi

[[ -s $CONF_DIR/pool_passwd ]] || die "run this entrypoint as root (it generates the config from secrets)"

PGPOOL_PID=""
on_term() {
    log "stopping pgpool (fast)"
    if [[ -n $PGPOOL_PID ]]; then
        kill -INT "$PGPOOL_PID" 2>/dev/null || true
        wait "$PGPOOL_PID" 2>/dev/null || true
    fi
    exit 0
}
trap on_term TERM INT

# -n: foreground, -D: discard pgpool_status (node state is rediscovered)
pgpool -n -D -f "$CONF_DIR/pgpool.conf" -F "$CONF_DIR/pcp.conf" -a "$CONF_DIR/pool_hba.conf" &
PGPOOL_PID=$!
log "pgpool started (pid $PGPOOL_PID)"

# A node's own word on its role, for `pgha pool` (see pgha::pool): "primary
# TIMELINE" (the timeline it writes on, from its current WAL file),
# "streaming", "standby" or "down" (no answer within 1.5 s: at worst a
# live node counts as down for a round, and the rule then changes nothing
# about it).
backend_seen() { # <host>
    local r
    r=$(timeout 1.5 psql -X -qAt "host=$1 port=5432 user=$REPMGR_USERNAME dbname=postgres connect_timeout=2" \
        -c "SELECT CASE WHEN NOT pg_is_in_recovery()
                        THEN 'primary ' || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
                        WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 'streaming'
                        ELSE 'standby' END" 2>/dev/null || true)
    printf '%s' "${r:-down}"
}

pcp() { # <pcp command> <backend index>
    timeout 30 "$1" -h localhost -p 9898 -U "$PGPOOL_ADMIN_USERNAME" -w -n "$2" >/dev/null 2>&1 || log "$1 $2 failed"
}

# Since when (epoch seconds) each backend has been seen streaming while
# Pgpool-II kept it detached: the observation `pgha pool` gets as seconds.
declare -A DETACHED_STREAMING_SINCE=()
# Pgpool-II's last word on each backend (a pcp_node_info line).
declare -A POOL_SAID=()
SEEN_DIR=$(mktemp -d)
# Every 2 s, and every 1 s while a node does not answer (a failover may be
# under way, and each second counts): Pgpool-II's view of each backend
# (pcp_node_info) and each node's own word go to `pgha pool`, which names
# one change (rules and reasons in pgha::pool: Pgpool-II routes writes only
# to the primary the tier's rule names); this runs it with pcp.
reconcile() {
    local -a hosts info asking=()
    local i line seen input="" answer action node why
    IFS=', ' read -r -a hosts <<<"$PGPOOL_BACKENDS"
    NAP=2
    # Asked all at once, and Pgpool-II one node at a time: a frozen node
    # keeps each question about it waiting for its timeout (pcp_node_info
    # asks the node too, and waited about 3 s), and the others must not
    # wait for it.
    for i in "${!hosts[@]}"; do
        backend_seen "${hosts[$i]}" >"$SEEN_DIR/$i" &
        asking+=("$!")
        timeout 1.5 pcp_node_info -h localhost -p 9898 -U "$PGPOOL_ADMIN_USERNAME" -w -n "$i" >"$SEEN_DIR/pool.$i" 2>/dev/null &
        asking+=("$!")
    done
    wait "${asking[@]}" || true
    for i in "${!hosts[@]}"; do
        line=$(<"$SEEN_DIR/pool.$i")
        seen=$(<"$SEEN_DIR/$i")
        # Pgpool-II's word on a node that does not answer may come too late:
        # its word of the round before stands in (at worst a detach of a
        # node already detached, which Pgpool-II refuses at once).
        if [[ -z $line && $seen == down ]]; then line=${POOL_SAID[$i]:-}; fi
        [[ -n $line ]] || return 0 # pcp not ready (or a failover is in progress)
        POOL_SAID[$i]=$line
        read -r -a info <<<"$line"
        [[ $seen != down ]] || NAP=1
        if [[ $seen == streaming && ${info[4]:-} == down ]]; then
            : "${DETACHED_STREAMING_SINCE[$i]:=$EPOCHSECONDS}"
            seen+=" $((EPOCHSECONDS - DETACHED_STREAMING_SINCE[$i]))"
        elif [[ $seen == streaming ]]; then
            unset "DETACHED_STREAMING_SINCE[$i]"
            seen+=" 0"
        else
            unset "DETACHED_STREAMING_SINCE[$i]"
        fi
        input+="node ${hosts[$i]} ${info[4]:-?} ${info[6]:-?} $seen"$'\n'
    done
    if ! answer=$(pgha pool <<<"$input" 2>&1); then
        log "pgha pool failed ($answer); no change"
        return 0
    fi
    read -r action node why <<<"$answer"
    case $action in
    none)
        [[ $answer == none ]] || log "WARNING: ${answer#none }"
        return 0
        ;;
    attach | detach | promote) ;;
    *)
        log "pgha pool gave an answer this script does not know ($answer); no change"
        return 0
        ;;
    esac
    for i in "${!hosts[@]}"; do
        [[ ${hosts[$i]} == "$node" ]] || continue
        log "$why: pcp_${action}_node $i ($node)"
        pcp "pcp_${action}_node" "$i"
        unset "DETACHED_STREAMING_SINCE[$i]"
        return 0
    done
    log "pgha pool named $node, not a backend ($PGPOOL_BACKENDS); no change"
}

NAP=2
while kill -0 "$PGPOOL_PID" 2>/dev/null; do
    nap "$NAP"
    if [[ $PGPOOL_AUTO_ATTACH == on ]]; then reconcile || true; fi
done
wait "$PGPOOL_PID" || true
die "pgpool exited"
