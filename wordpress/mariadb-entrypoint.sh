#!/usr/bin/env bash
# Entrypoint of a MariaDB Galera node (mariadb-1..3 of the wordpress stack).
#
# Runs the HTTP endpoint (socat + galera-endpoint.sh on :9200) and mysqld, and
# decides at every start, from the partners' GET /state, how this node enters
# the cluster:
#   * a partner runs a Primary component  -> join it (IST, or SST with
#     mariabackup); data the cluster lacks is first moved aside (the rule is
#     pgha's, in pgha/src/galera_join.rs: see join_decision)
#   * nobody is Primary                   -> every node publishes its position
#     (grastate.dat after a clean stop, mysqld --wsrep-recover after a crash)
#     and the node it nominates (see nominate; the rule is pgha's, in
#     pgha/src/galera.rs); the nominee bootstraps only once every partner it
#     counted nominates it too. The others join it.
#   * every node empty                    -> the nominee is GALERA_FIRST_NODE:
#     it creates the cluster, the database and the accounts
# While running, a node that stays non-Primary takes part in the same vote
# (it may be the one with the newest state), and one that stays non-Primary
# while a partner runs a Primary component restarts to rejoin it.
set -euo pipefail
export LC_ALL=C
# GALERA_TRACE=1: trace every command (debugging)
[[ ${GALERA_TRACE:-0} != 1 ]] || set -x

# ---------------------------------------------------------------- settings --
NODE_NAME=${GALERA_NODE_NAME:?GALERA_NODE_NAME must be set (mariadb-1, mariadb-2 or mariadb-3)}
# every node of the cluster, this one included, as Docker DNS names
GALERA_NODES=${GALERA_NODES:-mariadb-1,mariadb-2,mariadb-3}
GALERA_CLUSTER_NAME=${GALERA_CLUSTER_NAME:-swarmvote}
# seconds after which a majority that cannot hear the remaining node may
# bootstrap without it (0: never, wait for every node)
GALERA_MAJORITY_AFTER=${GALERA_MAJORITY_AFTER:-600}
# seconds a running node may be non-Primary before it takes part in a vote
GALERA_NONPRIMARY_GRACE=${GALERA_NONPRIMARY_GRACE:-15}
# seconds a running node may be non-Primary while a partner is Primary
# before it restarts to rejoin (a short partition heals by itself)
GALERA_REJOIN_AFTER=${GALERA_REJOIN_AFTER:-60}
MARIADB_DATABASE=${MARIADB_DATABASE:-}
MARIADB_USER=${MARIADB_USER:-}
MARIADB_MARIABACKUP_USER=${MARIADB_MARIABACKUP_USER:-mariabackup}

VOLUME_DIR=/var/lib/mysql
DATADIR=$VOLUME_DIR/data
# data directories kept aside (data.old-TIME), at most this many
KEEP_ASIDE_MAX=${KEEP_ASIDE_MAX:-3}
# name and state uuid of the cluster this volume belongs to (outside DATADIR:
# an SST empties DATADIR)
MARKER=$VOLUME_DIR/galera-cluster
RUN_DIR=/run/galera
SECRETS_DIR=$RUN_DIR/secrets
SOCKET=/run/mysqld/mysqld.sock
HTTP_PORT=9200
ZERO_UUID=00000000-0000-0000-0000-000000000000

IFS=', ' read -r -a ALL_NODES <<<"$GALERA_NODES"
GALERA_FIRST_NODE=${GALERA_FIRST_NODE:-${ALL_NODES[0]}}
PEERS=()
for n in "${ALL_NODES[@]}"; do
    [[ -n $n && $n != "$NODE_NAME" ]] && PEERS+=("$n")
