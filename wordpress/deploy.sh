#!/usr/bin/env bash
# Deploys the wordpress stack alone (./deploy.sh deploys every stack in order;
# Traefik, in the app stack, publishes it).
set -euo pipefail
# shellcheck source=../lib/deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/deploy.sh"

case "${1:-}" in
  "") ;;
  -h|--help) echo "Usage: wordpress/deploy.sh — builds the MariaDB Galera, HAProxy and WordPress images and deploys the wordpress stack"; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac
prepare
deploy_wordpress
