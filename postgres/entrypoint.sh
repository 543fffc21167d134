#!/usr/bin/env bash
# pgha entrypoint: one PostgreSQL 15 node (pg-1/pg-2/pg-3) managed by repmgr 5.3.
#
# Supervises four things: postgres (started with pg_ctl so that repmgr can
# stop/start/rewind it at start), repmgrd (monitoring only), the failover
# watcher and a tiny HTTP role endpoint on :8008 (socat + pgha-http.sh).
# If postgres dies and does not come back within PG_DOWN_GRACE seconds, the
# container exits so Docker/Swarm restarts it.
#
# The decisions are the pgha binary's (pgha/src/, a table test per story);
# this script observes, asks and does what the answer says:
#   * at every start (decide_and_start), `pgha start`: clone the primary,
#     create the cluster (BOOTSTRAP_NODE only), keep another cluster's data
#     aside and re-clone, follow the primary (a former standby), rejoin it
#     (a former primary: repmgr node rejoin --force-rewind), start as the
#     primary, or wait and say why; when a start step fails (recover_from),
#     `pgha recover`: look again (the primary is gone), rewind, or clone;
#   * while running (supervise), `pgha fence`: a primary superseded by one
#     on a newer timeline stops; `pgha stray`: a standby that does not
#     stream from the primary for STRAY_LIMIT seconds restarts;
#   * on a standby, every second (watch_failover), `pgha failover`: promote
#     this node, follow a new primary, or wait; before promoting, `pgha
#     before-promote`; before a rewind, `pgha before-rewind`.
set -euo pipefail

# ---------------------------------------------------------------- settings --
NODE_NAME=${NODE_NAME:?NODE_NAME must be set (pg-1, pg-2 or pg-3)}
PARTNERS=${PARTNERS:-pg-1,pg-2,pg-3}
BOOTSTRAP_NODE=${BOOTSTRAP_NODE:-pg-1}
PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_PORT=5432
HTTP_PORT=${PGHA_HTTP_PORT:-8008}
REPMGR_USERNAME=${REPMGR_USERNAME:-repmgr}
REPMGR_DATABASE=${REPMGR_DATABASE:-repmgr}
POSTGRESQL_USERNAME=${POSTGRESQL_USERNAME:-votes}
POSTGRESQL_DATABASE=${POSTGRESQL_DATABASE:-votes}
# The result service's role: it reads totals and nothing else (ensure_reader).
# Managed only when its password is given.
RESULT_USERNAME=${POSTGRESQL_RESULT_USERNAME:-result}
REPMGR_PRIORITY=${REPMGR_PRIORITY:-100}
REPMGR_LOCATION=${REPMGR_LOCATION:-swarm}
# The timeline a primary writes on, from the name of its current WAL file:
# right after a promotion pg_control_checkpoint() still shows the old one
# until the next checkpoint completes.
WRITE_TIMELINE="('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"

# seconds a former primary that finds no other primary waits before starting
# as primary (the watchers promote a standby about FAILOVER_DETECT s after
# the primary stops answering)
FAILOVER_WINDOW=${FAILOVER_WINDOW:-20}
# seconds a standby may go without streaming from the primary
STRAY_LIMIT=${STRAY_LIMIT:-30}
STARTED_AT=$EPOCHSECONDS
# seconds postgres may stay down (with no repmgr command running) before the
# container gives up and exits
PG_DOWN_GRACE=${PG_DOWN_GRACE:-15}

# What pg_rewind or a re-clone would discard is kept here first (in the
# volume, beside PGDATA), and alarms are appended to ALARMS; at most
# KEEP_ASIDE_MAX copies of each kind are kept.
KEPT_DIR=$(dirname "$PGDATA")/kept-aside
ALARMS_FILE=$(dirname "$PGDATA")/ALARMS
KEEP_ASIDE_MAX=${KEEP_ASIDE_MAX:-3}

CONF_DIR=/etc/pgha
RUN_DIR=/run/pgha
PG_LOG_FIFO=$RUN_DIR/postgres-log.fifo
SECRETS_DIR=$RUN_DIR/secrets
STATE_FILE=$RUN_DIR/state
REPMGR_CONF=$CONF_DIR/repmgr.conf
PGPASS_FILE=/var/lib/postgresql/.pgpass

export PGDATA NODE_NAME LC_ALL=C PATH="$PGBIN:$PATH"

if [[ -n ${NODE_ID:-} ]]; then
    :
elif [[ $NODE_NAME =~ -([0-9]+)$ ]]; then
    NODE_ID=${BASH_REMATCH[1]}
else
    echo "cannot derive NODE_ID from NODE_NAME=$NODE_NAME (expected pg-<n>)" >&2
    exit 1
fi

IFS=', ' read -r -a ALL_NODES <<<"$PARTNERS"
PEERS=()
for n in "${ALL_NODES[@]}"; do
    [[ -n $n && $n != "$NODE_NAME" ]] && PEERS+=("$n")
done

# UTC to the millisecond (failover steps are a second or less apart), no fork.
log() {
    local t=$EPOCHREALTIME
    TZ=UTC printf '%(%Y-%m-%dT%H:%M:%S)T.%sZ pgha[%s] %s\n' "${t%.*}" "${t:${#t}-6:3}" "$NODE_NAME" "$*" >&2
}
die() { log "FATAL: $*"; exit 1; }

# sleep that lets the TERM trap run immediately
nap() { sleep "$1" & wait $! || true; }

# ------------------------------------------------------- root phase: secrets --
stage_secret() { # <env var holding a file path> <name in SECRETS_DIR>
    local var=$1 name=$2 src
    src=${!var:-}
    [[ -n $src ]] || die "$var is not set (expected a Docker secret file path)"
    [[ -r $src ]] || die "$var=$src is not readable"
    (umask 077 && cat -- "$src" >"$SECRETS_DIR/$name")
}

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$SECRETS_DIR" "$(dirname "$PGDATA")" /var/run/postgresql "$CONF_DIR"
    chmod 0700 "$SECRETS_DIR"
    stage_secret POSTGRESQL_POSTGRES_PASSWORD_FILE postgres_password
    stage_secret POSTGRESQL_PASSWORD_FILE app_password
    stage_secret REPMGR_PASSWORD_FILE repmgr_password
    [[ -z ${POSTGRESQL_RESULT_PASSWORD_FILE:-} ]] || stage_secret POSTGRESQL_RESULT_PASSWORD_FILE result_password
    chown -R postgres:postgres "$RUN_DIR" "$CONF_DIR" /var/run/postgresql
    chown postgres:postgres "$(dirname "$PGDATA")"
    if [[ -d $PGDATA ]]; then chown -R postgres:postgres "$PGDATA"; fi
    exec gosu postgres "$0" "$@"
fi

# ------------------------------------------------- from here: user postgres --
if [[ ! -s $SECRETS_DIR/repmgr_password ]]; then # started directly as non-root
    mkdir -p "$SECRETS_DIR" && chmod 0700 "$SECRETS_DIR"
    stage_secret POSTGRESQL_POSTGRES_PASSWORD_FILE postgres_password
    stage_secret POSTGRESQL_PASSWORD_FILE app_password
    stage_secret REPMGR_PASSWORD_FILE repmgr_password
    [[ -z ${POSTGRESQL_RESULT_PASSWORD_FILE:-} ]] || stage_secret POSTGRESQL_RESULT_PASSWORD_FILE result_password
fi

set_state() { printf '%s\n' "$*" >"$STATE_FILE"; }