done
N_NODES=${#ALL_NODES[@]}

log() { printf '%s galera[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NODE_NAME" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
# sleep that lets the TERM trap run at once
nap() { sleep "$1" & wait $! || true; }

# ------------------------------------------------ root: validate and stage --
# checks that a secret file can be used; prints the problem if not
read_secret() { # <env var holding the path>
    local var=$1 src v
    src=${!var:-}
    [[ -n $src ]] || { echo "$var is not set (expected a Docker secret file path)"; return 1; }
    [[ -r $src ]] || { echo "$var=$src is not readable"; return 1; }
    v=$(<"$src")
    v=${v%$'\r'}
    [[ -n $v ]] || { echo "$var=$src is empty"; return 1; }
    [[ $v != *$'\n'* ]] || { echo "$var=$src holds more than one line"; return 1; }
    return 0
}

validate() { # prints every problem, one a line
    local v
    [[ $MARIADB_DATABASE =~ ^[A-Za-z0-9_]{1,64}$ ]] || echo "MARIADB_DATABASE='$MARIADB_DATABASE' must be 1-64 letters, digits or _"
    [[ $MARIADB_USER =~ ^[A-Za-z0-9_]{1,80}$ ]] || echo "MARIADB_USER='$MARIADB_USER' must be 1-80 letters, digits or _"
    [[ $MARIADB_MARIABACKUP_USER =~ ^[A-Za-z0-9_]{1,80}$ ]] || echo "MARIADB_MARIABACKUP_USER must be letters, digits or _"
    for v in MARIADB_ROOT_PASSWORD_FILE MARIADB_PASSWORD_FILE MARIADB_MARIABACKUP_PASSWORD_FILE; do
        read_secret "$v" || true
    done
    ((N_NODES >= 3)) || echo "GALERA_NODES='$GALERA_NODES' must name at least 3 nodes"
    [[ " ${ALL_NODES[*]} " == *" $NODE_NAME "* ]] || echo "GALERA_NODE_NAME=$NODE_NAME is not in GALERA_NODES=$GALERA_NODES"
    [[ " ${ALL_NODES[*]} " == *" $GALERA_FIRST_NODE "* ]] || echo "GALERA_FIRST_NODE=$GALERA_FIRST_NODE is not in GALERA_NODES"
    [[ $GALERA_CLUSTER_NAME =~ ^[A-Za-z0-9_.-]{1,32}$ ]] || echo "GALERA_CLUSTER_NAME must be 1-32 letters, digits, _ . -"
    for v in GALERA_MAJORITY_AFTER GALERA_NONPRIMARY_GRACE GALERA_REJOIN_AFTER; do
        [[ ${!v} =~ ^[0-9]+$ ]] || echo "$v=${!v} must be a number of seconds"
    done
}

stage_secret() { # <env var> <name in SECRETS_DIR>
    local v
    v=$(<"${!1}")
    (umask 077 && printf '%s' "${v%$'\r'}" >"$SECRETS_DIR/$2")
}

if [[ $(id -u) == 0 ]]; then
    problems=$(validate)
    if [[ -n $problems ]]; then
        while IFS= read -r p; do log "config: $p"; done <<<"$problems"
        die "invalid configuration (every problem is listed above)"
    fi
    mkdir -p "$SECRETS_DIR" /run/mysqld "$DATADIR"
    chmod 0700 "$SECRETS_DIR"
    stage_secret MARIADB_ROOT_PASSWORD_FILE root_password
    stage_secret MARIADB_PASSWORD_FILE app_password
    stage_secret MARIADB_MARIABACKUP_PASSWORD_FILE mariabackup_password
    chown -R mysql:mysql "$RUN_DIR" /run/mysqld
    # a volume restored by root, or a fresh one: the top must belong to mysql
    if [[ $(stat -c %U "$DATADIR") != mysql || $(stat -c %U "$VOLUME_DIR") != mysql ]]; then
        chown -R mysql:mysql "$VOLUME_DIR"
    fi
    exec gosu mysql "$0" "$@"
fi

# ------------------------------------------------------- from here: mysql --
[[ -s $SECRETS_DIR/mariabackup_password ]] || die "start the container as root: it stages the secrets and then runs as mysql"

put() { printf '%s\n' "$2" >"$RUN_DIR/$1"; } # <run file> <value>
set_phase() { put phase "$1"; }

# option-file value: backslashes doubled, the whole in double quotes
cnf_quote() { printf '"%s"' "${1//\\/\\\\}"; }
# SQL string literal
sql_quote() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\'\'}"; }

# local SQL as the OS user mysql (unix_socket authentication, no password)
sql() { mariadb --no-defaults --protocol=socket --socket="$SOCKET" -u mysql --connect-timeout=3 -N -B "$@"; }

write_secret_cnf() {
    (
        umask 077
        printf '[mysqld]\nwsrep_sst_auth = %s\n' \
            "$(cnf_quote "$MARIADB_MARIABACKUP_USER:$(<"$SECRETS_DIR/mariabackup_password")")" >"$RUN_DIR/secret.cnf"
    )
}

grastate() { # <key>
    sed -n "s/^$1:[[:space:]]*//p" "$DATADIR/grastate.dat" 2>/dev/null | head -n1 || true
}
marker() { # <key>
    sed -n "s/^$1=//p" "$MARKER" 2>/dev/null | head -n1 || true
}
has_data() { [[ -e $DATADIR/mysql || -e $DATADIR/grastate.dat ]]; }

http_get() { # <host> <path>: the body, empty on any error
    # shellcheck disable=SC2016
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.0\r\n\r\n" "$3" >&3
        sed "1,/^\r\{0,1\}$/d" <&3' _ "$1" "$HTTP_PORT" "$2" 2>/dev/null || true
}

kv() { # <key> <key=value lines>: the value (no forks: called often)
    local line
    while IFS= read -r line; do
        if [[ $line == "$1="* ]]; then
            printf '%s' "${line#*=}"
            return 0
        fi
    done <<<"$2"
}

# this node's address on the cluster network: the address its own name
# resolves to that is one of its interfaces
own_address() {
    local ip mine
    mine=" $(hostname -I 2>/dev/null) "
    for ip in $(getent ahostsv4 "$NODE_NAME" 2>/dev/null | awk '{print $1}' | sort -u); do
        if [[ $mine == *" $ip "* ]]; then
            printf '%s' "$ip"
            return 0
        fi
    done
    awk '{print $1}' <<<"$mine"
}

# ---------------------------------------------------------- local state --
LOCAL_UUID="" LOCAL_SEQNO=-1

# sets LOCAL_UUID/LOCAL_SEQNO and publishes them (position run file)
recover_position() {
    local uuid seqno out
    LOCAL_UUID="" LOCAL_SEQNO=-1
    if ! has_data; then
        put position ""
        return 0
    fi
    uuid=$(grastate uuid) seqno=$(grastate seqno)
    if [[ $seqno =~ ^[0-9]+$ && -n $uuid && $uuid != "$ZERO_UUID" ]]; then
        LOCAL_UUID=$uuid LOCAL_SEQNO=$seqno
        log "position from grastate.dat (clean shutdown): $uuid:$seqno"
    else
        set_phase recovering
        log "grastate.dat has no position (seqno ${seqno:-none}: mysqld crashed or was killed): running mysqld --wsrep-recover"
        rm -f "$RUN_DIR/recover.log"
        # InnoDB crash recovery, then the last committed position; no
        # network, no group (the address only satisfies the SST method)
        if ! mysqld --wsrep-recover --wsrep-cluster-address=gcomm:// >/dev/null 2>"$RUN_DIR/recover.log"; then
            log "mysqld --wsrep-recover failed; its log:"
            sed 's/^/  recover: /' "$RUN_DIR/recover.log" >&2 || true
        fi
        out=$(sed -n 's/.*WSREP: Recovered position: *//p' "$RUN_DIR/recover.log" 2>/dev/null | tail -n1)
        if [[ $out =~ ^([0-9a-f-]{36}):(-?[0-9]+)$ ]]; then
            LOCAL_UUID=${BASH_REMATCH[1]} LOCAL_SEQNO=${BASH_REMATCH[2]}
        fi
        [[ $LOCAL_UUID != "$ZERO_UUID" ]] || LOCAL_UUID=""
        log "recovered position: ${LOCAL_UUID:-none}:$LOCAL_SEQNO"
    fi
    put position "$LOCAL_UUID:$LOCAL_SEQNO"
}

# data the running cluster cannot take back is kept, renamed, and never
# served (the SST would otherwise delete it)
move_aside() { # <headline> <reason> [kind: bounded to the newest KEEP_ASIDE_MAX of it]
    local dest kind=${3:-}
    dest=$VOLUME_DIR/data.old-${kind:+$kind-}$(date -u +%Y%m%dT%H%M%SZ)
    log "galera: $1: $2; keeping it as $dest and taking a full copy (SST) from the running cluster"
    mv "$DATADIR" "$dest"
    mkdir -p "$DATADIR"
    rm -f "$MARKER"
    local old
    # A kind that repeated faults can make again is bounded, so that they
    # cannot fill the disk: its newest KEEP_ASIDE_MAX copies stay (their
    # names sort by time). The rest (another cluster's data, a node ahead of
    # the cluster or left out of a bootstrap) are never removed here.
    if [[ -n $kind ]]; then
        for old in $(find "$VOLUME_DIR" -maxdepth 1 -name "data.old-$kind-*" | sort | head -n "-$KEEP_ASIDE_MAX"); do
            log "galera: removing the oldest kept-aside copy $old (at most $KEEP_ASIDE_MAX of its kind are kept)"
            rm -rf -- "$old"
        done
    fi
    LOCAL_UUID="" LOCAL_SEQNO=-1
    put position ""
    put foreign ""
}

check_foreign_name() { # a volume that belongs to a cluster of another name
    local name
    put foreign ""
    name=$(marker name)
    if has_data && [[ -n $name && $name != "$GALERA_CLUSTER_NAME" ]]; then
        put foreign "cluster name $name"
        log "galera: this volume belongs to cluster '$name', not '$GALERA_CLUSTER_NAME': it takes no part in any vote and will be moved aside when a Primary component of '$GALERA_CLUSTER_NAME' exists"
    fi
    if [[ -e $VOLUME_DIR/ibdata1 || -d $VOLUME_DIR/mysql ]]; then
        log "note: $VOLUME_DIR holds a MariaDB data directory at its top (another image's layout); it is left untouched and unused (data lives in $DATADIR)"
    fi
}

# ------------------------------------------------------------- partners --
declare -A STATE=() # node -> its /state body (empty: not heard)

survey() {
    local n
    for n in "${ALL_NODES[@]}"; do
        if [[ $n == "$NODE_NAME" ]]; then
            STATE[$n]=$(http_get 127.0.0.1 /state)
        else
            STATE[$n]=$(http_get "$n" /state)
        fi
    done
}
sv() { kv "$2" "${STATE[$1]:-}"; } # <node> <key>

# Whether to join partners, and what of this node's data to keep aside
# first: the rule is pgha's (pgha/src/galera_join.rs, a row of its table
# test per case). Sets JOIN (join, wait or elect: no partner runs a cluster
# to join), JOIN_PRIMARIES (space separated), ASIDE_KIND, ASIDE_HEADLINE,
# ASIDE_REASON (no headline: nothing to keep aside), JOIN_LEFT_OUT (yes|no)
# and JOIN_WHY, from the last survey. When pgha fails: wait, and why.
JOIN=wait JOIN_PRIMARIES="" ASIDE_KIND="" ASIDE_HEADLINE="" ASIDE_REASON="" JOIN_LEFT_OUT=no JOIN_WHY=""
join_decision() {
    local out key value data=empty foreign="" position=none
    JOIN=wait JOIN_PRIMARIES="" ASIDE_KIND="" ASIDE_HEADLINE="" ASIDE_REASON="" JOIN_LEFT_OUT=no JOIN_WHY=""
    if [[ -e $DATADIR/mysql ]]; then data=tables; elif has_data; then data=leftovers; fi
    if [[ -n $(head -n1 "$RUN_DIR/foreign") ]]; then
        foreign=$(marker name)
        foreign=${foreign//[[:cntrl:]]/} foreign=${foreign:0:64}
        foreign=${foreign:-?}
    fi
    [[ -z $LOCAL_UUID ]] || position=$LOCAL_UUID:$LOCAL_SEQNO
    if ! out=$(states | pgha galera-join --nodes "$(IFS=,; echo "${ALL_NODES[*]}")" \
        --first-node "$GALERA_FIRST_NODE" --cluster-name "$GALERA_CLUSTER_NAME" --me "$NODE_NAME" \
        --position "$position" --data "$data" --foreign "$foreign" 2>&1); then
        JOIN_WHY="pgha galera-join failed: ${out//$'\n'/ }"
        return 0
    fi
    while IFS=' ' read -r key value; do
        case $key in
        action) JOIN=$value ;;
        primaries) JOIN_PRIMARIES=$value ;;
        aside_kind) ASIDE_KIND=$value ;;
        aside_headline) ASIDE_HEADLINE=$value ;;
        aside_reason) ASIDE_REASON=$value ;;
        left_out) JOIN_LEFT_OUT=$value ;;
        why) JOIN_WHY=$value ;;
        esac
    done <<<"$out"
}

