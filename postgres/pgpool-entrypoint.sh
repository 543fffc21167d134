#!/usr/bin/env bash
# pgha pgpool entrypoint: generates pool_passwd (AES, pg_enc), pcp.conf and a
# runtime pgpool.conf from Docker secrets, runs pgpool in the foreground and a
# small reconciler that re-attaches backends Pgpool left detached although
# they are healthy (e.g. the primary after a full cluster restart, which
# auto_failback does not cover because it only handles standbys).
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
    cp "$SRC_CONF_DIR/pgpool.conf" "$SRC_CONF_DIR/pool_hba.conf" "$CONF_DIR/"
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

backend_state() { # <host>: primary | streaming | standby | down
    local r
    r=$(timeout 5 psql -X -qAt "host=$1 port=5432 user=$REPMGR_USERNAME dbname=postgres connect_timeout=2" \
        -c "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 'primary'
                        WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 'streaming'
                        ELSE 'standby' END" 2>/dev/null || true)
    printf '%s' "${r:-down}"
}

backend_timeline() { # <host>: the timeline a primary writes on, from its current WAL file name (0 when unknown)
    local r
    r=$(timeout 5 psql -X -qAt "host=$1 port=5432 user=$REPMGR_USERNAME dbname=postgres connect_timeout=2" \
        -c "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int WHERE NOT pg_is_in_recovery()" 2>/dev/null || true)
    [[ $r =~ ^[0-9]+$ ]] && printf '%s' "$r" || printf '0'
}

declare -A STREAMING_ROUNDS=()
# Pgpool's auto_failback re-attaches streaming standbys itself, and its
# failover logic finds a new primary among the *attached* nodes.  The
# reconciler covers what those do not:
#   * Pgpool has no primary and a detached node is a primary again (full
#     cluster restart, primary container restarted in place) -> pcp_attach_node
#   * Pgpool has no primary (search_primary_node_timeout expired) but an
#     attached node has become primary (slow promotion) -> pcp_promote_node
#     without --switchover: only Pgpool's internal primary changes
#   * a standby that streams but stays detached for 4 rounds (~20 s)
reconcile() {
    local -a hosts info lines
    local i status role st out have_primary=0
    IFS=', ' read -r -a hosts <<<"$PGPOOL_BACKENDS"
    # one pcp call for all nodes; fields (4.3): host port status weight
    # status_name pg_status role pg_role delay repl_state sync_state time
    out=$(timeout 5 pcp_node_info -h localhost -p 9898 -U "$PGPOOL_ADMIN_USERNAME" -w 2>/dev/null || true)
    [[ -n $out ]] || return 0 # pcp not ready (or a failover is in progress)
    mapfile -t lines <<<"$out"
    ((${#lines[@]} == ${#hosts[@]})) || return 0
    declare -A pstatus=()
    for i in "${!lines[@]}"; do
        read -r -a info <<<"${lines[$i]}"
        status=${info[4]:-} role=${info[6]:-}
        pstatus[$i]=$status
        if [[ $role == primary && $status != down ]]; then have_primary=1; fi
    done

    if ((have_primary == 0)); then
        # Only the primary on the newest timeline may be chosen: an old
        # primary that was frozen or cut off comes back still a primary, on
        # the timeline its successor left (it fences itself within seconds).
        local -A tli=()
        local newest=-1
        for i in "${!lines[@]}"; do
            [[ $(backend_state "${hosts[$i]}") == primary ]] || continue
            tli[$i]=$(backend_timeline "${hosts[$i]}")
            ((${tli[$i]:-0} > newest)) && newest=${tli[$i]}
        done
        for i in "${!tli[@]}"; do
            if ((${tli[$i]:-0} < newest)); then
                log "backend $i (${hosts[$i]}) is a primary on an older timeline (${tli[$i]} < $newest): not choosing it"
                continue
            fi
            if [[ ${pstatus[$i]} == down ]]; then
                log "pgpool has no primary; backend $i (${hosts[$i]}) is a primary but detached: pcp_attach_node"
                timeout 30 pcp_attach_node -h localhost -p 9898 -U "$PGPOOL_ADMIN_USERNAME" -w -n "$i" >/dev/null 2>&1 ||
                    log "pcp_attach_node $i failed"
            else
                log "pgpool has no primary; attached backend $i (${hosts[$i]}) is a primary: pcp_promote_node (pgpool-internal only)"
                timeout 30 pcp_promote_node -h localhost -p 9898 -U "$PGPOOL_ADMIN_USERNAME" -w -n "$i" >/dev/null 2>&1 ||
                    log "pcp_promote_node $i failed"
            fi
            return 0 # one change per round
        done
        return 0
    fi

    for i in "${!lines[@]}"; do
        if [[ ${pstatus[$i]} != down ]]; then
            STREAMING_ROUNDS[$i]=0
            continue
        fi
        st=$(backend_state "${hosts[$i]}")
        if [[ $st == streaming ]]; then
            STREAMING_ROUNDS[$i]=$((${STREAMING_ROUNDS[$i]:-0} + 1))
        else
            STREAMING_ROUNDS[$i]=0
        fi
        if ((${STREAMING_ROUNDS[$i]} >= 4)); then
            log "backend $i (${hosts[$i]}) streams but is still detached after ~20 s: pcp_attach_node"
            timeout 30 pcp_attach_node -h localhost -p 9898 -U "$PGPOOL_ADMIN_USERNAME" -w -n "$i" >/dev/null 2>&1 ||
                log "pcp_attach_node $i failed"
            STREAMING_ROUNDS[$i]=0
            return 0
        fi
    done
}

while kill -0 "$PGPOOL_PID" 2>/dev/null; do
    nap 5
    if [[ $PGPOOL_AUTO_ATTACH == on ]]; then reconcile || true; fi
done
wait "$PGPOOL_PID" || true
die "pgpool exited"
