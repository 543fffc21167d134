#!/usr/bin/env bash
# Runs every test of swarmvote: installs what the tests need from Debian when
# it is missing, then formatting, lints, unit tests and integration tests
# against real redis-server and PostgreSQL processes that the tests start.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# Debian packages the tests use, and a file each one installs.
readonly PACKAGES=(
  "redis-server:/usr/bin/redis-server"
  "postgresql-15:/usr/lib/postgresql/15/bin/postgres"
  "shellcheck:/usr/bin/shellcheck"
  "curl:/usr/bin/curl"
  "iptables:/usr/sbin/iptables"
  "docker-registry:/usr/bin/docker-registry"
  "openssl:/usr/bin/openssl"
  "chromium:/usr/bin/chromium"
  "chromium-driver:/usr/bin/chromedriver"
  "python3-selenium:/usr/lib/python3/dist-packages/selenium/__init__.py"
  "fonts-noto-core:/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"
)
# Debian's Rust (bookworm-security carries a current one) when there is none.
readonly RUST_PACKAGES=(cargo-web rustc-web rustfmt-web rust-web-clippy)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'USAGE'
Usage: ./test.sh [--help]

Runs the whole test suite: cargo fmt --check, cargo clippy -D warnings,
shellcheck, cargo test (unit and integration tests; the integration tests
start their own redis-server and PostgreSQL on free loopback ports), then
tests/deploy.sh, which deploys the stacks on the local Docker swarm and drives
them over HTTPS (it replaces any local deployment of this project, volumes
included, and removes it at the end).

Missing Debian packages (redis-server, postgresql-15, shellcheck, and Rust when
cargo is absent) are installed with apt-get, which needs root.
USAGE
}

# Installs the packages named in "$@" with apt-get.
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "missing packages: $*; run as root or install them: apt-get install $*"
  log "installing $*"
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Installs whichever of the needed packages are not there yet.
ensure_packages() {
  local missing=() entry
  for entry in "${PACKAGES[@]}"; do
    [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
  done
  command -v cargo >/dev/null 2>&1 || missing+=("${RUST_PACKAGES[@]}")
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
}

main() {
  case "${1:-}" in
    "") ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  ensure_packages
  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  log "shellcheck"
  git ls-files -z -- '*.sh' '.ci/run' images/listen-address | xargs -0 -r shellcheck -x -S warning
  log "cargo test"
  cargo test --workspace --locked
  log "deployment tests (tests/deploy.sh)"
  tests/deploy.sh
}

main "$@"
