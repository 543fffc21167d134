#!/usr/bin/env bash
# Measures the deployed system at its edge: POST / (a vote) through Traefik
# versus GET /healthz of the same vote service through the same Traefik path,
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
(POST /, form vote=a, every request a new voter) against GET /healthz of the
same vote service, three interleaved rounds; prints the median ratio and the
image sizes, and appends them to bench/RESULTS.md unless --no-record.
USAGE
}

# shellcheck source=bench/deployed.sh
source bench/deployed.sh
bench_args "$@"
url=$(bench_prepare) || exit 1

# Requests per second of one wrk run: $1 path, rest wrk options.
rps() {
  local path=$1
  shift
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -H 'Host: vote.localhost' "$@" "$url$path" \
    | awk '/^Requests\/sec:/ {print $2} /Non-2xx or 3xx/ {print "errors " $NF > "/dev/stderr"}'
}

ratios=()
rows=""
for round in $(seq 1 "$ROUNDS"); do
  health=$(rps /healthz)
  vote=$(rps / -s bench/post.lua)
  ratio=$(awk -v v="$vote" -v h="$health" 'BEGIN {printf "%.2f", v / h}')
  ratios+=("$ratio")
  rows+="| $round | $vote | $health | ${ratio}× |"$'\n'
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
images=$(docker images --format '| {{.Repository}}:{{.Tag}} | {{.Size}} |' | grep -E '^\| (swarmvote/[a-z]+:latest|debian:bookworm-slim) ' | sort)

table=$(cat <<TABLE
### Edge: votes through Traefik — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)

\`bench/edge.sh\` on $(nproc) cores; wrk -t2 -c$CONNECTIONS -d$DURATION through Traefik (HTTPS) to 2 vote replicas.

| round | POST / (vote) req/s | GET /healthz req/s | ratio |
|---|---|---|---|
$rows
Median ratio: **${median}×** (goal ≥ 0.7×).

| image | size |
|---|---|
$images
TABLE
)
printf '%s\n' "$table"
[ -z "$record" ] || printf '\n%s\n' "$table" >>bench/RESULTS.md
