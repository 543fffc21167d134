#!/usr/bin/env bash
# Makes the image every swarmvote image starts from, debian:bookworm-slim,
# when the engine has none and no registry can be reached: debootstrap from
# this host's Debian mirror, with bookworm-updates and bookworm-security, and
# this host's CA certificates so builds behind a TLS-inspecting proxy can
# reach crates.io and PyPI.
set -euo pipefail

readonly IMAGE="debian:bookworm-slim"
readonly SUITE="bookworm"
readonly DEFAULT_MIRROR="http://deb.debian.org/debian"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'debian-base: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'USAGE'
Usage: images/debian-base.sh [--force]

Ensures the Docker image debian:bookworm-slim exists: keeps one that is there,
else pulls it, else builds it with debootstrap from this host's Debian mirror.
  --force   build it with debootstrap even if it exists (to refresh it)
USAGE
}

# The Debian mirror this host uses (deb822 or one-line sources), else the default.
host_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
    | grep -v -e security -e nodesource -e google \
    | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' \
    | awk '{print $1}' | grep -E '^https?://' | head -n 1)
  printf '%s\n' "${uri:-$DEFAULT_MIRROR}"
}

# The security mirror next to the main one (deb.debian.org/debian -> .../debian-security).
security_mirror() {
  local main=${1:?missing mirror}
  printf '%s-security\n' "${main%/}"
}

# Builds the root file system in $1 and imports it as $IMAGE.
build() {
  local root=${1:?missing root dir} mirror security
  mirror=$(host_mirror)
  security=$(security_mirror "$mirror")
  command -v debootstrap >/dev/null 2>&1 || {
    [ "$(id -u)" -eq 0 ] || die "debootstrap is missing; install it (apt-get install debootstrap) or run as root"
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  log "building $IMAGE with debootstrap from $mirror (this takes a few minutes)"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; die "debootstrap failed (full log: $root.log)"; }
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
SOURCES
  # The host's extra CAs (e.g. a TLS-inspecting proxy's), trusted in every image.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  chroot "$root" /bin/sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get upgrade -y -qq
    update-ca-certificates >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/log/*.log
  ' >"$root.chroot.log" 2>&1 || { tail -n 20 "$root.chroot.log" >&2; die "updating the new image failed"; }
  # Slim images do not install documentation (as Docker's official ones).
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n' \
    >"$root/etc/dpkg/dpkg.cfg.d/docker-slim"
  tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
  log "built $IMAGE"
}

main() {
  local force=""
  case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  if [ -z "$force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  if [ -z "$force" ] && timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then
    log "pulled $IMAGE"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "$IMAGE is missing and cannot be pulled; building it needs root (debootstrap)"
  log "$IMAGE is not here and cannot be pulled (no registry reachable): building it from this host's Debian mirror"
  ROOTFS=$(mktemp -d /tmp/swarmvote-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS" "$ROOTFS.log" "$ROOTFS.chroot.log"' EXIT
  build "$ROOTFS"
}

main "$@"
