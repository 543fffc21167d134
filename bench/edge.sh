#!/usr/bin/env bash
# Measures the deployed system at its edge: POST / (a vote) through Traefik
# versus GET / (the vote page) of the same service through the same Traefik path,
# in the same run; and the size of every image. Appends a table to
# bench/RESULTS.md. Deploys first (./deploy.sh is idempotent).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=10s
CONNECTIONS=64
ROUNDS=3

usage() {
  cat <<'USAGE'
Usage: bench/edge.sh [--no-record] [--help]

Deploys (./deploy.sh), then runs wrk through Traefik on 127.0.0.1: a vote
(POST /, form vote=a, every request a new voter) against GET / (the page) of
the same vote service, three interleaved rounds; prints the median ratio, the
CPU each service used per request, and the image sizes, and appends them to
bench/RESULTS.md unless --no-record.
USAGE
}

# shellcheck source=bench/deployed.sh
source bench/deployed.sh
bench_args "$@"
url=$(bench_prepare) || exit 1

# One wrk run: $1 path, rest wrk options. Prints "requests/s requests".
run() {
  local path=$1
  shift
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -H 'Host: vote.localhost' "$@" "$url$path" >"$work/wrk"
  awk '/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 } /Non-2xx or 3xx/ { print "errors " $NF > "/dev/stderr" }
       END { print rps, n }' "$work/wrk"
}

# "| name | a | b |" rows of two cpu_per_request outputs $1, $2 (files).
cpu_rows() {
  join -t'|' -a1 -a2 -e 0 -o 0,1.2,2.2 <(sort "$1") <(sort "$2") | sort -t'|' -k2 -rn \
    | awk -F'|' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ratios=()
rows=""
for round in $(seq 1 "$ROUNDS"); do
  cpu_seconds >"$work/cpu.before"
  read -r health health_n < <(run /)
  cpu_seconds >"$work/cpu.after"
  cpu_per_request "$work/cpu.before" "$work/cpu.after" "$health_n" >"$work/cpu.health"
  cpu_seconds >"$work/cpu.before"
  read -r vote vote_n < <(run / -s bench/post.lua)
  # A vote's cost includes storing it; the next round starts once every
  # vote of this one is stored.
  wait_drained || exit 1
  cpu_seconds >"$work/cpu.after"
  cpu_per_request "$work/cpu.before" "$work/cpu.after" "$vote_n" >"$work/cpu.vote"
  ratio=$(awk -v v="$vote" -v h="$health" 'BEGIN {printf "%.2f", v / h}')
  ratios+=("$ratio")
  rows+="| $round | $vote | $health | ${ratio}× |"$'\n'
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
images=$(docker images --format '| {{.Repository}}:{{.Tag}} | {{.Size}} |' | grep -E '^\| (swarmvote/[a-z]+:latest|debian:bookworm-slim) ' | sort)

table=$(cat <<TABLE
### Edge: votes through Traefik — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(bench_commit)

\`bench/edge.sh\` on $(nproc) cores; wrk -t2 -c$CONNECTIONS -d$DURATION through Traefik (HTTPS) to 2 vote replicas.

| round | POST / (vote) req/s | GET / (page) req/s | ratio |
|---|---|---|---|
$rows
Median ratio: **${median}×** (goal ≥ 0.7×). Each round starts after the
workers stored every vote of the round before.

Where the CPU goes (last round; ms of CPU per 1000 requests, both cores
counted, a vote's until it is stored; "other" is wrk, the kernel's
networking and Docker, including this script's docker execs while it waits
for the workers):

| | GET / (page) | POST / (vote) |
|---|---|---|
$(cpu_rows "$work/cpu.health" "$work/cpu.vote")

| image | size |
|---|---|
$images
TABLE
)
printf '%s\n' "$table"
[ -z "$record" ] || printf '\n%s\n' "$table" >>bench/RESULTS.md
