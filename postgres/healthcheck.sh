#!/usr/bin/env bash
# Docker HEALTHCHECK: healthy when postgres accepts connections; also healthy
# while the entrypoint is deliberately waiting/cloning/rejoining (a restart
# would not help and would only restart the wait).
set -euo pipefail
state=$(head -n1 /run/pgha/state 2>/dev/null || echo unknown)
case $state in
waiting* | cloning | rejoining | initialising | starting*) exit 0 ;;
esac
exec /usr/lib/postgresql/15/bin/pg_isready -q -h /var/run/postgresql -p 5432
