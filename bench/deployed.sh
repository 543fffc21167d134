#!/usr/bin/env bash
# What the benchmarks of the deployed system share (bench/edge.sh,
# bench/redis-ha.sh): their one option, wrk, a deployment that is up to date,
# and the URL of Traefik's HTTPS port. Sourced; the script defines usage().

BENCH=$(basename "$0")

# Reads the arguments: sets record ("" with --no-record); exits on --help.
# shellcheck disable=SC2034 # read by the sourcing script
bench_args() {
  record=1
  case "${1:-}" in
    "") ;;
    --no-record) record="" ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 1 ;;
  esac
}

# Checks for wrk, deploys (./deploy.sh is idempotent), prints Traefik's
# HTTPS URL on 127.0.0.1: url=$(bench_prepare) || exit 1
bench_prepare() {
  command -v wrk >/dev/null 2>&1 || { echo "$BENCH: wrk is missing (apt-get install wrk)" >&2; exit 1; }
  echo "$BENCH: deploying (./deploy.sh)" >&2
  ./deploy.sh >/dev/null 2>&1 || { echo "$BENCH: ./deploy.sh failed; run it to see why" >&2; exit 1; }
  local env_file=${SWARMVOTE_ENV_FILE:-.env} port=""
  [ ! -f "$env_file" ] || port=$(sed -nE 's/^HTTPS_PORT=([0-9]+)$/\1/p' "$env_file" | tail -n 1)
  printf 'https://127.0.0.1:%s\n' "${port:-443}"
}