any_primary() { # partners in a Primary component, whatever they are doing
    local n out=""
    for n in "${PEERS[@]}"; do
        [[ $(sv "$n" primary) == 1 ]] && out+="${out:+ }$n($(sv "$n" phase))"
    done
    printf '%s' "$out"
}

describe() { # one node's position for the log
    local n=$1 s=${STATE[$1]:-} u q
    [[ -n $s ]] || { printf '%s unreachable' "$n"; return; }
    u=$(kv uuid "$s") q=$(kv seqno "$s")
    if [[ -n $(kv foreign "$s") ]]; then
        printf '%s foreign(%s)' "$n" "$(kv foreign "$s")"
    elif [[ $(kv has_data "$s") != 1 ]]; then
        printf '%s empty' "$n"
    else
        if [[ -n $u ]]; then printf '%s %s:%s' "$n" "${u:0:8}" "$q"; else printf '%s (no position)' "$n"; fi
        if [[ $(kv mysqld "$s") == running ]]; then printf ' (running, non-Primary)'
        elif [[ $(kv grastate_seqno "$s") == -1 ]]; then printf ' (crashed)'
        else printf ' (clean stop)'; fi
    fi
    [[ $(kv cluster_name "$s") == "$GALERA_CLUSTER_NAME" ]] || printf ' [cluster %s!]' "$(kv cluster_name "$s")"
    # not counted by the last nomination (BASIS): the phase says why
    [[ ,$BASIS, == *",$n,"* ]] || printf ' [%s]' "$(kv phase "$s")"
}

