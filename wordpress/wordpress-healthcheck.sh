#!/usr/bin/env bash
# Docker HEALTHCHECK of the wordpress image: exit 0 when nginx answers
# GET /healthz with 200 (php-fpm's ping, no database: see nginx.conf), else 1.
# Also 0 during setup: the entrypoint is waiting for the database or for
# another replica's install, and a restart would only start the wait again
# (the setup gives up by itself after WORDPRESS_DB_WAIT_S).
set -euo pipefail

state=$(head -n1 /run/wordpress/state 2>/dev/null || echo unknown)
[[ $state == setup ]] && exit 0

# Plain HTTP over bash's /dev/tcp: no curl needed in the image.
exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 4 _ status _ <&3 || exit 1
[[ $status == 200 ]]
