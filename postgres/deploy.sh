#!/usr/bin/env bash
# Deploys the postgres stack alone (./deploy.sh deploys every stack in order).
set -euo pipefail
# shellcheck source=../lib/deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/deploy.sh"

case "${1:-}" in
  "") ;;
  -h|--help) echo "Usage: postgres/deploy.sh — builds the postgres image and deploys the postgres stack"; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac
prepare
deploy_postgres