# each node's /state body for pgha galera-nominate: every line prefixed with
# the name of the node it came from (no body can speak for another node)
states() {
    local n line
    for n in "${ALL_NODES[@]}"; do
        # key=value lines only: an error page (a partner's endpoint timed
        # out reading the request) leaves that node unheard, not the vote
        while IFS= read -r line; do
            [[ ! $line =~ ^[a-z0-9_]+= ]] || printf '%s %s\n' "$n" "$line"
        done <<<"${STATE[$n]:-}"
    done
}

# Decide which node should bootstrap, from the surveyed states: the rule is
# pgha's (pgha/src/galera.rs, a row of its table test per case). Sets NOMINEE
# (empty: none yet), BASIS (the nodes counted, comma separated), WHY (for the
# log), LEFT_OUT (the nodes a bootstrap goes on without, space separated)
# and BOOTSTRAP (yes: this node is the nominee, no other node is in a Primary
# component, and every node counted nominates it too: the gate, also
# pgha's). When pgha fails, no nominee: waiting is the safe answer.
NOMINEE="" BASIS="" WHY="" LEFT_OUT="" BOOTSTRAP=no
NOMINATE_FAILED="" NOMINATE_FAILED_AT=0 # the last failure logged, and when
nominate() { # <seconds waited>
    local out key value
    NOMINEE="" BASIS="" WHY="" LEFT_OUT="" BOOTSTRAP=no
    if ! out=$(states | pgha galera-nominate --nodes "$(IFS=,; echo "${ALL_NODES[*]}")" \
        --waited "${1:?missing seconds waited}" --majority-after "$GALERA_MAJORITY_AFTER" \
        --first-node "$GALERA_FIRST_NODE" --cluster-name "$GALERA_CLUSTER_NAME" --me "$NODE_NAME" 2>&1); then
        WHY="no nominee: pgha galera-nominate failed: ${out//$'\n'/ }"
        # the same failure once a minute, not at every round
        if [[ $WHY != "$NOMINATE_FAILED" ]] || (($(date +%s) - NOMINATE_FAILED_AT >= 60)); then
            log "galera: $WHY"
            NOMINATE_FAILED=$WHY NOMINATE_FAILED_AT=$(date +%s)
        fi
        return 0
    fi
    NOMINATE_FAILED=""
    # "KEY VALUE" lines, the key alone when the value is empty
    while IFS=' ' read -r key value; do
        case $key in
        nominee) NOMINEE=$value ;;
        basis) BASIS=$value ;;
        left_out) LEFT_OUT=${value//,/ } ;;
        why) WHY=$value ;;
        bootstrap) BOOTSTRAP=$value ;;
        esac
    done <<<"$out"
}

