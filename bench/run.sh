#!/usr/bin/env bash
# Runs the swarmvote benchmarks (bench/README.md) with one command: installs
# what they need from Debian when it is missing, builds the release binaries,
# runs them against references measured in the same run, prints the table and
# appends it to bench/RESULTS.md with the date, commit, machine and command.
# Not part of the test suite.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BENCH_DIR
ROOT="$(dirname "$BENCH_DIR")"
readonly ROOT
readonly RESULTS="$BENCH_DIR/RESULTS.md"

# Debian packages the bench uses, and a file each one installs.
readonly PACKAGES=(
  "wrk:/usr/bin/wrk"
  "nginx-light:/usr/sbin/nginx"
  "redis-server:/usr/bin/redis-server"
  "postgresql-15:/usr/lib/postgresql/15/bin/postgres"
)
# Open files the bench needs: 1000 SSE clients on each side of the loopback.
readonly MIN_OPEN_FILES=8192
# How long the bench may take to stop its processes after SIGTERM.
readonly STOP_WAIT_SECS=30

BENCH_ARGS=()
RECORD=1
RUN_DIR=""
BENCH_PID=""
SUCCEEDED=0

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'run.sh: %s (see bench/run.sh --help)\n' "$*" >&2; exit 2; }

usage() {
  cat <<'USAGE'
Usage: bench/run.sh [--quick] [--only LIST] [--batch-sizes LIST] [--no-record]
                    [--help]

Measures, each beside a reference taken in the same run on this machine:
  1. vote:   POST / requests/s with wrk, against nginx `return 200`
  2. worker: votes/s draining 1,000,000 queued votes into PostgreSQL, against
             one INSERT ... SELECT ... ON CONFLICT of the same rows
  3. result: vote acknowledged -> SSE event latency (p50, p99) at 1,000 votes/s
             with 1,000 SSE clients
  4. memory of vote, worker and result, idle and under the load of 3
Prints a Markdown table and appends it to bench/RESULTS.md. Takes about
4 minutes on 2 cores, after the release build.

  --quick       small sizes, to check that the bench works (not recorded)
  --only LIST   comma-separated subset of vote,worker,result
  --batch-sizes LIST
                WORKER_BATCH_SIZE values to try with one worker (default
                1000,5000); the fastest is also run with two workers
  --no-record   print the table without appending it to bench/RESULTS.md
  -h, --help    this text

Missing Debian packages (wrk, nginx-light, redis-server, postgresql-15) are
installed with apt-get, which needs root.
USAGE
}

# Reads the command line into BENCH_ARGS and RECORD.
parse_args() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --quick) BENCH_ARGS+=(--quick); RECORD=0 ;;
      --only)
        [ "$#" -ge 2 ] || usage_error "--only needs a list, e.g. --only worker,result"
        BENCH_ARGS+=(--only "$2"); shift ;;
      --batch-sizes)
        [ "$#" -ge 2 ] || usage_error "--batch-sizes needs a list, e.g. --batch-sizes 1000,5000"
        BENCH_ARGS+=(--batch-sizes "$2"); shift ;;
      --no-record) RECORD=0 ;;
      *) usage_error "unknown argument: $1" ;;
    esac
    shift
  done
}

# Installs whichever of the needed packages are missing.
ensure_packages() {
  local missing=() entry
  for entry in "${PACKAGES[@]}"; do
    [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Raises the open-file limit for this shell and its children.
raise_open_files() {
  local soft hard
  soft="$(ulimit -Sn)"
  hard="$(ulimit -Hn)"
  [ "$soft" = unlimited ] || [ "$soft" -ge "$MIN_OPEN_FILES" ] && return 0
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$MIN_OPEN_FILES" ]; then
    die "the open-file limit is $hard; the bench needs $MIN_OPEN_FILES (ulimit -n)"
  fi
  ulimit -Sn "$MIN_OPEN_FILES"
}

# Stops the bench and anything it started that is still running; removes the
# temporary directory, all but the logs when the run failed.
cleanup() {
  local pid comm waited=0
  if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    while kill -0 "$BENCH_PID" 2>/dev/null && [ "$waited" -lt "$((STOP_WAIT_SECS * 10))" ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -KILL "$BENCH_PID" 2>/dev/null || true
  fi
  # Leftovers only if the bench itself was killed: each line is "PID COMM",
  # and a process is killed only if its id still names the same program.
  if [ -n "$RUN_DIR" ] && [ -f "$RUN_DIR/pids" ]; then
    while read -r pid comm; do
      if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
        log "stopping leftover $comm ($pid)"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$RUN_DIR/pids"
  fi
  if [ -n "$RUN_DIR" ]; then
    if [ "$SUCCEEDED" -eq 1 ]; then
      rm -rf "$RUN_DIR"
    else
      # Keep the services' logs and the process list; drop the databases.
      find "$RUN_DIR" -mindepth 1 -maxdepth 1 ! -name 'bench-logs-*' ! -name pids -exec rm -rf {} +
      printf 'run.sh: the run failed; logs are in %s\n' "$RUN_DIR" >&2
    fi
  fi
}

# Appends the table in "$1" to RESULTS.md with what it was measured on.
record() {
  local table="${1:?missing table file}" commit cpu cores mem_kib
  commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
  fi
  cores="$(nproc)"
  cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  if [ ! -f "$RESULTS" ]; then
    # shellcheck disable=SC2016 # the backquotes are Markdown, not expansions
    printf '# Benchmark results\n\nAppended by `bench/run.sh`, newest last. Machines are noisy: compare the\nratios to the references measured in the same run, not absolute numbers.\n' >"$RESULTS"
  fi
  {
    printf '\n## %s, commit %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit"
    printf -- '- machine: %s cores (%s), %s GiB memory, %s\n' \
      "$cores" "${cpu:-unknown CPU}" "$(awk -v k="$mem_kib" 'BEGIN {printf "%.1f", k / 1048576}')" "$(uname -sr)"
    # shellcheck disable=SC2016 # the backquotes are Markdown, not expansions
    printf -- '- command: `%s`\n\n' "$COMMAND"
    cat "$table"
  } >>"$RESULTS"
  log "appended to $RESULTS"
}

main() {
  COMMAND="bench/run.sh${*:+ $*}"
  readonly COMMAND
  parse_args "$@"
  ensure_packages
  raise_open_files
  log "building release binaries"
  (cd "$ROOT" && cargo build --release -p vote -p worker -p result -p bench)

  RUN_DIR="$(mktemp -d -t swarmvote-bench.XXXXXX)"
  # PostgreSQL runs as the postgres user and keeps its data under TMPDIR.
  chmod 755 "$RUN_DIR"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  log "running the benchmarks (temporary files in $RUN_DIR)"
  # In the background so that a signal reaches the trap at once.
  TMPDIR="$RUN_DIR" "$ROOT/target/release/bench" \
    --report "$RUN_DIR/table.md" --pids "$RUN_DIR/pids" "${BENCH_ARGS[@]}" &
  BENCH_PID=$!
  local status=0
  wait "$BENCH_PID" || status=$?
  BENCH_PID=""
  [ "$status" -eq 0 ] || die "the bench failed (exit $status)"
  if [ "$RECORD" -eq 1 ]; then
    record "$RUN_DIR/table.md"
  fi
  SUCCEEDED=1
}

main "$@"