pgpass_escape() { local s=${1//\\/\\\\}; printf '%s' "${s//:/\\:}"; }

write_pgpass() {
    local repmgr_pw pg_pw
    repmgr_pw=$(<"$SECRETS_DIR/repmgr_password")
    pg_pw=$(<"$SECRETS_DIR/postgres_password")
    (
        umask 077
        {
            printf '*:*:*:%s:%s\n' "$(pgpass_escape "$REPMGR_USERNAME")" "$(pgpass_escape "$repmgr_pw")"
            printf '*:*:*:postgres:%s\n' "$(pgpass_escape "$pg_pw")"
        } >"$PGPASS_FILE"
    )
    chmod 0600 "$PGPASS_FILE"
}

node_conninfo() { # <host>
    printf 'host=%s port=%s user=%s dbname=%s connect_timeout=2' "$1" "$PG_PORT" "$REPMGR_USERNAME" "$REPMGR_DATABASE"
}

write_configs() {
    local sync_list="" n
    for n in "${ALL_NODES[@]}"; do sync_list+="${sync_list:+,}\"$n\""; done

    cat >"$CONF_DIR/pgha.conf" <<EOF
# generated by pgha entrypoint at every start - do not edit in the volume
listen_addresses = '*'
port = $PG_PORT
unix_socket_directories = '/var/run/postgresql'
hba_file = '$CONF_DIR/pg_hba.conf'
cluster_name = '$NODE_NAME'
max_connections = 200
shared_buffers = 128MB
password_encryption = 'scram-sha-256'
wal_level = replica
wal_log_hints = on                 # required by pg_rewind (node rejoin --force-rewind)
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = 2GB       # a dead standby's slot must not fill the disk
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
# Longer than the failure detection (FAILOVER_DETECT): a standby whose walreceiver timed
# out and restarted reports a receive position rewound to its segment start,
# and an election would then promote a standby that has less.
wal_receiver_timeout = 60s
wal_sender_timeout = 60s
# A standby whose primary went away tries to stream again every second, not
# every 5 s (the default): with ANY 1, no commit completes until one does,
# so a primary that restarts (or a new one) waits for it.
wal_retrieve_retry_interval = 1s
# a commit is acknowledged only once it is also flushed on one standby.
# A primary without any streaming standby therefore blocks commits (by design).
synchronous_commit = on
synchronous_standby_names = 'ANY 1 ($sync_list)'
shared_preload_libraries = 'repmgr'
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] $NODE_NAME %q%u@%d '
log_connections = off
EOF

    # Over the network only from the stack's own network: a node is on
    # pg_repl alone, so "samenet" is pg_repl, where the partners, Pgpool-II
    # and pg-haproxy are. The apps reach a node only through Pgpool-II,
    # which refuses postgres and repmgr from them (pool_hba.conf).
    cat >"$CONF_DIR/pg_hba.conf" <<EOF
# TYPE  DATABASE     USER        ADDRESS   METHOD
local   all          postgres              peer
local   all          all                   scram-sha-256
host    replication  $REPMGR_USERNAME  samenet  scram-sha-256
host    all          all         samenet   scram-sha-256
EOF

    # When repmgr starts postgres itself (node rejoin, standby follow), it
    # reads its output through a pipe it then closes: that server's log was
    # lost. It goes to the container's log instead (relay_pg_log).
    local pg_log=$PG_LOG_FIFO
    # repmgrd only monitors (failover=manual): the failover watcher decides
    # (watch_failover). Its own election replaced a hung primary after 16 s,
    # sometimes never, and faster detection made it cancel itself (a sibling
    # that had pinged a second ago counted as seeing the primary).
    cat >"$REPMGR_CONF" <<EOF
node_id=$NODE_ID
node_name='$NODE_NAME'
conninfo='$(node_conninfo "$NODE_NAME")'
data_directory='$PGDATA'
pg_bindir='$PGBIN'
replication_user='$REPMGR_USERNAME'
use_replication_slots=true
location='$REPMGR_LOCATION'
priority=$REPMGR_PRIORITY
log_level='INFO'
log_facility='STDERR'
failover='manual'
promote_command='/usr/local/bin/entrypoint.sh promote'
follow_command='$PGBIN/repmgr standby follow -f $REPMGR_CONF --log-to-file --upstream-node-id=%n'
monitor_interval_secs=2
connection_check_type='ping'
reconnect_attempts=3
reconnect_interval=2
primary_visibility_consensus=true
promote_check_timeout=30
standby_follow_timeout=30
repmgrd_pid_file='$RUN_DIR/repmgrd.pid'
service_start_command='$PGBIN/pg_ctl -w -t 300 -D $PGDATA -l $pg_log start'
service_restart_command='$PGBIN/pg_ctl -w -t 300 -D $PGDATA -m fast -l $pg_log restart'
EOF
}

# postgresql.conf inside PGDATA is only an include, so that pg_basebackup /
# pg_rewind copies of it are harmless and pg_ctl -D PGDATA works for repmgr.
ensure_include() {
    printf "include '%s/pgha.conf'\n" "$CONF_DIR" >"$PGDATA/postgresql.conf"
}

# --------------------------------------------------------------- helpers --
peer_sql() { # <host> <sql>
    local out
    if out=$(timeout 6 psql -X -qAt "$(node_conninfo "$1")" -c "$2" 2>&1); then
        printf '%s\n' "$out"
        return 0
    fi
    if [[ $out == *"password authentication failed"* ]]; then
        log "$1 refused the $REPMGR_USERNAME password: this node's repmgr_password secret is not the cluster's"
    fi
    return 1
}

peer_http() { # <host> <path> [seconds]: body of http://host:8008/path (empty on error)
    # shellcheck disable=SC2016
    timeout "${3:-4}" bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.0\r\n\r\n" "$3" >&3
        sed "1,/^\r\{0,1\}$/d" <&3' _ "$1" "$HTTP_PORT" "$2" 2>/dev/null || true
}

kv() { # <key> <text of key=value lines>
    sed -n "s/^$1=//p" <<<"$2" | head -n1
}

# shellcheck source=postgres/pgdata-facts.sh
source /usr/local/lib/pgha/pgdata-facts.sh

controldata() { # <field name>
    control_load
    control "$1"
    [[ -z $REPLY ]] || printf '%s\n' "$REPLY"
}

# The newest timeline this node knows of (see data_timeline).
local_tli() {
    data_timeline
    echo "$REPLY"
}

pg_running() { pg_ctl -D "$PGDATA" status >/dev/null 2>&1; }

start_pg() {
    ensure_include
    log "starting postgres"
    pg_ctl -D "$PGDATA" -w -t 300 start
}

stop_pg() {
    if pg_running; then
        log "stopping postgres (fast)"
        pg_ctl -D "$PGDATA" -w -t 60 -m fast stop || true
    fi
}

# The timeline partner $1 writes on when it answers as a registered
# primary (running as a primary, and named so in its repmgr metadata).
registered_primary_tli() { # <host>
    local r
    r=$(peer_sql "$1" "SELECT $WRITE_TIMELINE WHERE NOT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM repmgr.nodes WHERE node_name = '$1' AND type = 'primary' AND active)" || true)
    [[ $r =~ ^[0-9]{1,9}$ ]] && echo "$r"
}

# Prints "NAME TLI" for each partner that is a running, registered primary,
# with the timeline it writes on. Which one is the primary (the newest
# timeline; two on it are no basis to choose) is the rule's: pgha start and
# pgha stray read these lines.
find_primary() {
    local p r
    for p in "${PEERS[@]}"; do
        if r=$(registered_primary_tli "$p"); then printf '%s %s\n' "$p" "$r"; fi
    done
    return 0
}

node_id_of() { [[ $1 =~ -([0-9]+)$ ]] && printf '%s' "${BASH_REMATCH[1]}"; }

# Another cluster's data is kept as $PGDATA.foreign-TIME and never removed
# here; the rest (a failed clone's leftovers, a node's copy of the cluster
# before a fresh clone) as $PGDATA.old-TIME, the newest KEEP_ASIDE_MAX of
# them, so that a clone failing again and again cannot fill the disk, nor
# remove the one copy of another cluster.
keep_old_datadir() { # <reason> [foreign]
    local dest kind=old
    [[ ${2:-} != foreign ]] || kind=foreign
    dest="$PGDATA.$kind-$(date -u +%Y%m%dT%H%M%SZ)"
    log "keeping old data directory as $dest ($1)"
    mv "$PGDATA" "$dest"
    [[ $kind == foreign ]] || prune_oldest "$PGDATA.old-*"
}

# Removes all but the KEEP_ASIDE_MAX newest of the paths matching glob $1
# (their names end in a UTC time stamp, so they sort by age).
prune_oldest() { # <glob>
    local old
    # shellcheck disable=SC2086 # the glob is meant to expand
    for old in $(ls -d $1 2>/dev/null | sort | head -n "-$KEEP_ASIDE_MAX"); do
        log "removing the oldest kept-aside copy $old (at most $KEEP_ASIDE_MAX are kept)"
        rm -rf -- "$old"
    done
}

# Keeps the whole data directory aside, because of reason $1.
keep_whole() { # <reason>
    log "WARNING: $1: keeping this data directory aside whole before the rewind"
    mkdir -p "$KEPT_DIR"
    cp -a "$PGDATA" "$KEPT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-whole-tli$(local_tli)"
    prune_oldest "$KEPT_DIR/*-whole-tli*"
}

# The WAL segment file holding position $2 on timeline $1 (16 MB segments).
wal_segment() { # <timeline> <lsn>
    local hi=${2%/*} lo=${2#*/}
    printf '%08X%08X%08X' "$1" "0x$hi" "$((0x$lo >> 24))"
}

# Before pg_rewind moves this (stopped) node onto <primary>'s newer timeline,
# gathers what the rule (`pgha before-rewind`, pgha/src/rules.rs) needs:
# the timelines, the fork point, whether its WAL segment is here, and what
# this node holds past it. The rule says: nothing to check (skip), keep the
# whole directory aside (what lies past the fork cannot be read), nothing
# committed (rewind), a former primary's commits no standby confirmed (kept
# aside, logged), or a standby's commits from a superseded primary (kept
# aside, ALARM).
check_past_fork() { # <primary host>
    local primary=$1 mine theirs history fork=none listing="" verdict was=primary dest first="" segment=gone checkpoint
    [[ -f $PGDATA/standby.signal ]] && was=standby
    mine=$(local_tli)
    theirs=$(peer_sql "$primary" "SELECT $WRITE_TIMELINE" || true)
    [[ $theirs =~ ^[0-9]{1,9}$ ]] || theirs=unknown
    if [[ $theirs != unknown ]] && ((theirs > mine)); then
        history=$(peer_sql "$primary" "SELECT pg_read_file('pg_wal/' || lpad(upper(to_hex($theirs)), 8, '0') || '.history')") || history=""
        fork=$(pgha fork-point --timeline "$mine" <<<"$history" 2>/dev/null) || fork=none
    fi
    if [[ $fork != none ]]; then
        first=$(wal_segment "$mine" "$fork")
        [[ -f $PGDATA/pg_wal/$first ]] && segment=present
        listing=$(pg_waldump -p "$PGDATA/pg_wal" -t "$mine" -s "$fork" 2>&1 || true)
    fi
    checkpoint=$(controldata "Latest checkpoint location")
    if ! verdict=$(pgha before-rewind --was "$was" --mine "$mine" --theirs "$theirs" --fork "$fork" \
        --fork-segment "$segment" --checkpoint "${checkpoint:-unknown}" <<<"$listing" 2>&1); then
        keep_whole "pgha before-rewind failed: $verdict"
        return 0
    fi
    case $verdict in
    skip*)
        log "no fork to check before the rewind: ${verdict#skip }"
        return 0
        ;;
    keep-whole*)
        keep_whole "${verdict#keep-whole }"
        return 0
        ;;
    discards*)
        log "this $was holds nothing committed past the fork point $fork of timeline $mine (${verdict#discards } records): rewinding onto $primary"
        return 0
        ;;
    esac
    read -r _ records commits <<<"$verdict"
    # The listing of what is past the fork, and the WAL segments holding it.
    dest="$KEPT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-$was-tli$mine-from-${fork/\//-}"
    mkdir -p "$dest"
    printf '%s\n' "$listing" >"$dest/records-past-fork.txt"
    local f
    for f in "$PGDATA/pg_wal/$(printf '%08X' "$mine")"*; do
        [[ -f $f && ! ${f##*/} < $first ]] && cp -- "$f" "$dest/"
    done
    # A former primary's unconfirmed commits are routine, and bounded in
    # number; an alarm's copy is the evidence of commits that may have been
    # acknowledged, and is never removed here (status and /metrics count it).
    [[ $verdict == alarm* ]] || prune_oldest "$KEPT_DIR/*-$was-tli*"
    if [[ $verdict == alarm* ]]; then
        log "ALARM: this STANDBY holds $commits commits ($records records) past the fork point $fork of timeline $mine: it received WAL from a primary a promotion had superseded, and may have confirmed commits $primary lacks. Kept in $dest"
        printf '%s %s: standby held %s commits past fork %s of timeline %s; kept in %s\n' \
            "$(date -u +%FT%TZ)" "$NODE_NAME" "$commits" "$fork" "$mine" "$dest" >>"$ALARMS_FILE"
    else
        log "this former primary holds $commits commits ($records records) past the fork point $fork of timeline $mine, which no standby confirmed (no client was told they succeeded): kept in $dest, then rewinding"
    fi
}

# ------------------------------------------------------------- promotion --
# The promote step of the failover watcher. A standby still streaming from the old primary
# confirms its commits the moment it thaws or its network heals, and with
# ANY 1 synchronous replication that one confirmation acknowledges a commit
# the new timeline lacks. So before promoting, this node stops every standby
# partner's WAL receiver (primary_conninfo = '', which their watcher
# replaces with the new primary: follow_now), then lets the rule (pgha
# before-promote) decide from what it sees; a refusal gives each partner its
# primary_conninfo back.
declare -A DETACHED=() # partner -> the primary_conninfo it had

set_conninfo() { # <host> <primary_conninfo>
    timeout 6 psql -X -qAt "$(node_conninfo "$1")" -v ci="$2" >/dev/null 2>&1 <<'SQL'
ALTER SYSTEM SET primary_conninfo = :'ci';
SELECT pg_reload_conf();
SQL
}

# psql on <host> (this node: over its socket) in repmgr's database, stdin
# or -c passed through.
on() { # <host> psql-args...
    local h=$1
    shift
    if [[ $h == "$NODE_NAME" ]]; then
        timeout 6 psql -X -qAt -h /var/run/postgresql -U postgres -d "$REPMGR_DATABASE" "$@"
    else
        timeout 6 psql -X -qAt "$(node_conninfo "$h")" "$@"
    fi
}

# The primary_conninfo of standby <standby> streaming from <primary> (no
# quotes in it: names are [a-z0-9._-], and so is the repmgr user).
stream_conninfo() { # <standby> <primary>
    printf 'host=%s port=%s user=%s application_name=%s connect_timeout=2' "$2" "$PG_PORT" "$REPMGR_USERNAME" "$1"
}

# Points the running standby <standby> at <primary> without a restart
# (primary_conninfo is reloadable, and recovery follows the new timeline):
# its replication slot made on <primary> first, then its primary_conninfo
# and slot set and reloaded, and repmgr's metadata told where it streams
# from. Run by the standby itself (follow_now) or by the node just promoted,
# for the partners it detached.
point_at() { # <standby> <primary>
    local s=$1 p=$2 slot
    slot="repmgr_slot_$(node_id_of "$s")"
    on "$p" -c "SELECT pg_create_physical_replication_slot('$slot') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot')" >/dev/null 2>&1 ||
        log "could not make sure slot $slot exists on $p"
    on "$s" -v ci="$(stream_conninfo "$s" "$p")" -v slot="$slot" >/dev/null 2>&1 <<'SQL' || return 1
ALTER SYSTEM SET primary_conninfo = :'ci';
ALTER SYSTEM SET primary_slot_name = :'slot';
SELECT pg_reload_conf();
SQL
    on "$p" -c "UPDATE repmgr.nodes SET upstream_node_id = $(node_id_of "$p"), type = 'standby', active = true WHERE node_id = $(node_id_of "$s")" >/dev/null 2>&1 ||
        log "could not record in repmgr's metadata that $s streams from $p"
}

# One line for `pgha before-promote` about partner $1 (see pgha::partners).
partner_seen() { # <host> <name of the failed primary>
    local p=$1 r st
    if [[ $p == "$2" ]]; then echo "$p failed"; return 0; fi
    if ! r=$(peer_sql "$p" "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver), GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"); then
        st=$(peer_http "$p" /state)
        if [[ -n $st && -z $(kv in_recovery "$st") ]]; then echo "$p down"; else echo "$p silent"; fi
        return 0
    fi
    case $r in
    f\|*) echo "$p primary" ;;
    t\|t\|*) echo "$p standby receiving ${r##*|}" ;;
    t\|f\|*) echo "$p standby stopped ${r##*|}" ;;
    *) echo "$p silent" ;;
    esac
}