# Survey, nominate, publish. 0 when the gate lets this node bootstrap.
vote() { # <seconds waited>
    survey
    nominate "$1"
    put candidate "$NOMINEE"
    put basis "$BASIS"
    [[ $BOOTSTRAP == yes ]]
}

positions() {
    local n out=""
    for n in "${ALL_NODES[@]}"; do out+="${out:+, }$(describe "$n")"; done
    printf '%s' "$out"
}

# ---------------------------------------------------------------- mysqld --
MYSQLD_PID=""

start_mysqld() { # <gcomm peers, space separated> [extra mysqld options...]
    local peers=$1 addr list="" n
    shift
    addr=$(own_address)
    [[ -n $addr ]] || die "cannot find this node's address (name $NODE_NAME)"
    # names of stopped tasks do not resolve, and Galera refuses to start on an
    # address it cannot resolve: list only the ones that do
    for n in $peers; do
        getent hosts "$n" >/dev/null 2>&1 && list+="${list:+,}$n"
    done
    write_secret_cnf
    log "starting mysqld: node address $addr, gcomm://$list $*"
    mysqld --defaults-extra-file="$RUN_DIR/secret.cnf" \
        --wsrep-cluster-name="$GALERA_CLUSTER_NAME" \
        --wsrep-node-name="$NODE_NAME" \
        --wsrep-node-address="$addr" \
        --wsrep-cluster-address="gcomm://$list" \
        "$@" &
    MYSQLD_PID=$!
}

mysqld_alive() { [[ -n $MYSQLD_PID ]] && kill -0 "$MYSQLD_PID" 2>/dev/null; }

wsrep_var() { # <status variable>: its value, empty if mysqld does not answer
    sql -e "SHOW GLOBAL STATUS LIKE '$1'" 2>/dev/null | awk '{print $2}' || true
}

# How long mysqld may stay Disconnected from the group while starting before
# it counts as having left it: it is Disconnected only for the moment it
# connects, and for good after a failed state transfer (seen: Galera's
# "Writeset deserialization failed" when two nodes joined one donor at
# once; its applier stopped and mysqld stayed up, outside the cluster).
readonly GALERA_LEFT_AFTER=30

# waits until this node is Synced in a Primary component; 1 if mysqld died,
# 2 if it stayed Disconnected for GALERA_LEFT_AFTER seconds
wait_synced() { # <what for the log>
    local t0 last=0 st cs disconnected_since=0 now
    t0=$(date +%s)
    while true; do
        if ! mysqld_alive; then
            wait "$MYSQLD_PID" 2>/dev/null || true
            return 1
        fi
        st=$(wsrep_var wsrep_local_state_comment)
        cs=$(wsrep_var wsrep_cluster_status)
        if [[ $st == Synced && $cs == Primary ]]; then
            log "$1: Synced in the Primary component after $(($(date +%s) - t0))s (cluster size $(wsrep_var wsrep_cluster_size))"
            return 0
        fi
        now=$(date +%s)
        if [[ $cs != Disconnected ]]; then
            disconnected_since=0
        elif ((disconnected_since == 0)); then
            disconnected_since=$now
        elif ((now - disconnected_since >= GALERA_LEFT_AFTER)); then
            log "$1: mysqld has been outside the cluster (Disconnected, state ${st:-?}) for ${GALERA_LEFT_AFTER}s"
            return 2
        fi
        if (($(date +%s) - last >= 30)); then
            log "$1: not Synced yet (state ${st:-mysqld not answering}, cluster ${cs:-?})"
            last=$(date +%s)
        fi
        nap 1
    done
}

