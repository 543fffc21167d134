#!/usr/bin/env bash
# Entrypoint of the wordpress image (PID 2, under tini; runs as www-data).
#   1. validate the settings, reporting every problem before exiting (2);
#   2. setup (wordpress-setup.php): wait for the database, install the site
#      once under a database lock, or upgrade its tables; exit 1 if it fails;
#   3. run php-fpm, nginx and a WP-Cron loop, and supervise them: when any
#      one ends, stop the others and exit 1 so Swarm replaces the task.
# SIGTERM (docker stop, Swarm) stops nginx and php-fpm gracefully; exit 0.
#
# Settings (environment) are listed in /etc/wordpress/config-default.php and
# wordpress-setup.php; this script adds PHP_FPM_MAX_CHILDREN (default 8) and
# WP_CRON_INTERVAL_S (default 60).
set -euo pipefail

readonly SETUP=/usr/local/lib/swarmvote/wordpress-setup.php
readonly STATE=/run/wordpress/state
readonly FPM_SOCKET=/run/php/wordpress.sock
readonly KEY_NAMES=(AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT)
export PHP_FPM_MAX_CHILDREN=${PHP_FPM_MAX_CHILDREN:-8}
readonly CRON_INTERVAL_S=${WP_CRON_INTERVAL_S:-60}

log() { printf '%s wordpress-entrypoint %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

# Records the phase for the health check (see wordpress-healthcheck.sh).
set_state() { printf '%s\n' "${1:?missing state}" >"$STATE"; }

# Prints one problem per line about secret file $2 named by variable $1.
check_secret_file() {
  local var=${1:?missing variable} path=${2:?missing path}
  if [[ ! -r $path ]]; then
    echo "$var=$path is missing or unreadable (give the service that secret)"
  elif [[ ! -s $path ]]; then
    echo "$var=$path is empty"
  fi
}

# Prints one line per problem in the settings; prints nothing when all is well.
settings_problems() {
  local keys=${WORDPRESS_KEYS_FILE:-/run/secrets/wordpress_keys} name
  [[ ${WP_URL:-} =~ ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$ ]] ||
    echo "WP_URL must be the public URL, like https://wp.localhost:8443 (got '${WP_URL:-}')"
  check_secret_file WORDPRESS_DB_PASSWORD_FILE "${WORDPRESS_DB_PASSWORD_FILE:-/run/secrets/wordpress_db_password}"
  # Given only until the site is installed (setup says so if it is needed).
  [[ -z ${WP_ADMIN_PASSWORD_FILE:-} ]] || check_secret_file WP_ADMIN_PASSWORD_FILE "$WP_ADMIN_PASSWORD_FILE"
  check_secret_file WORDPRESS_KEYS_FILE "$keys"
  if [[ -r $keys ]]; then
    for name in "${KEY_NAMES[@]}"; do
      grep -Eq "^$name=.{32,}" "$keys" || echo "WORDPRESS_KEYS_FILE=$keys has no line $name=<at least 32 characters>"
    done
  fi
  # >= 4: php-fpm.conf keeps up to 3 spare workers
  [[ $PHP_FPM_MAX_CHILDREN =~ ^[1-9][0-9]*$ ]] && ((PHP_FPM_MAX_CHILDREN >= 4)) ||
    echo "PHP_FPM_MAX_CHILDREN must be a number >= 4 (got '$PHP_FPM_MAX_CHILDREN')"
  [[ $CRON_INTERVAL_S =~ ^[1-9][0-9]*$ ]] || echo "WP_CRON_INTERVAL_S must be a positive number of seconds"
}

# Exits 2 after logging every settings problem, if there is any.
validate() {
  local problems line
  problems=$(settings_problems)
  [[ -z $problems ]] && return 0
  while IFS= read -r line; do log "config error: $line"; done <<<"$problems"
  exit 2
}

# Runs due WP-Cron events every CRON_INTERVAL_S seconds (DISABLE_WP_CRON is
# set, see config-default.php). Replicas start at a random offset; WP-Cron's
# own lock keeps two replicas from running the same event at once.
cron_loop() {
  sleep $((RANDOM % CRON_INTERVAL_S))
  while :; do
    # Debian's wp-config.php needs a Host; CLI PHP reads it from the environment.
    HTTP_HOST=localhost php8.2 /usr/share/wordpress/wp-cron.php || log "wp-cron.php failed (exit $?)"
    sleep "$CRON_INTERVAL_S"
  done
}

# Waits up to 10 s for php-fpm's socket, so nginx's first requests find it.
wait_for_fpm_socket() {
  local _
  for _ in $(seq 50); do
    [[ -S $FPM_SOCKET ]] && return 0
    sleep 0.2
  done
  log "php-fpm's socket $FPM_SOCKET did not appear within 10 s"
}

declare -A NAMES=()

# SIGTERM/SIGINT: graceful stop of everything; exit 0.
on_term() {
  set_state stopping
  log "stopping (signal)"
  stop_children
  exit 0
}

# Stops every child still running and waits for them: QUIT is the graceful
# stop of nginx and php-fpm (requests in flight finish); TERM for the rest
# (background shells ignore QUIT).
stop_children() {
  local pid
  for pid in "${!NAMES[@]}"; do
    case ${NAMES[$pid]} in
      nginx | php-fpm) kill -QUIT "$pid" 2>/dev/null || true ;;
      *) kill -TERM "$pid" 2>/dev/null || true ;;
    esac
  done
  for pid in "${!NAMES[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# Runs the setup step; exits with its status when it fails. In the
# background, so that SIGTERM is handled while it waits for the database.
# A database connection lost part way (exit 3: a Galera node restarting in a
# rolling update) is tried again, SETUP_TRIES times in all, 5 s apart.
readonly SETUP_TRIES=5
setup() {
  local pid status try
  for try in $(seq 1 "$SETUP_TRIES"); do
    status=0
    php8.2 "$SETUP" &
    pid=$!
    NAMES[$pid]=setup
    wait "$pid" || status=$?
    unset "NAMES[$pid]"
    ((status == 0)) && return 0
    ((status == 3 && try < SETUP_TRIES)) || break
    log "setup lost its database connection (try $try of $SETUP_TRIES): trying again in 5 s"
    sleep 5
  done
  log "setup failed (exit $status)"
  exit "$status"
}

# Starts php-fpm, nginx and the cron loop; returns when the first one ends.
run() {
  rm -f "$FPM_SOCKET"
  php-fpm8.2 -F -y /etc/php/8.2/fpm/swarmvote-fpm.conf &
  NAMES[$!]=php-fpm
  wait_for_fpm_socket
  nginx -e stderr &
  NAMES[$!]=nginx
  cron_loop &
  NAMES[$!]=wp-cron-loop
  set_state running
  log "serving on :8080 (php-fpm, nginx, wp-cron every ${CRON_INTERVAL_S} s)"

  local ended status=0
  wait -n -p ended "${!NAMES[@]}" || status=$?
  log "${NAMES[$ended]:-a child} exited (status $status): stopping the others so the task is replaced"
  unset "NAMES[$ended]"
  set_state stopping
  stop_children
  exit 1
}

main() {
  trap on_term TERM INT
  validate
  set_state setup
  setup
  run
}

main "$@"
