#!/usr/bin/env bash
# Deploys swarmvote on Docker Swarm with one command, and tells its state.
set -euo pipefail
# shellcheck source=lib/deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/deploy.sh"
# shellcheck source=lib/status.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/status.sh"

readonly STACKS=(postgres redis app wordpress)

usage() {
  cat <<'USAGE'
Usage: ./deploy.sh [COMMAND]

Commands:
  (none), deploy       build the images and deploy every stack (postgres, redis,
                       app, wordpress), wait until all services are healthy,
                       print the URLs
  build                build every image without deploying (and push them
                       when REGISTRY is set)
  push                 build every image and push it to REGISTRY; prints the
                       VOTE_IMAGE, WORKER_IMAGE and RESULT_IMAGE to deploy
  status [--all]       every tier on one screen: health, primaries, lag, the
                       queue and votes per second; --all: every service, task
                       and node in full
  down [--volumes]     remove the stacks; keep the data volumes unless --volumes
  logs SERVICE         recent logs of a service (e.g. vote or app_vote)
  -h, --help           this help

Configuration: .env (see .env.example); without one, everything works on
localhost with generated secrets in .secrets/ (mode 0600, git-ignored).
USAGE
}

# Prints where the system is and where the credentials are.
summary() {
  local https=""
  [ "$HTTPS_PORT" = 443 ] || https=":$HTTPS_PORT"
  log "swarmvote is up"
  cat <<SUMMARY
    vote:     https://$VOTE_SUB.$DOMAIN$https/
    result:   https://$RESULT_SUB.$DOMAIN$https/
    wordpress: https://$WP_SUB.$DOMAIN$https/ (user $WP_ADMIN_USER; password in .secrets/wp_admin_password unless WP_ADMIN_PASSWORD is set)
    stats:    https://$HAPROXY_SUB.$DOMAIN$https/redis, /postgres and /wordpress (user ${HAPROXY_AUTH_USER:-admin}; password in .secrets/haproxy_auth_password unless HAPROXY_AUTH_PASS is set)
    secrets:  .secrets/ (generated passwords, mode 0600)
SUMMARY
  printf '    TLS:      certificates from a local CA; trust .secrets/tls/ca.crt in your browser\n'
}

cmd_deploy() {
  local started=$SECONDS stack
  prepare
  for stack in "${STACKS[@]}"; do
    "deploy_$stack"
  done
  summary
  step "done in $((SECONDS - started))s"
}

# ./deploy.sh build: every image, as a deploy builds them, without deploying
# (pushed to REGISTRY when it is set); ./deploy.sh push: the same, and a
# registry is required. Prints what to put in .env to deploy the pushed
# vote, worker and result images elsewhere as they are.
cmd_build() {
  local push=${1:-} stack
  load_env
  [ -z "$push" ] || [ -n "$REGISTRY" ] || die "push needs a registry: set REGISTRY in .env (host[:port][/path])"
  require_docker
  ensure_base_image
  for stack in "${STACKS[@]}"; do
    log "$stack images"
    "build_${stack}_images"
  done
  log "built${REGISTRY:+ and pushed to $REGISTRY}"
  printf '    VOTE_IMAGE=%s\n    WORKER_IMAGE=%s\n    RESULT_IMAGE=%s\n' "$VOTE_IMAGE" "$WORKER_IMAGE" "$RESULT_IMAGE"
  [ -z "$REGISTRY" ] || step "(put these lines in .env to deploy these images as they are, without building them)"
}

cmd_status() {
  require_docker
  case "${1:-}" in
    "") status_summary ;;
    --all) status_all ;;
    *) die "status: unknown option '$1' (only --all)" ;;
  esac
}

cmd_down() {
  local volumes="" stack
  case "${1:-}" in
    "") ;;
    --volumes) volumes=1 ;;
    *) die "down: unknown option '$1' (only --volumes)" ;;
  esac
  require_docker
  for stack in wordpress app redis postgres; do
    docker stack rm "$stack" >/dev/null 2>&1 && step "removed stack $stack"
  done
  # Wait until the tasks' containers are gone, so that volumes are free.
  local deadline=$((SECONDS + 90))
  while [ -n "$(docker ps -aq --filter label=com.docker.stack.namespace)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "the stacks' containers are still there after 90s (docker ps -a)"
    sleep 1
  done
  if [ -n "$volumes" ]; then
    docker volume ls -q --filter label=com.docker.stack.namespace | xargs -r docker volume rm >/dev/null
    step "removed the data volumes"
  else
    step "kept the data volumes (./deploy.sh down --volumes removes them)"
  fi
}

cmd_logs() {
  local service=${1:?usage: ./deploy.sh logs SERVICE}
  require_docker
  if ! docker service inspect "$service" >/dev/null 2>&1; then
    local stack match=""
    for stack in "${STACKS[@]}"; do
      docker service inspect "${stack}_$service" >/dev/null 2>&1 && match="${stack}_$service"
    done
    [ -n "$match" ] || die "no service named '$service' (./deploy.sh status lists them)"
    service=$match
  fi
  docker service logs --tail 200 --timestamps "$service"
}

main() {
  local command=${1:-deploy}
  [ "$#" -eq 0 ] || shift
  case "$command" in
    deploy) [ "$#" -eq 0 ] || die "deploy takes no arguments (got: $*)"; cmd_deploy ;;
    status) [ "$#" -le 1 ] || die "status takes at most --all"; cmd_status "$@" ;;
    build) [ "$#" -eq 0 ] || die "build takes no arguments"; cmd_build ;;
    push) [ "$#" -eq 0 ] || die "push takes no arguments"; cmd_build push ;;
    down) [ "$#" -le 1 ] || die "down takes at most --volumes"; cmd_down "$@" ;;
    logs) [ "$#" -eq 1 ] || die "usage: ./deploy.sh logs SERVICE"; cmd_logs "$1" ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown command '$command'" ;;
  esac
}

main "$@"