# ------------------------------------------------------------ accounts --
init_sql() { # creates what the cluster needs; safe to run again
    local root_pw app_pw sst_pw
    root_pw=$(<"$SECRETS_DIR/root_password")
    app_pw=$(<"$SECRETS_DIR/app_password")
    sst_pw=$(<"$SECRETS_DIR/mariabackup_password")
    # through stdin: passwords never appear on a command line
    sql <<SQL
-- The SQL user mysql (unix_socket) is how the entrypoint and the health
-- endpoint get in; root keeps unix_socket for an operator with docker exec.
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($(sql_quote "$root_pw"));
DROP USER IF EXISTS ''@'localhost';
DROP USER IF EXISTS ''@'$(hostname)';
DROP DATABASE IF EXISTS test;
-- install-db's proxy grant for mysql@<hostname>: a warning at every start
-- under skip-name-resolve (no partner has joined yet: the copy they get by
-- SST is already clean)
DELETE FROM mysql.proxies_priv WHERE Host = '$(hostname)';
FLUSH PRIVILEGES;
CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'%' IDENTIFIED BY $(sql_quote "$app_pw");
GRANT ALL PRIVILEGES ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
-- what mariabackup needs on a donor
CREATE USER IF NOT EXISTS '$MARIADB_MARIABACKUP_USER'@'localhost' IDENTIFIED BY $(sql_quote "$sst_pw");
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO '$MARIADB_MARIABACKUP_USER'@'localhost';
SQL
}

try_login() { # <user> <secret name> <socket|tcp>: 0 ok, 1 wrong password, 2 other error
    local cnf=$RUN_DIR/login.cnf out rc=0
    (
        umask 077
        printf '[client]\nuser=%s\npassword=%s\n' "$1" "$(cnf_quote "$(<"$SECRETS_DIR/$2")")" >"$cnf"
    )
    if [[ $3 == socket ]]; then
        out=$(mariadb --defaults-file="$cnf" --protocol=socket --socket="$SOCKET" --connect-timeout=3 -N -B -e 'SELECT 1' 2>&1) || rc=1
    else
        out=$(mariadb --defaults-file="$cnf" --protocol=tcp -h 127.0.0.1 --connect-timeout=3 -N -B -e 'SELECT 1' 2>&1) || rc=1
    fi
    rm -f "$cnf"
    ((rc == 0)) && return 0
    [[ $out == *"Access denied"* ]] && return 1
    log "could not check $1's password: $out"
    return 2
}

# each secret must open its account: a wrong one is reported, never "fixed"
# (which copy is right is for an operator to say)
check_secrets() {
    local rc
    try_login root root_password socket && rc=0 || rc=$?
    ((rc != 1)) || log "galera: WRONG PASSWORD: MARIADB_ROOT_PASSWORD_FILE does not open root@localhost of this cluster"
    try_login "$MARIADB_USER" app_password tcp && rc=0 || rc=$?
    ((rc != 1)) || log "galera: WRONG PASSWORD: MARIADB_PASSWORD_FILE does not open '$MARIADB_USER' of this cluster: an application given this secret is refused"
    try_login "$MARIADB_MARIABACKUP_USER" mariabackup_password socket && rc=0 || rc=$?
    case $rc in
    0) put sst_auth ok ;;
    1)
        put sst_auth bad
        log "galera: WRONG PASSWORD: MARIADB_MARIABACKUP_PASSWORD_FILE does not open '$MARIADB_MARIABACKUP_USER' of this cluster: this node cannot be an SST donor (joiners avoid it)"
        ;;
    *) put sst_auth unknown ;;
    esac
}

# After a bootstrap WITHOUT some nodes (GALERA_MAJORITY_AFTER), those nodes
# may hold transactions the new history does not, under the same state uuid
# and a seqno the cluster will pass: an IST would then silently mix two
# histories. The cluster remembers them (replicated table galera_meta.left_out,
# published in /state) and each of them takes a full copy when it returns.
# The record is what makes a left-out node take a full copy instead of
# joining with a history of its own: it is tried for a minute (the write
# needs a Primary component), then reported loudly.
record_left_out() { # <node names>
    local n try
    [[ -n $1 ]] || return 0
    for n in $1; do
        for try in $(seq 1 30); do
            sql <<SQL && { log "galera: recorded that $n was left out of this bootstrap: it will take a full copy (SST) when it returns"; break; }
CREATE DATABASE IF NOT EXISTS galera_meta;
CREATE TABLE IF NOT EXISTS galera_meta.left_out (node VARCHAR(64) PRIMARY KEY, since TIMESTAMP DEFAULT CURRENT_TIMESTAMP, bootstrap_seqno BIGINT);
REPLACE INTO galera_meta.left_out (node, bootstrap_seqno) VALUES ('$n', $LOCAL_SEQNO);
SQL
            ((try < 30)) || log "ALARM: could not record that $n was left out of the bootstrap: if it rejoins by IST, its own transactions stay in its data"
            nap 2
        done
    done
}

write_marker() {
    local uuid
    uuid=$(wsrep_var wsrep_local_state_uuid)
    printf 'name=%s\nuuid=%s\ninitialised=1\n' "$GALERA_CLUSTER_NAME" "$uuid" >"$MARKER.tmp"
    mv "$MARKER.tmp" "$MARKER"
}