detach_partner() { # <host>
    local p=$1 ci
    ci=$(peer_sql "$p" "SELECT current_setting('primary_conninfo') WHERE pg_is_in_recovery()") || return 0
    [[ -n $ci && -z ${DETACHED[$p]+set} ]] || return 0
    if set_conninfo "$p" ""; then
        DETACHED[$p]=$ci
        log "promote: stopped $p's WAL receiver (primary_conninfo cleared)"
    fi
}

promote_after_check() { # <the failed primary: the upstream the watcher lost>
    local failed=$1 p seen verdict
    trap - TERM INT # the node's stop handler belongs to the supervising process
    log "promote: the failover rule chose this node; the failed primary is $failed"
    for p in "${PEERS[@]}"; do [[ $p == "$failed" ]] || detach_partner "$p"; done
    for _ in $(seq 1 12); do
        # (A failed local query leaves "me" empty: the rule refuses, and the
        # partners get their conninfo back, instead of set -e exiting here.)
        seen="me $(psql -X -qAt -h /var/run/postgresql -U postgres -d postgres -c "SELECT GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())" || true)"
        for p in "${PEERS[@]}"; do seen+=$'\n'$(partner_seen "$p" "$failed"); done
        verdict=$(pgha before-promote <<<"$seen" 2>&1) || verdict="refuse pgha before-promote failed: $verdict"
        case $verdict in
        go)
            log "promote: $(tr '\n' ';' <<<"$seen") -> promoting"
            # pg_promote() itself, not `repmgr standby promote`: the rule
            # has decided, and repmgr's own check of the failed primary
            # (a connect timeout per attempt) and its 1 s polls took 3.4 s
            # of a 10 s failover. pg_promote(true) returns once this node
            # writes; claim_metadata then records it in repmgr's metadata.
            # pg_promote() gives up waiting, not promoting: past its 30 s
            # what counts is whether this node runs as primary.
            if [[ $(timeout 40 psql -X -qAt -h /var/run/postgresql -U postgres -d postgres -c "SELECT pg_promote(true, 30)" 2>&1) != t ]] &&
                [[ $(local_sql "SELECT pg_is_in_recovery()") != f ]]; then
                verdict="refuse pg_promote() did not complete within 30 s"
                break
            fi
            log "promote: this node runs as primary"
            # The promote rule's verdict is the fence rule's: this node is
            # the newest (the role endpoint's /primary answers at once).
            printf '%s stay\n' "$EPOCHSECONDS" >"$FENCE_FILE"
            # The partners it detached stream from it at once: with ANY 1,
            # no commit completes until one does.
            for p in "${!DETACHED[@]}"; do
                if point_at "$p" "$NODE_NAME"; then log "promote: pointed $p at this node"; else log "promote: could not point $p at this node (its watcher will follow)"; fi
            done
            claim_metadata promoted
            exit 0
            ;;
        wait*) nap 0.5 ;;
        *) break ;;
        esac
    done
    log "promote: NOT promoting: ${verdict#* } (saw: $(tr '\n' ';' <<<"$seen"))"
    for p in "${!DETACHED[@]}"; do
        set_conninfo "$p" "${DETACHED[$p]}" && log "promote: gave $p its primary_conninfo back"
    done
    exit 1
}

