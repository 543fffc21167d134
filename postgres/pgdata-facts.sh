# shellcheck shell=bash
# Facts about this node's data directory, read without a fork per field.
# Sourced by entrypoint.sh and role-endpoint.sh (both run it every second or
# so, so each fork counts on two loaded cores). Needs PGDATA and PGBIN.

# control_load: runs pg_controldata once, into CONTROL.
control_load() { CONTROL=$("$PGBIN/pg_controldata" -D "$PGDATA" 2>/dev/null || true); }

# control FIELD: sets REPLY to FIELD of the last control_load ("" if absent).
control() {
    local line
    REPLY=""
    while IFS= read -r line; do
        if [[ $line == "$1:"* ]]; then
            line=${line#"$1:"}
            REPLY=${line#"${line%%[![:space:]]*}"}
            return 0
        fi
    done <<<"${CONTROL:-}"
}

# data_timeline: sets REPLY to the newest timeline this node's data knows:
# its control file's, or a newer history file in pg_wal (a promotion writes
# one at once, before its checkpoint reaches the control file; a standby
# fetches one before it streams the new timeline). Calls control_load.
data_timeline() {
    local a b h
    control_load
    control "Latest checkpoint's TimeLineID"
    a=${REPLY:-0}
    control "Min recovery ending loc's timeline"
    b=${REPLY:-0}
    if ((b > a)); then a=$b; fi
    for h in "$PGDATA"/pg_wal/*.history; do
        h=${h##*/}
        h=${h%.history}
        if [[ $h =~ ^[0-9A-F]{8}$ ]] && ((16#$h > a)); then a=$((16#$h)); fi
    done
    REPLY=$a
}