# ------------------------------------------------------- the three paths --
create_cluster() {
    set_phase bootstrapping
    log "galera: every node is empty: $NODE_NAME creates cluster '$GALERA_CLUSTER_NAME'"
    # --user=mysql: also creates the SQL user mysql@localhost (unix_socket),
    # how this script and the health endpoint get in without a password
    mariadb-install-db --datadir="$DATADIR" --user=mysql --auth-root-authentication-method=socket \
        --skip-test-db --wsrep-on=OFF >/dev/null 2>"$RUN_DIR/install-db.log" ||
        { cat "$RUN_DIR/install-db.log" >&2; die "mariadb-install-db failed"; }
    start_mysqld "" --wsrep-new-cluster
    wait_synced "new cluster" || die "mysqld exited while creating the cluster"
    set_phase initialising
    init_sql || die "creating the database and accounts failed"
    write_marker
    log "galera: cluster created: database $MARIADB_DATABASE, users $MARIADB_USER and $MARIADB_MARIABACKUP_USER"
}

bootstrap_existing() {
    set_phase bootstrapping
    sed -i 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 1/' "$DATADIR/grastate.dat"
    start_mysqld "" --wsrep-new-cluster --wsrep-start-position="$LOCAL_UUID:$LOCAL_SEQNO"
    wait_synced "bootstrap" || die "mysqld exited while bootstrapping"
    if [[ $(marker initialised) != 1 ]]; then
        log "this volume's cluster was never fully initialised (crash during creation?): creating the database and accounts"
        init_sql || die "creating the database and accounts failed"
    fi
}

join_cluster() { # <primary partners>
    local primaries=$1 n donors="" bad=""
    set_phase joining
    # joiners ask donors whose mariabackup password works; the trailing comma
    # lets Galera fall back to any other node
    for n in "${PEERS[@]}"; do
        [[ $(sv "$n" local_state) == 4 ]] || continue
        case $(sv "$n" sst_auth) in
        ok) donors+="$n," ;;
        bad) bad+="${bad:+ }$n" ;;
        esac
    done
    [[ -z $bad ]] || log "not asking $bad for a state transfer: its mariabackup password is wrong"
    local extra=()
    [[ -n $donors ]] && extra+=(--wsrep-sst-donor="$donors")
    if [[ -n $LOCAL_UUID ]]; then
        extra+=(--wsrep-start-position="$LOCAL_UUID:$LOCAL_SEQNO")
    fi
    start_mysqld "${PEERS[*]}" "${extra[@]}"
    local rc=0
    wait_synced "join" || rc=$?
    if ((rc == 2)); then
        # mysqld keeps the position of a half-done transfer in its data,
        # from which a restart would try the same again: they go aside
        # (a bounded kind: repeated failures make it again), and the
        # restart copies them whole. Aside, not removed: they should hold
        # nothing the cluster lacks (a node ahead of it is moved aside
        # before it joins), but a check is not a proof.
        log "the join failed after the state transfer (mysqld's errors above say why): stopping mysqld"
        set_phase stopping
        kill -TERM "$MYSQLD_PID" 2>/dev/null || true
        wait "$MYSQLD_PID" 2>/dev/null || true
        move_aside "JOIN FAILED AFTER THE STATE TRANSFER" "its data hold a half-done transfer" failed-join
        exit 1
    elif ((rc != 0)); then
        die "mysqld exited while joining $primaries (a failed state transfer? the donor's log says why; donor candidates: ${donors:-any})"
    fi
}

# ------------------------------------------------------------- decision --
LEFT_OUT_OF_BOOTSTRAP=0
decide_and_start() {
    local t0 msg last_msg="" last_log=0 busy
    t0=$(date +%s)
    check_foreign_name
    [[ -n $(head -n1 "$RUN_DIR/foreign") ]] || recover_position
    set_phase waiting
    while true; do
        survey
        join_decision
        if [[ $JOIN == join ]]; then
            [[ -z $ASIDE_HEADLINE ]] || move_aside "$ASIDE_HEADLINE" "$ASIDE_REASON" "$ASIDE_KIND"
            LEFT_OUT_OF_BOOTSTRAP=0
            [[ $JOIN_LEFT_OUT != yes ]] || LEFT_OUT_OF_BOOTSTRAP=1
            put candidate ""
            log "galera: $JOIN_WHY (from ${LOCAL_UUID:0:8}:$LOCAL_SEQNO)"
            join_cluster "$JOIN_PRIMARIES"
            return 0
        fi
        busy=$(any_primary)
        if [[ $JOIN == wait ]]; then
            msg=$JOIN_WHY
        elif [[ -n $busy ]]; then
            msg="a Primary component exists on $busy, not ready yet: waiting to join"
        elif [[ -n $(head -n1 "$RUN_DIR/foreign") ]]; then
            msg="this volume holds another cluster's data: waiting for a Primary component of '$GALERA_CLUSTER_NAME' to copy from"
        elif vote $(($(date +%s) - t0)); then
            log "galera: no partner is Primary; positions: $(positions); $WHY; every partner agrees: $NODE_NAME bootstraps"
            local left_out=$LEFT_OUT
            if has_data; then bootstrap_existing; else create_cluster; fi
            record_left_out "$left_out"
            return 0
        else
            msg="no partner is Primary; positions: $(positions); ${WHY:-undecided}"
            [[ -z $NOMINEE || $NOMINEE == "$NODE_NAME" ]] || msg+="; $NOMINEE should bootstrap, this node waits to join it"
        fi
        # the same message once, then once a minute
        if [[ $msg != "$last_msg" ]] || (($(date +%s) - last_log >= 60)); then
            log "galera: $msg"
            last_msg=$msg last_log=$(date +%s)
        fi
        nap 2
    done
}

