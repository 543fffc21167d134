#!/usr/bin/env bash
# What a change cost the vote path: the vote service built at an earlier
# commit (BEFORE, default 1d257aa: before cross-site checks and signed
# voter ids) against the one in this checkout, both on this machine, in the
# same run, against one redis-server, with wrk. Interleaved rounds of two
# loads: POST / as a new voter (no cookie: the service mints an id, and now
# signs it) and POST / as a returning voter (the id each version issued:
# now its signature is checked and renewed). Prints the ratios after/before
# and appends them to bench/RESULTS.md unless --no-record.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BEFORE=${BEFORE:-1d257aa}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}

usage() {
  cat <<'USAGE'
Usage: bench/vote-before-after.sh [--no-record] [--help]

Builds the vote service at BEFORE (default 1d257aa) and at this checkout
(release), runs both against one redis-server on free loopback ports, and
measures POST / (form vote=a) with wrk: as a new voter, and as a returning
voter with the cookie each version issued. ROUNDS (3) interleaved rounds of
DURATION (10s) with CONNECTIONS (32). Prints requests/s and the median ratio
after/before; appends the table to bench/RESULTS.md unless --no-record.
Needs wrk and redis-server (apt-get install wrk redis-server).
USAGE
}

record=1
case "${1:-}" in
  "") ;;
  --no-record) record="" ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; echo "vote-before-after.sh: unknown argument: $1" >&2; exit 1 ;;
esac
for tool in wrk redis-server cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "vote-before-after.sh: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}" $(cat "$work"/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  git worktree remove --force "$work/before" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "building vote at $BEFORE and at $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes') (release)" >&2
git worktree add --detach "$work/before" "$BEFORE" >/dev/null 2>&1
CARGO_TARGET_DIR="$work/target-before" cargo build -q --release --locked -p vote --manifest-path "$work/before/Cargo.toml"
cargo build -q --release --locked -p vote
after_bin="${CARGO_TARGET_DIR:-target}/release/vote"
before_bin="$work/target-before/release/vote"

redis_port=$(free_port)
redis-server --port "$redis_port" --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
sleep 0.5
# start NAME BINARY: runs the vote service on a free port; prints the port.
start() {
  local port
  port=$(free_port)
  LISTEN_ADDR="127.0.0.1:$port" REDIS_HOST=127.0.0.1 REDIS_PORT="$redis_port" \
    VOTE_COOKIE_KEY=bench-key-0123456789abcdef LOG_LEVEL=warn "$2" >"$work/$1.log" 2>&1 &
  # In a file: start runs in a command substitution, whose pids+= the
  # cleanup never saw (both services outlived the script).
  echo "$!" >"$work/$1.pid"
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  printf '%s\n' "$port"
}
before_port=$(start before "$before_bin")
after_port=$(start after "$after_bin")

# cookie PORT: the voter_id cookie the service on PORT issues.
cookie() {
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/" | tr -d '\r' | sed -nE 's/^set-cookie: (voter_id=[^;]*).*/\1/Ip' | head -n 1
}
# rps PORT [COOKIE]: requests/s of POST / for DURATION.
rps() {
  local headers=(-H 'Content-Type: application/x-www-form-urlencoded')
  [ -z "${2:-}" ] || headers+=(-H "Cookie: $2")
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "${headers[@]}" -s bench/post.lua "http://127.0.0.1:$1/" \
    | awk '/^Requests\/sec:/ { print $2 }'
}
before_cookie=$(cookie "$before_port")
after_cookie=$(cookie "$after_port")

rows=""
new_ratios=()
known_ratios=()
for round in $(seq 1 "$ROUNDS"); do
  b_new=$(rps "$before_port")
  a_new=$(rps "$after_port")
  b_known=$(rps "$before_port" "$before_cookie")
  a_known=$(rps "$after_port" "$after_cookie")
  redis-cli -p "$redis_port" DEL votes >/dev/null
  new_ratios+=("$(awk -v a="$a_new" -v b="$b_new" 'BEGIN { printf "%.3f", a / b }')")
  known_ratios+=("$(awk -v a="$a_known" -v b="$b_known" 'BEGIN { printf "%.3f", a / b }')")
  rows+="| $round | $b_new | $a_new | ${new_ratios[-1]} | $b_known | $a_known | ${known_ratios[-1]} |"$'\n'
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
table="| round | new voter, before (req/s) | after | ratio | returning voter, before | after | ratio |
|---|---|---|---|---|---|---|
$rows
Median ratio after/before: new voter **$(median "${new_ratios[@]}")**, returning voter **$(median "${known_ratios[@]}")**."
printf '%s\n' "$table"
if [ -n "$record" ]; then
  {
    printf '\n### Vote path before and after: %s vs %s (%s)\n\n' "$BEFORE" "$(git rev-parse --short HEAD)" "$(date -u +%F)"
    printf 'Command: `bench/vote-before-after.sh` (BEFORE=%s, %s rounds of %s, %s connections, one redis-server, no replica; %s cores). POST / form `vote=a` straight to each vote service, no Traefik.\n\n' \
      "$BEFORE" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$(nproc)"
    printf '%s\n' "$table"
  } >>bench/RESULTS.md
fi