# --------------------------------------------------------------- actions --
init_primary() {
    set_state initialising
    log "initialising a NEW cluster on $NODE_NAME (bootstrap node, no partner has data)"
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    initdb -D "$PGDATA" --username=postgres --pwfile="$SECRETS_DIR/postgres_password" \
        --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --data-checksums >/dev/null
    start_pg
    # synchronous_commit=local: there is no standby yet, a normal commit would block.
    psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d postgres \
        -v repmgr_user="$REPMGR_USERNAME" -v repmgr_db="$REPMGR_DATABASE" \
        -v app_user="$POSTGRESQL_USERNAME" -v app_db="$POSTGRESQL_DATABASE" <<'SQL'
SET synchronous_commit = local;
-- passwords are read by psql itself from the 0600 copies (never on a command line)
\set repmgr_pw `cat /run/pgha/secrets/repmgr_password`
\set app_pw `cat /run/pgha/secrets/app_password`
CREATE ROLE :"repmgr_user" WITH LOGIN SUPERUSER REPLICATION PASSWORD :'repmgr_pw';
-- repmgr metadata writes (register/promote/events) must never wait for a
-- synchronous standby: a freshly promoted primary has none yet.
ALTER ROLE :"repmgr_user" SET synchronous_commit = local;
CREATE DATABASE :"repmgr_db" OWNER :"repmgr_user";
CREATE ROLE :"app_user" WITH LOGIN PASSWORD :'app_pw';
CREATE DATABASE :"app_db" OWNER :"app_user";
SQL
    repmgr -f "$REPMGR_CONF" primary register --force
    log "cluster initialised; $NODE_NAME registered as primary"
}

clone_from() { # <primary host>
    local primary=$1
    set_state cloning
    log "cloning from primary $primary"
    if [[ -d $PGDATA ]] && [[ -n $(ls -A "$PGDATA") ]]; then
        keep_old_datadir "clone needs an empty data directory"
    fi
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    repmgr -f "$REPMGR_CONF" -h "$primary" -p "$PG_PORT" -U "$REPMGR_USERNAME" -d "$REPMGR_DATABASE" \
        standby clone --fast-checkpoint
    start_pg
    repmgr -f "$REPMGR_CONF" standby register --force --upstream-node-id="$(node_id_of "$primary")"
    log "cloned from $primary and registered as standby"
}

# bring a (crashed) former primary to a clean shutdown without exposing it on
# the network: single-user mode completes crash recovery and exits.
ensure_clean_shutdown() {
    local st
    st=$(controldata "Database cluster state")
    case $st in
    "shut down" | "shut down in recovery") return 0 ;;
    esac
    if [[ -f $PGDATA/standby.signal ]]; then
        # Off the network, and streaming from no one: its primary_conninfo
        # may name a superseded primary, whose WAL past the fork it would
        # receive (and confirm) while it finishes recovery.
        log "data directory state is '$st' (standby); starting/stopping it once as standby, off the network and streaming from no one, to finish recovery"
        ensure_include
        pg_ctl -D "$PGDATA" -w -t 300 -o "-c listen_addresses= -c primary_conninfo=" start && stop_pg
    else
        log "data directory state is '$st'; running crash recovery in single-user mode (no network) before pg_rewind"
        ensure_include
        postgres --single -D "$PGDATA" postgres </dev/null >/dev/null
    fi
}

