#!/usr/bin/env bash
# Makes the image every swarmvote image starts from, debian:bookworm-slim,
# when the engine has none and no registry can be reached: debootstrap from
# this host's Debian mirror, with bookworm-updates and bookworm-security.
#
# Then the image the build stages start from, swarmvote/build-base: the same
# with this host's extra CA certificates (/usr/local/share/ca-certificates),
# so that builds behind a TLS-inspecting proxy reach crates.io and PyPI.
# Those CAs are needed to build, not to run: the images that run start from
# debian:bookworm-slim, which does not trust them.
set -euo pipefail

readonly IMAGE="debian:bookworm-slim"
readonly BUILD_BASE="swarmvote/build-base:latest"
readonly HOST_CAS="/usr/local/share/ca-certificates"
readonly SUITE="bookworm"
readonly DEFAULT_MIRROR="http://deb.debian.org/debian"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'debian-base: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'USAGE'
Usage: images/debian-base.sh [--force]

Ensures the Docker image debian:bookworm-slim exists: keeps one that is there,
else pulls it, else builds it with debootstrap from this host's Debian mirror.
Then builds swarmvote/build-base from it, with this host's extra CAs.
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

# Runs the command "$@" with its output in file $1 and shows what it is doing
# meanwhile: every 10 s, its last "I: " line (debootstrap's phases and the
# package at hand) when that changed, with the seconds so far.
with_progress() {
  local out=$1 pid started=$SECONDS shown="" line
  shift
  "$@" >"$out" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    line=$(grep -a '^I: ' "$out" 2>/dev/null | tail -n 1 | cut -c1-90) || true
    [ -z "$line" ] || [ "$line" = "$shown" ] || log "  ${line#I: } ($((SECONDS - started))s)"
    shown=$line
  done
  wait "$pid"
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
  with_progress "$root.log" debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$mirror" \
    || { tail -n 20 "$root.log" >&2; die "debootstrap failed (full log: $root.log)"; }
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
SOURCES
  chroot "$root" /bin/sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get upgrade -y -qq
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

# True when image $IMAGE trusts extra CAs of its own: an older version of
# this script put the host's there.
has_extra_cas() {
  [ -n "$(docker run --rm --entrypoint /bin/sh "$IMAGE" -c "ls -A $HOST_CAS 2>/dev/null" 2>/dev/null)" ]
}

# Builds $BUILD_BASE: $IMAGE, plus the host's extra CAs when it has any.
build_base() {
  local ctx
  ctx=$(mktemp -d)
  mkdir "$ctx/ca"
  if compgen -G "$HOST_CAS/*.crt" >/dev/null; then cp "$HOST_CAS"/*.crt "$ctx/ca/"; fi
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $IMAGE
COPY ca/ $HOST_CAS/
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null \\
 && update-ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t "$BUILD_BASE" "$ctx" >/dev/null 2>"$ctx.log" \
    || { rm -rf "$ctx"; tail -n 20 "$ctx.log" >&2; die "building $BUILD_BASE failed (log: $ctx.log)"; }
  rm -rf "$ctx" "$ctx.log"
}

main() {
  local force=""
  case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  if [ -z "$force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1 && has_extra_cas; then
    log "$IMAGE trusts this host's extra CAs (made by an older version): making it again without them"
    force=1
  fi
  if [ -n "$force" ] || ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    if [ -z "$force" ] && timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then
      log "pulled $IMAGE"
    else
      [ "$(id -u)" -eq 0 ] || die "$IMAGE is missing and cannot be pulled; building it needs root (debootstrap)"
      [ -n "$force" ] || log "$IMAGE is not here and cannot be pulled (no registry reachable): building it from this host's Debian mirror"
      ROOTFS=$(mktemp -d /tmp/swarmvote-rootfs.XXXXXX)
      trap 'rm -rf "$ROOTFS" "$ROOTFS.log" "$ROOTFS.chroot.log"' EXIT
      build "$ROOTFS"
    fi
  fi
  build_base
}

main "$@"
