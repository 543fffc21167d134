#!/usr/bin/env bash
# Docker HEALTHCHECK for pgpool: the listener answers the PostgreSQL protocol.
# -U names a user that exists in pool_passwd, so pgpool does not log a
# "pool_passwd file does not contain an entry" FATAL at every probe.
set -euo pipefail
exec pg_isready -q -h 127.0.0.1 -p 5432 -t 3 -U "${REPMGR_USERNAME:-repmgr}" -d postgres