# Sets REJOINED (yes|no) and returns 0: called plainly, so that set -e
# still stops the script when a step before the rewind fails (keeping a
# copy aside, above all).
REJOINED=no
rejoin_to() { # <primary host>
    local primary=$1
    REJOINED=no
    set_state rejoining
    ensure_clean_shutdown || true
    check_past_fork "$primary"
    # pg_rewind takes the source's timeline from its control file, which a
    # newly promoted primary updates only when its first checkpoint after the
    # promotion completes (a spread one: minutes). Before that, pg_rewind
    # sees both on one timeline and rewinds nothing, and this node can never
    # stream (seen: repmgr then waited its 60 s and the node was cloned
    # again). So the primary checkpoints first.
    if ! peer_sql "$primary" "CHECKPOINT" >/dev/null; then
        log "CHECKPOINT on $primary failed; pg_rewind may find nothing to rewind (then this node is cloned)"
    fi
    log "rejoining as standby of $primary (repmgr node rejoin --force-rewind)"
    if repmgr -f "$REPMGR_CONF" node rejoin -d "$(node_conninfo "$primary")" \
        --force-rewind --config-files=postgresql.conf --verbose; then
        log "node rejoin succeeded"
        if ! pg_running; then start_pg; fi
        REJOINED=yes
        return 0
    fi
    log "node rejoin / pg_rewind failed"
    stop_pg
}

# A step of the start failed: $1 (start, follow or rejoin) with primary $2.
# What follows is the rule's (`pgha recover`, pgha/src/recover.rs): look
# again (RECOVERED=no: the caller asks the start rule again), rewind, or
# clone (RECOVERED=yes: this node is a standby of the primary now). Returns
# 0, called plainly (set -e). RECOVER_STEP and RECOVER_TRIES count the
# failures of one step in a row.
RECOVER_STEP="" RECOVER_TRIES=0 RECOVERED=no
recover_from() { # <failed step> <primary host>
    local step=$1 primary=$2 theirs answers=no answer action name why
    RECOVERED=no
    if [[ $step == "$RECOVER_STEP" ]]; then
        RECOVER_TRIES=$((RECOVER_TRIES + 1))
    else
        RECOVER_STEP=$step RECOVER_TRIES=1
    fi
    # It answers when it accepts a query, as a primary.
    theirs=$(peer_sql "$primary" "SELECT $WRITE_TIMELINE WHERE NOT pg_is_in_recovery()" || true)
    if [[ $theirs =~ ^[0-9]{1,9}$ ]]; then answers=yes; else theirs=-; fi
    answer=$(printf 'primary %s\nfailed %s\nanswers %s\nlocal-tli %s\nprimary-tli %s\ntries %s\n' \
        "$primary" "$step" "$answers" "$(local_tli)" "$theirs" "$RECOVER_TRIES" | pgha recover 2>&1) ||
        answer="again pgha recover failed: ${answer//$'\n'/ }"
    read -r action name why <<<"$answer"
    case $action in
    rejoin)
        log "$why: rejoining $name"
        stop_pg
        rejoin_to "$name"
        if [[ $REJOINED == yes ]]; then RECOVERED=yes; else recover_from rejoin "$name"; fi
        ;;
    clone)
        log "$why: cloning $name"
        stop_pg
        keep_old_datadir "$step failed"
        clone_from "$name"
        RECOVERED=yes
        ;;
    *)
        log "${answer#again }"
        stop_pg
        nap 2
        ;;
    esac
}

# Points this stopped standby at <primary> before it starts: the
# primary_conninfo it kept may name a superseded primary that still runs,
# whose WAL past the fork it would receive, and confirm, until
# follow_primary re-points it. (postgresql.auto.conf is ALTER SYSTEM's file;
# the server is stopped, and the last setting of a name wins.)
aim_before_start() { # <primary host>
    local f=$PGDATA/postgresql.auto.conf
    [[ -f $f ]] || return 0
    sed -i '/^[[:space:]]*primary_conninfo[[:space:]]*=/d' "$f"
    printf "primary_conninfo = '%s'\n" "$(stream_conninfo "$NODE_NAME" "$1")" >>"$f"
}

# a standby that is running: make sure it streams from <primary>. Sets
# FOLLOWING=no when it does not and repmgr standby follow failed.
FOLLOWING=no
follow_primary() { # <primary host>
    local primary=$1 i r=""
    FOLLOWING=no
    for i in $(seq 1 10); do
        r=$(psql -X -qAt -h /var/run/postgresql -U postgres -d postgres \
            -c "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver" 2>/dev/null || true)
        if [[ $r == "streaming $primary" ]]; then break; fi
        nap 1
    done
    if [[ $r != "streaming $primary" ]]; then
        log "standby is not streaming from $primary (wal receiver: '${r:-none}'): repmgr standby follow"
        if ! repmgr -f "$REPMGR_CONF" standby follow --upstream-node-id="$(node_id_of "$primary")" --log-level=INFO; then
            log "standby follow failed"
            return 0
        fi
    else
        log "standby is streaming from $primary"
    fi
    FOLLOWING=yes
    repmgr -f "$REPMGR_CONF" standby register --force --upstream-node-id="$(node_id_of "$primary")" ||
        log "WARNING: standby register failed (metadata only)"
}

# One `partner` line for `pgha start` about partner $1 (see pgha::start),
# from its /state, which answers while its postgres is down.
start_partner_seen() { # <host>
    local p=$1 st tli data=no standby=watching
    st=$(peer_http "$p" /state 2)
    if [[ -z $st ]]; then
        if getent hosts "$p" >/dev/null; then
            echo "partner $p silent no-answer"
        else
            echo "partner $p silent unresolved"
        fi
        return 0
    fi
    tli=$(kv tli "$st")
    [[ $tli =~ ^[0-9]{1,9}$ ]] || tli=-
    if [[ $(kv initialized "$st") == 1 ]]; then data=yes; fi
    # Whether it may take part in a failover: a primary, or a partner still
    # deciding at start (no postgres, no watcher), cannot; a standby, or one
    # whose postgres is down between steps, may.
    case $(kv in_recovery "$st") in
    t) [[ $(kv watch_state "$st") != promoting ]] || standby=promoting ;;
    f) standby=no ;;
    *) [[ $(kv entrypoint_state "$st") != waiting* ]] || standby=no ;;
    esac
    echo "partner $p reachable tli $tli data $data standby $standby"
}

# One `primary NAME TLI ID|-` line when partner $1 answers as a registered
# primary, nothing otherwise.
start_primary_seen() { # <host>
    local p=$1 tli sysid
    tli=$(registered_primary_tli "$p") || return 0
    sysid=$(peer_sql "$p" "SELECT system_identifier FROM pg_control_system()" || true)
    [[ $sysid =~ ^-?[0-9]+$ ]] || sysid=-
    echo "primary $p $tli $sysid"
}

# What this node sees at start, as `pgha start` reads it (see pgha::start).
# Every partner's /state is asked at every look: a few requests on the
# local network, answered while their postgres is down. The partners are
# asked at once, not one after another: a partner whose container is being
# replaced can keep a request waiting for its whole timeout, and a look
# that took 10 s let a window run out that a partner waiting at start had
# already closed (break-new-primary).
start_seen() {
    local data=empty local_sysid elapsed p primaries dir=$RUN_DIR/start-seen
    mkdir -p "$dir"
    for p in "${PEERS[@]}"; do
        start_primary_seen "$p" >"$dir/$p.primary" &
        start_partner_seen "$p" >"$dir/$p.partner" &
    done
    wait
    if [[ -s $PGDATA/PG_VERSION ]]; then
        data=primary
        if [[ -f $PGDATA/standby.signal ]]; then data=standby; fi
    fi
    local_sysid=$(controldata "Database system identifier" || true)
    [[ $local_sysid =~ ^[0-9]+$ ]] || local_sysid=-
    echo "me $NODE_NAME"
    echo "bootstrap-node $BOOTSTRAP_NODE"
    echo "data $data"
    echo "local-tli $(local_tli)"
    echo "local-sysid $local_sysid"
    primaries=$(for p in "${PEERS[@]}"; do cat "$dir/$p.primary"; done)
    if [[ -n $primaries ]]; then printf '%s\n' "$primaries"; else echo "primary none"; fi
    for p in "${PEERS[@]}"; do cat "$dir/$p.partner"; done
    elapsed=$((EPOCHSECONDS - STARTED_AT))
    echo "elapsed $((elapsed > 0 ? elapsed : 0))"
    echo "window $FAILOVER_WINDOW"
}

