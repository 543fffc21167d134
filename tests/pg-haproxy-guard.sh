#!/usr/bin/env bash
# pg-haproxy's primary endpoint admits at most one node
# (postgres/primary-guard.lua). The deployed pg-haproxy image runs on a
# private, internal network in front of three stand-in nodes named pg-1..3
# (the deployed postgres image running socat), whose /primary answer the
# test sets: with two nodes passing at once, neither may take connections.
# Alone: tests/pg-haproxy-guard.sh (after ./deploy.sh, which builds the images;
# PROXY_IMAGE=IMAGE tries another pg-haproxy image).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh

readonly NET=swarmvote-guard-test
readonly PROXY=swarmvote-guard-haproxy

cleanup() {
  docker rm -f "$PROXY" guard-pg-1 guard-pg-2 guard-pg-3 >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
}

# A stand-in node: :8008 answers every request with the status in
# /tmp/status (503 at first), :5432 answers with its name and holds the
# connection for a minute.
start_node() {
  local name=$1
  # shellcheck disable=SC2016 # expanded by the container's shell
  docker run -d --name "guard-$name" --network "$NET" --network-alias "$name" \
    --entrypoint bash "$(image_of postgres_pg-1)" -c '
      echo 503 >/tmp/status
      printf "%s\n" "#!/bin/bash" "read -r _" \
        "printf \"HTTP/1.0 %s x\\r\\nContent-Length: 0\\r\\n\\r\\n\" \"\$(</tmp/status)\"" >/tmp/respond
      chmod +x /tmp/respond
      socat TCP-LISTEN:5432,fork,reuseaddr SYSTEM:"echo $0; sleep 60" &
      exec socat TCP-LISTEN:8008,fork,reuseaddr EXEC:/tmp/respond' \
    "$name" >/dev/null
}
answer() { docker exec "guard-$1" bash -c "echo $2 >/tmp/status"; }

# From stand-in pg-3 (same network): GET of the stats page as CSV, and one
# connection to the primary endpoint (the name of the node it reached).
stats_csv() {
  # shellcheck disable=SC2016
  docker exec guard-pg-3 bash -c 'exec 3<>/dev/tcp/'"$PROXY"'/8404 && printf "GET /postgres;csv HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null
}
reached() {
  docker exec guard-pg-3 timeout 3 bash -c 'exec 3<>/dev/tcp/'"$PROXY"'/5432 && timeout 2 cat <&3' 2>/dev/null | tr -d '\r\n' || true
}
# "pg-1=UP pg-2=DRAIN pg-3=DOWN": the primary backend's servers.
statuses() {
  stats_csv | awk -F, '$1 == "postgres_primary" && $2 ~ /^pg-/ { printf "%s=%s ", $2, $18 }' | sed 's/ $//'
}
# Succeeds once the proxy's log holds $1 (polled up to 5 s: the log is
# read through Docker); else shows the guard's lines and fails.
guard_logged() {
  for _ in $(seq 1 25); do
    docker logs "$PROXY" 2>&1 | grep -qF "$1" && return 0
    sleep 0.2
  done
  docker logs "$PROXY" 2>&1 | grep -E 'primary-guard|drain' | tail -n 12 | sed 's/^/      /'
  return 1
}
# Waits up to $2 s until statuses match regex $1.
wait_for() {
  for _ in $(seq 1 $(($2 * 5))); do
    [[ $(statuses) =~ $1 ]] && return 0
    sleep 0.2
  done
  return 1
}

main() {
  echo "pg-haproxy: at most one node behind the primary endpoint"
  cleanup
  trap cleanup EXIT
  docker network create --internal "$NET" >/dev/null
  local n
  for n in pg-1 pg-2 pg-3; do start_node "$n"; done
  docker run -d --name "$PROXY" --network "$NET" "${PROXY_IMAGE:-$(image_of postgres_pg-haproxy)}" >/dev/null

  answer pg-1 200
  check "one node passing the primary check takes connections ($(wait_for '^pg-1=UP pg-2=DOWN pg-3=DOWN$' 20 || true; statuses))" \
    test "$(reached)" = pg-1

  # A client connected to pg-1 before a second node passes.
  docker exec guard-pg-3 timeout 40 bash -c 'exec 3<>/dev/tcp/'"$PROXY"'/5432 && cat <&3 >/dev/null' &
  local client=$!
  answer pg-2 200
  wait_for 'pg-2=(UP|DRAIN)' 20 || true
  sleep 0.5
  local both
  both=$(statuses)
  check "with two passing, neither takes connections ($both)" \
    eval '[[ $both =~ pg-1=DRAIN && $both =~ pg-2=DRAIN ]]'
  local cut=no
  for _ in $(seq 1 15); do kill -0 "$client" 2>/dev/null || { cut=yes; break; }; sleep 0.2; done
  check "...and the client already connected to pg-1 is cut off" test "$cut" = yes
  kill "$client" 2>/dev/null || true
  check "...and a client reaches no node (reached '$(reached)')" test -z "$(reached)"
  check "...and pg-haproxy says why in its log" guard_logged "pg-1 pg-2 all pass the primary check"

  answer pg-1 503
  wait_for 'pg-1=DOWN' 20 || true
  sleep 0.5
  check "once only one passes, it takes connections again ($(statuses))" test "$(reached)" = pg-2
  report "pg-haproxy guard"
}

main "$@"
