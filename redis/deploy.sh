#!/usr/bin/env bash
# Deploys the redis stack alone (./deploy.sh deploys every stack in order).
set -euo pipefail
# shellcheck source=../lib/deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/deploy.sh"

case "${1:-}" in
  "") ;;
  -h|--help) echo "Usage: redis/deploy.sh — builds the redis image and deploys the redis stack"; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac
prepare
deploy_redis