# Observes, asks `pgha start` (pgha/src/start.rs) and does what it says;
# while the answer is to wait, looks again every second. A failure of
# pgha is a reason to wait: it never starts anything.
decide_and_start() {
    local seen answer action name why last_msg="" last_seen="" msg
    while true; do
        seen=$(start_seen)
        answer=$(pgha start <<<"$seen" 2>&1) || answer="wait pgha start failed: ${answer//$'\n'/ }"
        read -r action name why <<<"$answer"
        case $action in
        clone)
            clone_from "$name"
            return 0
            ;;
        init)
            init_primary
            return 0
            ;;
        reclone)
            log "$why; re-cloning"
            keep_old_datadir "foreign cluster, system identifier $(controldata "Database system identifier" || true)" foreign
            clone_from "$name"
            return 0
            ;;
        follow)
            log "this node was a standby; primary is $name"
            set_state starting-standby
            aim_before_start "$name"
            if start_pg; then
                follow_primary "$name"
                [[ $FOLLOWING == no ]] || return 0
                recover_from follow "$name"
            else
                log "this standby did not start"
                recover_from start "$name"
            fi
            [[ $RECOVERED == no ]] || return 0
            continue
            ;;
        rejoin)
            log "this node was a PRIMARY but $name is the primary now: it must rejoin as a standby"
            rejoin_to "$name"
            if [[ $REJOINED == yes ]]; then RECOVERED=yes; else recover_from rejoin "$name"; fi
            if [[ $RECOVERED == yes ]]; then
                repmgr -f "$REPMGR_CONF" standby register --force --upstream-node-id="$(node_id_of "$name")" ||
                    log "WARNING: standby register failed (metadata only)"
                return 0
            fi
            continue
            ;;
        start-primary)
            log "${answer#start-primary }: starting as primary"
            set_state starting-primary
            start_pg
            return 0
            ;;
        wait) msg=${answer#wait } ;;
        *) msg="pgha start gave an answer this script does not know: $answer" ;;
        esac
        set_state "waiting: $msg"
        # Logged when the answer or what the partners said changes.
        seen=$(grep '^partner ' <<<"$seen" | tr '\n' ';' || true)
        if [[ $msg != "$last_msg" || $seen != "$last_seen" ]]; then
            log "$msg (saw: $seen)"
            last_msg=$msg last_seen=$seen
        fi
        # Cheap (a few local-network requests), and every second counts
        # when the whole cluster starts at once.
        nap 1
    done
}

# ------------------------------------------------------------ supervision --
HTTP_PID="" REPMGRD_PID=""

start_http() {
    socat -T 5 "TCP-LISTEN:$HTTP_PORT,reuseaddr,fork,max-children=16" EXEC:/usr/local/bin/pgha-http.sh &
    HTTP_PID=$!
}

start_repmgrd() {
    repmgrd -f "$REPMGR_CONF" --daemonize=false &
    REPMGRD_PID=$!
    log "repmgrd started (pid $REPMGRD_PID)"
}

stop_children() {
    if [[ -n $WATCH_PID ]]; then kill "$WATCH_PID" 2>/dev/null || true; fi
    if [[ -n $REPMGRD_PID ]]; then kill "$REPMGRD_PID" 2>/dev/null || true; fi
    if [[ -n $HTTP_PID ]]; then kill "$HTTP_PID" 2>/dev/null || true; fi
}

on_term() {
    log "received stop signal: stopping repmgrd, postgres, http endpoint"
    set_state stopping
    if [[ -n $WATCH_PID ]]; then kill "$WATCH_PID" 2>/dev/null || true; fi
    if [[ -n $REPMGRD_PID ]]; then kill "$REPMGRD_PID" 2>/dev/null || true; fi
    if [[ -s $PGDATA/PG_VERSION ]]; then stop_pg; fi
    stop_children
    exit 0
}
trap on_term TERM INT

# A primary that was frozen or cut off while another node was promoted comes
# back still a primary, on an older timeline. Its commits cannot complete
# (no standby follows it), but it must not stay a primary: when a partner is
# a primary on a newer timeline (the rule: `pgha fence`, pgha/src/supervise.rs),
# this node stops and exits, and its next start rejoins the new primary as
# a standby (pg_rewind). Each verdict is written to FENCE_FILE ("TIME
# VERDICT"): the watcher's claim_metadata acts only on a `stay` at most
# FENCE_FRESH seconds old (checks come every 4 s; asking two hung partners
# takes up to 6 s more).
FENCE_FILE=$RUN_DIR/fence
FENCE_FRESH=12
export FENCE_FILE FENCE_FRESH # the role endpoint's /primary asks for a fresh stay too
fence_if_superseded() {
    local mine p r t st seen verdict
    [[ $(timeout 5 psql -X -qAt -h /var/run/postgresql -d postgres -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null) == t ]] || return 0
    mine=$(timeout 5 psql -X -qAt -h /var/run/postgresql -d postgres -c "SELECT $WRITE_TIMELINE WHERE NOT pg_is_in_recovery()" 2>/dev/null) || return 0
    [[ $mine =~ ^[0-9]+$ ]] || return 0 # not a primary any more
    seen="me $mine"
    for p in "${PEERS[@]}"; do
        st=$(peer_http "$p" /state 3)
        r=$(kv write_tli "$st") t=$(kv tli "$st")
        if [[ $(kv in_recovery "$st") == f && $r =~ ^[0-9]{1,9}$ ]]; then
            seen+=$'\n'"partner $p primary $r"
        elif [[ $(kv standby_signal "$st") == 1 && $t =~ ^[0-9]{1,9}$ ]]; then
            seen+=$'\n'"partner $p knows $t" # a standby's data, running or not
        else
            seen+=$'\n'"partner $p silent"
        fi
    done
    if ! verdict=$(pgha fence <<<"$seen" 2>&1); then
        log "pgha fence failed, not fencing: $verdict"
        printf '%s unknown\n' "$EPOCHSECONDS" >"$FENCE_FILE"
        return 0
    fi
    printf '%s %s\n' "$EPOCHSECONDS" "$verdict" >"$FENCE_FILE"
    case $verdict in
    fence\ *)
        log "${verdict#fence }; stopping to rejoin it as a standby"
        set_state superseded
        stop_children
        stop_pg
        exit 1
        ;;
    esac
}

# A standby that has not streamed from the primary for STRAY_LIMIT seconds
# (repmgr could not make it follow: its timeline forked off, its slot is
# gone) exits: its next start follows the primary or rejoins it (pg_rewind,
# else a fresh clone). The rule: `pgha stray`, pgha/src/supervise.rs; the
# clock is STRAY_SINCE, when a check first found it stray (0: not stray).
STRAY_SINCE=0
restart_if_stray() {
    local primaries r now stray_for=none verdict
    [[ $(timeout 5 psql -X -qAt -h /var/run/postgresql -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == t ]] || { STRAY_SINCE=0; return 0; }
    primaries=$(find_primary | sed 's/^/primary /')
    r=$(timeout 5 psql -X -qAt -h /var/run/postgresql -d postgres -c "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver" 2>/dev/null || true)
    now=$EPOCHSECONDS
    if ((STRAY_SINCE > 0)); then stray_for=$((now > STRAY_SINCE ? now - STRAY_SINCE : 0)); fi
    if ! verdict=$(printf '%s\nreceiver %s\nstray-for %s\nlimit %s\n' \
        "${primaries:-primary none}" "${r:-none}" "$stray_for" "$STRAY_LIMIT" | pgha stray 2>&1); then
        log "pgha stray failed, not restarting: $verdict"
        return 0
    fi
    case $verdict in
    ok) STRAY_SINCE=0 ;;
    stray) ((STRAY_SINCE > 0)) || STRAY_SINCE=$now ;;
    restart\ *)
        log "${verdict#restart }: restarting to follow or rejoin it"
        set_state stray
        stop_children
        stop_pg
        exit 1
        ;;
    esac
}