# ----------------------------------------------------------- supervision --
HTTP_PID=""

start_http() {
    socat -T 5 "TCP-LISTEN:$HTTP_PORT,reuseaddr,fork,max-children=16" EXEC:/usr/local/bin/galera-endpoint.sh &
    HTTP_PID=$!
}

on_term() {
    log "stop signal: shutting mysqld down cleanly"
    set_phase stopping
    if mysqld_alive; then
        kill -TERM "$MYSQLD_PID" 2>/dev/null || true
        wait "$MYSQLD_PID" 2>/dev/null || true
    fi
    [[ -z $HTTP_PID ]] || kill "$HTTP_PID" 2>/dev/null || true
    exit 0
}
trap on_term TERM INT

# while running: take part in votes when non-Primary, rejoin a Primary
# component that formed elsewhere
supervise() {
    local np_since=0 now cs rc
    while true; do
        nap 2
        if ! mysqld_alive; then
            wait "$MYSQLD_PID" && rc=0 || rc=$?
            set_phase failed
            die "mysqld exited (status $rc): exiting so that the container is restarted"
        fi
        kill -0 "$HTTP_PID" 2>/dev/null || { log "http endpoint exited; restarting it"; start_http; }
        cs=$(wsrep_var wsrep_cluster_status)
        [[ -n $cs ]] || continue # busy or going down; the next round tells
        if [[ $cs == Primary ]]; then
            if ((np_since > 0)); then
                log "galera: back in the Primary component after $(($(date +%s) - np_since))s"
                np_since=0
                put candidate ""
            fi
            continue
        fi
        now=$(date +%s)
        if ((np_since == 0)); then
            np_since=$now
            log "galera: this node is non-Primary ($cs): it refuses queries until it is in a Primary component again"
            continue
        fi
        ((now - np_since >= GALERA_NONPRIMARY_GRACE)) || continue
        if vote $((now - np_since)); then
            log "galera: non-Primary for $((now - np_since))s and no partner is Primary; positions: $(positions); $WHY; every partner agrees: $NODE_NAME bootstraps (pc.bootstrap=YES)"
            sql -e "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'" || log "pc.bootstrap failed"
            if [[ -n $LEFT_OUT ]]; then
                local left_out=$LEFT_OUT
                LOCAL_SEQNO=$(wsrep_var wsrep_last_committed)
                # the record needs a Primary component: it replicates
                for _ in 1 2 3 4 5; do
                    [[ $(wsrep_var wsrep_cluster_status) == Primary ]] && break
                    nap 1
                done
                record_left_out "$left_out"
            fi
            continue
        fi
        ((now - np_since >= GALERA_REJOIN_AFTER)) || continue
        # Its position now, not the one it started from: the rule compares
        # it with the running cluster's (ahead of it: kept aside first).
        cs=$(wsrep_var wsrep_last_committed)
        [[ ! $cs =~ ^[0-9]+$ ]] || LOCAL_SEQNO=$cs
        cs=$(wsrep_var wsrep_local_state_uuid)
        [[ -z $cs || $cs == "$ZERO_UUID" ]] || LOCAL_UUID=$cs
        survey
        join_decision
        if [[ $JOIN == join ]]; then
            log "galera: non-Primary for $((now - np_since))s while $JOIN_PRIMARIES run(s) a Primary component: restarting to rejoin it"
            set_phase stopping
            kill -TERM "$MYSQLD_PID" 2>/dev/null || true
            wait "$MYSQLD_PID" 2>/dev/null || true
            exit 1
        fi
    done
}

main() {
    local f
    log "starting node $NODE_NAME of cluster '$GALERA_CLUSTER_NAME' (nodes: ${ALL_NODES[*]}; first node: $GALERA_FIRST_NODE)"
    for f in phase position candidate basis foreign sst_auth; do put "$f" ""; done
    put cluster_name "$GALERA_CLUSTER_NAME"
    set_phase starting
    start_http
    decide_and_start
    if ((LEFT_OUT_OF_BOOTSTRAP)); then
        sql -e "DELETE FROM galera_meta.left_out WHERE node = '$NODE_NAME'" ||
            log "WARNING: could not clear galera_meta.left_out for $NODE_NAME"
    fi
    check_secrets
    write_marker
    set_phase running
    log "galera: $NODE_NAME is Synced and serving"
    supervise
}

main "$@"