# ------------------------------------------------------------- failover --
# Who replaces a primary that stopped answering is decided here, not by
# repmgrd (failover=manual: it only monitors). Every second this watcher, on
# a standby, probes the primary it follows (pg_isready on the primary's own
# service name) and publishes what it sees in WATCH_FILE, which /state serves
# to the partners; when it has not reached the primary for a while, or does
# not stream, it asks the partners' /state and `pgha failover`
# (pgha/src/failover.rs) what to do: nothing, wait, follow the primary on
# the newest timeline, or promote this node (promote_after_check, which
# first stops the partners' WAL receivers).
WATCH_FILE=$RUN_DIR/watch
FAILOVER_DETECT=${FAILOVER_DETECT:-6}
# A partner's watcher not heard from for longer is taken as not running
# (pgha failover): more than its slowest round (a 1 s nap, a 1 s probe of a
# hung primary while a hung partner's /state takes its 1 s, a slow query).
WATCH_STALE=10
WATCH_PID=""

publish_watch() { # <upstream|none> <unseen> <running|promoting>
    printf 'watch_upstream=%s\nwatch_unseen=%s\nwatch_state=%s\nwatch_at=%s\n' \
        "$1" "$2" "$3" "$EPOCHSECONDS" >"$WATCH_FILE.tmp" && mv -f "$WATCH_FILE.tmp" "$WATCH_FILE"
}

# One `partner` line for `pgha failover` (see pgha::failover). What a
# partner's /state says is checked here too: one partner's garbage makes it
# silent, it does not stop the decision.
failover_partner_seen() { # <host>
    local p=$1 st tli recv up unseen w at now es
    st=$(peer_http "$p" /state 1)
    case $(kv in_recovery "$st") in
    f)
        tli=$(kv write_tli "$st")
        if [[ $tli =~ ^[0-9]{1,9}$ ]]; then echo "partner $p primary $tli"; else echo "partner $p silent"; fi
        ;;
    t)
        tli=$(kv tli "$st") recv=$(kv received "$st") up=$(kv watch_upstream "$st") unseen=$(kv watch_unseen "$st")
        w=$(kv watch_state "$st") at=$(kv watch_at "$st") now=$(kv now "$st") es=$(kv entrypoint_state "$st")
        if ! [[ $tli =~ ^[0-9]{1,9}$ && $recv =~ ^[0-9A-F]{1,8}/[0-9A-F]{1,8}$ && $up =~ ^[a-z0-9._-]{1,63}$ && $unseen =~ ^[0-9]{1,9}$ &&
            $at =~ ^[0-9]{1,12}$ && $now =~ ^[0-9]{1,12}$ ]]; then
            echo "partner $p silent"
            return 0
        fi
        # Raw, for the rule: the watcher's state, its age, and the first
        # word of the entrypoint's state (the rule says what is too old or
        # not running).
        [[ $w =~ ^(running|promoting)$ ]] || w=other
        es=${es%%[^a-z_-]*} es=${es:0:32}
        echo "partner $p standby $tli $recv $up $unseen $w $((now > at ? now - at : 0)) ${es:-unknown}"
        ;;
    *) echo "partner $p silent" ;;
    esac
}

local_sql() { timeout 5 psql -X -qAt -h /var/run/postgresql -U postgres -d postgres -c "$1" 2>/dev/null; }

# Points this running standby at <primary> (point_at) and waits up to 10 s
# for it to stream, publishing the watch every half second so partners
# never see this watcher stale. Sets the watcher's upstream and last_seen
# (watch_failover's locals): a primary that stops answering meanwhile (a
# new primary killed right after its promotion) counts as unseen from then
# on, and the watcher looks again after 2 s of it. A standby that still
# does not stream (its timeline forked off, its slot is gone) is the stray
# rule's: it restarts it, and its start rewinds or clones, checking what it
# would discard. (repmgr standby follow, run here before, fails on a forked
# timeline too, after blocking this loop for up to 40 s.)
follow_now() { # <primary>
    local p=$1 i r="" unseen
    upstream=$p last_seen=$EPOCHSECONDS
    point_at "$NODE_NAME" "$p" || log "follow: could not set this node's primary_conninfo"
    for i in $(seq 1 20); do
        r=$(local_sql "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver" || true)
        if [[ $r == "streaming $p" ]]; then
            log "follow: streaming from $p after $((i / 2)) s"
            return 0
        fi
        if timeout 1 pg_isready -q -h "$p" -p "$PG_PORT" -t 1 2>/dev/null; then last_seen=$EPOCHSECONDS; fi
        unseen=$((EPOCHSECONDS - last_seen))
        publish_watch "$p" "$unseen" running
        if ((unseen >= 2)); then
            log "follow: $p stopped answering ${unseen} s ago: looking again"
            return 0
        fi
        nap 0.5
    done
    log "follow: not streaming from $p after 10 s (wal receiver: '${r:-none}'): the stray check restarts this node to follow or rejoin it"
}

# On a running primary: repmgr's metadata must name it, and no other, as
# the primary. A node killed between pg_promote() and repmgr's metadata
# update (break-new-primary), then started again as the primary, left the
# old primary named there: the partners' start rule (find_primary) never
# found it, and repmgrd looped on the dead "upstream". Written with
# synchronous_commit = local: it must not wait for a standby.
claim_metadata() { # [promoted: the promote rule chose this node a moment ago]
    local wrong at verdict=""
    # Otherwise only a primary the fence rule let stay, lately: a superseded
    # one (a partner promoted after it) must not name itself.
    if [[ ${1:-} != promoted ]]; then
        read -r at verdict _ <"$FENCE_FILE" 2>/dev/null || return 0
        [[ $verdict == stay && $at =~ ^[0-9]+$ ]] && ((EPOCHSECONDS - at <= FENCE_FRESH)) || return 0
    fi
    wrong=$(on "$NODE_NAME" -c "SELECT count(*) FROM repmgr.nodes WHERE (type = 'primary' AND active AND node_id <> $NODE_ID) OR (node_id = $NODE_ID AND (type <> 'primary' OR NOT active OR upstream_node_id IS NOT NULL))" 2>/dev/null) || return 0
    [[ $wrong =~ ^[1-9] ]] || return 0
    if on "$NODE_NAME" >/dev/null 2>&1 <<SQL; then
SET synchronous_commit = local;
BEGIN;
UPDATE repmgr.nodes SET type = 'standby', upstream_node_id = $NODE_ID WHERE type = 'primary' AND node_id <> $NODE_ID;
UPDATE repmgr.nodes SET type = 'primary', upstream_node_id = NULL, active = true WHERE node_id = $NODE_ID;
COMMIT;
SQL
        log "repmgr's metadata did not name this running primary alone: it does now"
    else
        log "could not correct repmgr's metadata to name this running primary"
    fi
}

# The host a primary_conninfo names, or none (repmgr quotes it, point_at
# does not).
conninfo_host() { # <primary_conninfo>
    local host_re="(^|[[:space:]])host='?([a-z0-9._-]+)"
    if [[ $1 =~ $host_re ]]; then echo "${BASH_REMATCH[2]}"; else echo none; fi
}

watch_failover() {
    local upstream=none last_seen now unseen=0 r ci ci_now host recv streaming seen verdict action name last="" tick=0 p asked
    trap - TERM INT
    last_seen=$EPOCHSECONDS
    while true; do
        nap 1
        tick=$((tick + 1))
        now=$EPOCHSECONDS
        r=$(local_sql "SELECT pg_is_in_recovery(), GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'), current_setting('primary_conninfo')" || true)
        if [[ $r != t\|* ]]; then # a primary, or postgres down: nothing to watch
            publish_watch none 0 running
            last_seen=$now
            if [[ $r == f\|* ]] && ((tick % 5 == 0)); then claim_metadata; fi
            continue
        fi
        IFS='|' read -r _ recv streaming ci <<<"$r"
        host=$(conninfo_host "$ci")
        if [[ $host != none && $host != "$upstream" ]]; then
            upstream=$host last_seen=$now
        fi
        # Healthy (streaming from a primary it reached lately): the partners
        # are asked only every 10 s, for a newer primary elsewhere; else
        # while the primary is probed. A frozen primary takes the probe's
        # 1 s, a frozen partner its /state's 1 s, so a round lasts about 2 s
        # (with 2 s each, rounds of 3 s and more made a 6 s detection take
        # 11 s). unseen is counted after the probe, so that its time counts.
        asked=no
        if [[ $streaming != t ]] || ((unseen + 3 >= FAILOVER_DETECT || tick % 10 == 0)); then
            for p in "${PEERS[@]}"; do failover_partner_seen "$p" >"$WATCH_FILE.$p" & done
            asked=yes
        fi
        if [[ $upstream != none ]] && timeout 1 pg_isready -q -h "$upstream" -p "$PG_PORT" -t 2 2>/dev/null; then
            last_seen=$EPOCHSECONDS
        fi
        now=$EPOCHSECONDS
        unseen=$((now > last_seen ? now - last_seen : 0))
        publish_watch "$upstream" "$unseen" running
        if [[ $asked == no ]]; then
            ((unseen >= FAILOVER_DETECT)) || continue
            for p in "${PEERS[@]}"; do failover_partner_seen "$p" >"$WATCH_FILE.$p"; done
        fi
        wait
        # Whom primary_conninfo names now, against the round's start: a
        # node re-pointed meanwhile looks again (pgha failover, rule 0).
        ci_now=$(local_sql "SELECT current_setting('primary_conninfo')" || true)
        seen="me $NODE_NAME $(local_tli) ${recv:-0/0}"$'\n'"upstream $upstream unseen $unseen"
        seen+=$'\n'"pointed $(conninfo_host "$ci") $(conninfo_host "$ci_now")"$'\n'"detect $FAILOVER_DETECT"$'\n'"stale $WATCH_STALE"
        for p in "${PEERS[@]}"; do seen+=$'\n'$(<"$WATCH_FILE.$p"); done
        verdict=$(pgha failover <<<"$seen" 2>&1) || verdict="wait pgha failover failed: ${verdict//$'\n'/ }"
        read -r action name _ <<<"$verdict"
        if [[ $verdict != "$last" && $action != ok ]]; then log "failover: $verdict (saw: $(tr '\n' ';' <<<"$seen"))"; fi
        last=$verdict
        case $action in
        follow) follow_now "$name" ;;
        promote)
            publish_watch "$upstream" "$unseen" promoting
            (promote_after_check "$upstream") || log "failover: the promote step did not promote this node"
            ;;
        esac
    done
}

start_watch() {
    watch_failover &
    WATCH_PID=$!
}

# The result service's role, on the primary (roles and grants replicate):
# it logs in and reads totals, nothing else. Made once the worker has
# created totals; checked every 2 s until then and every 30 s after, which
# also brings a cluster made by an older version up to date.
READER_CHECKED=0
ensure_reader() {
    [[ -s $SECRETS_DIR/result_password ]] || return 0
    ((EPOCHSECONDS - READER_CHECKED >= 30)) || return 0
    local state
    state=$(timeout 5 psql -X -qAt -h /var/run/postgresql -U postgres -d "$POSTGRESQL_DATABASE" \
        -v reader="$RESULT_USERNAME" 2>/dev/null <<'SQL'
SELECT CASE WHEN pg_is_in_recovery() THEN 'standby'
            WHEN to_regclass('public.totals') IS NULL THEN 'no table yet'
            WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') THEN 'missing'
            WHEN has_table_privilege(:'reader', 'public.totals', 'SELECT') THEN 'ready'
            ELSE 'missing' END;
SQL
    ) || return 0
    case $state in
        ready | standby) READER_CHECKED=$EPOCHSECONDS ;;
        missing)
            # A new primary has no standby yet: the change must not wait for one.
            if timeout 10 psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d "$POSTGRESQL_DATABASE" \
                -v reader="$RESULT_USERNAME" -v db="$POSTGRESQL_DATABASE" >/dev/null 2>&1 <<'SQL'; then
SET synchronous_commit = local;
\set pw `cat /run/pgha/secrets/result_password`
SELECT format('CREATE ROLE %I', :'reader') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec
ALTER ROLE :"reader" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'pw';
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT SELECT ON public.totals TO :"reader";
SQL
                log "role $RESULT_USERNAME reads totals, and nothing else"
                READER_CHECKED=$EPOCHSECONDS
            else
                log "could not set up role $RESULT_USERNAME (tried again in 2 s)"
            fi
            ;;
    esac
}

supervise() {
    local down_since=0 now tick=0
    while true; do
        nap 2
        tick=$((tick + 1))
        if pg_running; then
            down_since=0
            ((tick % 2)) || fence_if_superseded
            ((tick % 5)) || restart_if_stray
            ensure_reader
        else
            # (Nothing stops postgres on purpose while this runs: the
            # watcher follows by reload and promotes with pg_promote(), and
            # the fence and stray rules exit. Waiting on any running repmgr
            # command, as this did, let a hung one keep a dead node up.)
            now=$EPOCHSECONDS
            if ((down_since == 0)); then
                down_since=$now
                log "postgres is not running; waiting up to ${PG_DOWN_GRACE}s for it to come back"
            elif ((now - down_since >= PG_DOWN_GRACE)); then
                log "postgres died and did not come back: exiting so the container is restarted"
                set_state dead
                stop_children
                exit 1
            fi
        fi
        if ! kill -0 "$REPMGRD_PID" 2>/dev/null; then
            log "repmgrd exited; restarting it"
            start_repmgrd
        fi
        if ! kill -0 "$WATCH_PID" 2>/dev/null; then
            log "failover watcher exited; restarting it"
            start_watch
        fi
        if ! kill -0 "$HTTP_PID" 2>/dev/null; then
            log "http endpoint exited; restarting it"
            start_http
        fi
    done
}

# repmgrd refuses to start until this node's record is visible locally (a
# standby's registration is written on the primary and must replicate first)
wait_local_record() {
    local i r
    for i in $(seq 1 30); do
        r=$(psql -X -qAt -h /var/run/postgresql -U postgres -d "$REPMGR_DATABASE" \
            -c "SELECT 1 FROM repmgr.nodes WHERE node_id = $NODE_ID" 2>/dev/null || true)
        if [[ $r == 1 ]]; then return 0; fi
        if ((i == 1)); then log "waiting for this node's repmgr record to be visible locally"; fi
        nap 1
    done
    log "WARNING: repmgr record of node $NODE_ID not visible locally after 30 s; starting repmgrd anyway"
}

# Relays whatever postgres servers that repmgr starts write into the FIFO
# PG_LOG_FIFO (repmgr's service commands, see write_configs) to this
# container's log, for the container's life. (/proc/PID/fd/2 of this script
# cannot serve: gosu left it undumpable, so its fds are root's.)
relay_pg_log() {
    rm -f "$PG_LOG_FIFO"
    mkfifo -m 0600 "$PG_LOG_FIFO"
    (while :; do cat "$PG_LOG_FIFO" >&2 || sleep 1; done) &
}

main() {
    log "starting node $NODE_NAME (id $NODE_ID), partners: ${PEERS[*]}"
    set_state starting
    relay_pg_log
    write_pgpass
    write_configs
    start_http
    decide_and_start
    wait_local_record
    set_state running
    start_repmgrd
    start_watch
    supervise
}

case ${1:-} in
# repmgr's promote_command; repmgrd only monitors (failover=manual).
promote) die "promotions are decided by the failover watcher (pgha failover), not by repmgrd" ;;
*) main "$@" ;;
esac
