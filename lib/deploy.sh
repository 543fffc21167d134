#!/usr/bin/env bash
# Functions shared by ./deploy.sh and each stack folder's deploy.sh: checks,
# .env, secrets, networks, images, stacks, waiting. Sourced, not run.

# shellcheck disable=SC2034 # variables here are used by the scripts that source this file
SWARMVOTE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECRETS_DIR="$SWARMVOTE_ROOT/.secrets"
# The networks the stacks share (SECURITY.md, network plan), as NAME:internal
# or NAME:routed. web_net and stats_net are internal: every member has
# another network. The data tiers' networks are not: Docker's DNS gives no
# answer to a container whose networks are all internal when it asks for a
# name that is not there (moby/moby#43430), so each lookup of a dead node's
# name took 1 s, and the Sentinels, blocked by them, entered TILT and never
# replaced a killed primary (measured in the fault harness).
NETWORKS=(web_net:internal stats_net:internal redis:routed redis_repl:routed pg_net:routed pg_repl:routed wp_db:routed mariadb_galera-network:routed)
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-600}

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
step() { printf '    %s\n' "$*" >&2; }
# A progress line of a wait that began at $1 (SECONDS) for what $2 names:
# printed when that changes, else every 15 s, with the seconds so far.
waiting() {
  if [ "$2" != "${WAITING_FOR:-}" ] || [ $((SECONDS - ${WAITING_SINCE:-0})) -ge 15 ]; then
    step "waiting ($((SECONDS - $1))s) for: $2"
    WAITING_FOR=$2 WAITING_SINCE=$SECONDS
  fi
}
warn() { printf '\033[33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Fails clearly when Docker is missing, its daemon is down, or this node
# cannot manage a swarm; initialises a single-node swarm when there is none.
require_docker() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed: install Docker Engine (https://docs.docker.com/engine/install/)"
  docker info >/dev/null 2>&1 || die "the Docker daemon is not running or not reachable (try: systemctl start docker, or check your permissions on /var/run/docker.sock)"
  local state manager
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  manager=$(docker info --format '{{.Swarm.ControlAvailable}}')
  case "$state" in
    inactive)
      log "initialising a single-node swarm"
      docker swarm init >/dev/null 2>&1 || docker swarm init --advertise-addr 127.0.0.1 >/dev/null \
        || die "docker swarm init failed; on a host with several addresses run: docker swarm init --advertise-addr ADDRESS"
      ;;
    active)
      [ "$manager" = "true" ] || die "this node is a swarm worker: run deploy.sh on a manager node (docker node ls shows them)"
      ;;
    *) die "the swarm is in state '$state': wait, or fix it (docker info) and try again" ;;
  esac
}

# Reads .env (if any) into the environment without running it as shell code,
# then fills in the defaults. Every problem is listed before exiting.
load_env() {
  local file=${SWARMVOTE_ENV_FILE:-$SWARMVOTE_ROOT/.env} line key value n=0 problems=()
  local -A known=()
  while IFS= read -r line; do
    line=${line#\# }
    [[ "$line" =~ ^([A-Z][A-Z0-9_]*)= ]] && known[${BASH_REMATCH[1]}]=1
  done <"$SWARMVOTE_ROOT/.env.example"
  if [ -f "$file" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      n=$((n + 1))
      line=${line%$'\r'}
      [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
      if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
        problems+=("${file##*/} line $n: not NAME=value")
        continue
      fi
      key=${BASH_REMATCH[1]}
      value=${BASH_REMATCH[2]}
      if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
        value=${BASH_REMATCH[1]}
      fi
      if [ -z "${known[$key]:-}" ]; then
        problems+=("${file##*/} line $n: unknown variable $key (see .env.example for the list)")
        continue
      fi
      export "$key=$value"
    done <"$file"
  fi
  set_defaults
  # vote, worker and result images given here are deployed as they are.
  GIVEN_IMAGES=" "
  for key in VOTE_IMAGE WORKER_IMAGE RESULT_IMAGE; do
    [ -z "${!key:-}" ] || GIVEN_IMAGES+="$key "
  done
  validate_env problems
  if [ "${#problems[@]}" -gt 0 ]; then
    printf '\033[31merror:\033[0m .env has %d problem(s); nothing was changed:\n' "${#problems[@]}" >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
}

set_defaults() {
  : "${DOMAIN:=localhost}" "${VOTE_SUB:=vote}" "${RESULT_SUB:=result}" "${HAPROXY_SUB:=haproxy}" "${WP_SUB:=wp}"
  : "${HTTP_PORT:=80}" "${HTTPS_PORT:=443}"
  : "${REPOSITORY_NAME:=swarmvote}" "${REGISTRY:=}"
  : "${OPTION_A:=Cats}" "${OPTION_B:=Dogs}"
  : "${POSTGRESQL_USERNAME:=votes}" "${POSTGRESQL_DATABASE:=votes}"
  : "${REPMGR_USERNAME:=repmgr}" "${PGPOOL_ADMIN_USERNAME:=admin}"
  : "${MARIADB_DATABASE:=wordpress}" "${MARIADB_USER:=wordpress}"
  : "${WP_TITLE:=swarmvote}" "${WP_ADMIN_USER:=admin}" "${WP_ADMIN_EMAIL:=admin@$WP_SUB.$DOMAIN}"
  export DOMAIN VOTE_SUB RESULT_SUB HAPROXY_SUB WP_SUB HTTP_PORT HTTPS_PORT REPOSITORY_NAME REGISTRY
  export OPTION_A OPTION_B POSTGRESQL_USERNAME POSTGRESQL_DATABASE REPMGR_USERNAME PGPOOL_ADMIN_USERNAME
  export MARIADB_DATABASE MARIADB_USER WP_TITLE WP_ADMIN_USER WP_ADMIN_EMAIL
}

# Appends to the array named $1 every problem found in the settings.
validate_env() {
  local -n out=${1:?missing array name}
  local hostname='^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
  local label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
  [[ "$DOMAIN" =~ $hostname ]] && [ "${#DOMAIN}" -le 253 ] || out+=("DOMAIN: '$DOMAIN' is not a host name (lowercase letters, digits, dots, hyphens)")
  local v
  for v in DOMAIN VOTE_SUB RESULT_SUB HAPROXY_SUB WP_SUB; do
    # An empty value would silently become the default: say so instead.
    if grep -qE "^[[:space:]]*$v=[\"']{0,2}[[:space:]]*$" "${SWARMVOTE_ENV_FILE:-$SWARMVOTE_ROOT/.env}" 2>/dev/null; then
      out+=("$v is set but empty: give a value, or remove the line to use the default")
    fi
  done
  for v in VOTE_SUB RESULT_SUB HAPROXY_SUB WP_SUB; do
    [[ "${!v}" =~ $label ]] || out+=("$v: '${!v}' is not a DNS label (lowercase letters, digits, hyphens)")
  done
  for v in HTTP_PORT HTTPS_PORT; do
    [[ "${!v}" =~ ^[0-9]{1,5}$ ]] && [ "${!v}" -ge 1 ] && [ "${!v}" -le 65535 ] || out+=("$v: '${!v}' is not a port number (1-65535)")
  done
  [ "$HTTP_PORT" != "$HTTPS_PORT" ] || out+=("HTTP_PORT and HTTPS_PORT must differ")
  [[ "$REPOSITORY_NAME" =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] || out+=("REPOSITORY_NAME: '$REPOSITORY_NAME' is not a valid image repository name")
  [[ -z "$REGISTRY" || "$REGISTRY" =~ ^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._-]+)*$ ]] || out+=("REGISTRY: '$REGISTRY' is not a registry address (host[:port][/path])")
  # [host[:port]/]path[:tag][@sha256:digest], as Docker reads a reference.
  local reference='^([A-Za-z0-9.-]+(:[0-9]{1,5})?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$'
  local ref
  for v in VOTE_IMAGE WORKER_IMAGE RESULT_IMAGE; do
    ref=${!v:-}
    if [ -n "$ref" ] && { [[ ! "$ref" =~ $reference ]] || [ "${#ref}" -gt 255 ]; }; then
      out+=("$v: '${!v:0:80}' is not an image reference ([registry/]name[:tag][@sha256:digest])")
    fi
  done
  [ "$POSTGRESQL_USERNAME" != postgres ] || out+=("POSTGRESQL_USERNAME must not be postgres: the services use their own, unprivileged user")
  [[ "$POSTGRESQL_USERNAME" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || out+=("POSTGRESQL_USERNAME: '$POSTGRESQL_USERNAME' is not a plain identifier (lowercase letters, digits, _)")
  for v in REPMGR_USERNAME PGPOOL_ADMIN_USERNAME; do
    [[ "${!v}" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || out+=("$v: '${!v}' is not a plain identifier (lowercase letters, digits, _)")
  done
  [ "$REPMGR_USERNAME" != "$POSTGRESQL_USERNAME" ] && [ "$REPMGR_USERNAME" != postgres ] \
    || out+=("REPMGR_USERNAME must differ from POSTGRESQL_USERNAME and postgres")
  [[ "$POSTGRESQL_DATABASE" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || out+=("POSTGRESQL_DATABASE: '$POSTGRESQL_DATABASE' is not a plain identifier (lowercase letters, digits, _)")
  for v in MARIADB_DATABASE MARIADB_USER; do
    [[ "${!v}" =~ ^[a-z_][a-z0-9_]{0,31}$ ]] || out+=("$v: '${!v}' is not a plain identifier (lowercase letters, digits, _; at most 32)")
  done
  [[ "$MARIADB_USER" != root && "$MARIADB_USER" != mariabackup ]] || out+=("MARIADB_USER must not be root or mariabackup: WordPress uses its own, unprivileged user")
  [ -n "$WP_TITLE" ] && [ "$(printf '%s' "$WP_TITLE" | wc -m)" -le 100 ] || out+=("WP_TITLE: 1 to 100 characters")
  [[ "$WP_ADMIN_USER" =~ ^[A-Za-z0-9._-]{1,60}$ ]] || out+=("WP_ADMIN_USER: '$WP_ADMIN_USER' is not a user name (letters, digits, . _ -; at most 60)")
  [[ "$WP_ADMIN_EMAIL" =~ ^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$ ]] || out+=("WP_ADMIN_EMAIL: '$WP_ADMIN_EMAIL' is not an e-mail address")
  [ -z "${WP_ADMIN_PASSWORD:-}" ] || [ "${#WP_ADMIN_PASSWORD}" -ge 12 ] || out+=("WP_ADMIN_PASSWORD: at least 12 characters")
  for v in OPTION_A OPTION_B; do
    [ -n "${!v}" ] || out+=("$v must not be empty")
    [ "$(printf '%s' "${!v}" | wc -m)" -le 64 ] || out+=("$v: at most 64 characters")
  done
  [ "$OPTION_A" != "$OPTION_B" ] || out+=("OPTION_A and OPTION_B must differ")
  for v in $(compgen -v | grep -E '_PASSWORD$|_PASS$' || true); do
    if [ -n "${!v+set}" ] && [ -z "${!v}" ] && grep -qE "^$v=" "${SWARMVOTE_ENV_FILE:-$SWARMVOTE_ROOT/.env}" 2>/dev/null; then
      out+=("$v is set but empty: remove the line to have a strong one generated, or give a value")
    fi
  done
  [[ "${HAPROXY_AUTH_USER:-admin}" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || out+=("HAPROXY_AUTH_USER: '${HAPROXY_AUTH_USER:-}' is not a user name (letters, digits, . _ -)")
  if [ -n "${HAPROXY_AUTH_PASS:-}" ] && [[ ! "$HAPROXY_AUTH_PASS" =~ ^(\$apr1\$|\$2[aby]\$|\{SHA\}) ]]; then
    out+=("HAPROXY_AUTH_PASS must be a password hash (htpasswd -nB USER), not a plain password")
  fi
  local source octets='(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])' sources=()
  IFS=, read -ra sources <<<"${TRUSTED_SOURCES:-}"
  for source in "${sources[@]}"; do
    source=${source// /}
    [ -n "$source" ] || continue
    [[ "$source" =~ ^($octets\.){3}$octets(/([0-9]|[12][0-9]|3[0-2]))?$ \
      || "$source" =~ ^[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}(/([0-9]{1,2}|1[01][0-9]|12[0-8]))?$ ]] \
      || out+=("TRUSTED_SOURCES: '$source' is not an IP address or CIDR range (e.g. 127.0.0.1,10.0.0.0/8)")
  done
  for v in $(compgen -v | grep -E '_PASSWORD$' || true); do
    [[ ! "${!v:-}" =~ [[:space:]\"\'\`\\] ]] \
      || out+=("$v contains a space, a quote or a backslash: the databases' tools would take it apart; use letters, digits and other punctuation")
  done
  if [ -n "${ACME_EMAIL:-}" ]; then
    [[ "$ACME_EMAIL" =~ ^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$ ]] || out+=("ACME_EMAIL: '$ACME_EMAIL' is not an e-mail address")
    [[ "$DOMAIN" == *.* && "$DOMAIN" != *.localhost ]] || out+=("ACME_EMAIL is set but DOMAIN '$DOMAIN' is not a public domain: Let's Encrypt cannot certify it (remove ACME_EMAIL to use the local CA)")
  fi
  if [ "$DOMAIN" != "localhost" ]; then
    local sample
    for v in $(compgen -v | grep -E '_PASSWORD$' || true); do
      for sample in password changeme secret admin postgres repmgr pgpool redis mariadb wordpress 123456; do
        [ "${!v:-}" != "$sample" ] || out+=("$v is a sample password ('$sample') on the real domain $DOMAIN: choose a strong one or remove it to have one generated")
      done
    done
  fi
}

# Prints the secret $1 from .env or from .secrets/ (generated once, 0600).
secret_value() {
  local name=${1:?missing secret name} file
  if [ -n "${!name:-}" ]; then
    printf '%s' "${!name}"
    return
  fi
  file="$SECRETS_DIR/$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')"
  if [ ! -s "$file" ]; then
    (umask 077 && mkdir -p "$SECRETS_DIR" && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$file")
  fi
  cat "$file"
}

# Creates Docker secret for variable $1 named after its content's hash, so a
# changed value gets a new secret and an unchanged one is reused; exports
# ${1}_SECRET with the name for the stack files.
ensure_secret() {
  local name=${1:?missing secret name} value hash secret
  value=$(secret_value "$name")
  hash=$(printf '%s' "$value" | sha256sum | cut -c1-12)
  secret="swarmvote_$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')_$hash"
  if ! docker secret inspect "$secret" >/dev/null 2>&1; then
    printf '%s' "$value" | docker secret create "$secret" - >/dev/null
    step "created secret $secret"
  fi
  export "${name}_SECRET=$secret"
}

# Creates the overlay networks the stacks share, internal or not as
# NETWORKS says, and exports the subnets of those a proxy listens on for its
# clients (listen-address): REDIS_SUBNET, PG_REPL_SUBNET, WP_DB_SUBNET. A
# network made otherwise by another version is made again while nothing
# uses it; otherwise the operator is told how.
ensure_networks() {
  local entry net kind want have var flags
  for entry in "${NETWORKS[@]}"; do
    net=${entry%%:*} kind=${entry#*:}
    want=false flags=()
    [ "$kind" = internal ] && want=true flags=(--internal)
    if have=$(docker network inspect --format '{{.Internal}}' "$net" 2>/dev/null); then
      [ "$have" = "$want" ] && continue
      docker network rm "$net" >/dev/null 2>&1 ||
        die "network $net was made by another version ($kind: $want, made: $have), and services still use it: run ./deploy.sh down (volumes are kept), then ./deploy.sh"
      step "removed network $net, made by another version (internal: $have)"
    fi
    docker network create --driver overlay "${flags[@]}" --attachable "$net" >/dev/null
    step "created network $net ($kind)"
  done
  for net in redis pg_repl wp_db; do
    var="$(printf '%s' "$net" | tr '[:lower:]' '[:upper:]')_SUBNET"
    export "$var=$(docker network inspect --format '{{(index .IPAM.Config 0).Subnet}}' "$net")"
  done
}

# While the build with process $1 writes its log $2: each Dockerfile step
# that takes more than 2 s (cached ones pass quicker and are not shown),
# and every 30 s within a long step the time so far and the last thing it
# did (a crate compiled, a package set up). Printed as lines, not redrawn:
# a log of the deployment reads the same.
build_progress() {
  local pid=$1 log=$2 started=$SECONDS current pending="" since=$SECONDS shown="" tick=$SECONDS last
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    current=$(grep -a '^Step [0-9]*/[0-9]* : ' "$log" 2>/dev/null | tail -n 1 | cut -c1-100) || true
    [ -n "$current" ] || continue
    if [ "$current" != "$pending" ]; then
      pending=$current since=$SECONDS
    elif [ "$pending" != "$shown" ] && [ $((SECONDS - since)) -ge 2 ]; then
      step "  ${pending/ : /: } ($((SECONDS - started))s)"
      shown=$pending tick=$SECONDS
    elif [ "$pending" = "$shown" ] && [ $((SECONDS - tick)) -ge 30 ]; then
      last=$(grep -aoE '^ *(Compiling|Downloaded|Setting up|Unpacking) [^ ]+( v?[0-9][^ ]*)?' "$log" 2>/dev/null | tail -n 1) || true
      step "  ${shown%% : *} still running ($((SECONDS - started))s)${last:+, last: ${last#"${last%%[! ]*}"}}"
      tick=$SECONDS
    fi
  done
}

# Builds image $1 (a short name) from Dockerfile $2 with context $3, tags it
# ${REPOSITORY_NAME}/$1:<content id> and exports ${1^^}_IMAGE with that name.
# The build's output goes to .build-$1.log (kept when it fails), and its
# progress to the terminal (build_progress).
build_image() {
  local name=${1:?missing image name} dockerfile=${2:?missing Dockerfile} context=${3:?missing context} id var tag pid
  local log="$SWARMVOTE_ROOT/.build-$name.log" iid="$SWARMVOTE_ROOT/.build-$name.iid"
  shift 3
  step "building $name"
  rm -f "$iid"
  DOCKER_BUILDKIT=0 docker build --iidfile "$iid" -f "$dockerfile" "$@" "$context" >"$log" 2>&1 &
  pid=$!
  build_progress "$pid" "$log"
  if ! wait "$pid" || ! id=$(cat "$iid" 2>/dev/null) || [ -z "$id" ]; then
    tail -n 30 "$log" >&2
    rm -f "$iid"
    die "building $name failed (full log: .build-$name.log)"
  fi
  rm -f "$log" "$iid"
  tag="$REPOSITORY_NAME/$name:${id#sha256:}"
  tag=${tag:0:${#REPOSITORY_NAME}+${#name}+14}
  docker tag "$id" "$tag"
  docker tag "$id" "$REPOSITORY_NAME/$name:latest"
  if [ -n "$REGISTRY" ] && [ -z "${NO_PUSH:-}" ]; then
    docker tag "$id" "$REGISTRY/$tag"
    docker push -q "$REGISTRY/$tag" >/dev/null || die "pushing $REGISTRY/$tag failed"
    tag="$REGISTRY/$tag"
    step "  pushed $tag"
  fi
  var="$(printf '%s' "$name" | tr '[:lower:]-' '[:upper:]_')_IMAGE"
  export "$var=$tag"
}

# The base image everything is built from.
ensure_base_image() {
  "$SWARMVOTE_ROOT/images/debian-base.sh"
}

# Deploys stack $1 from the compose files that follow; the engine updates
# only what changed.
deploy_stack() {
  local stack=${1:?missing stack} file args=()
  shift
  for file in "$@"; do args+=(-c "$file"); done
  step "deploying stack $stack"
  docker stack deploy --detach=true --prune --resolve-image never "${args[@]}" "$stack" >/dev/null
}

# The app stack's compose files: with ACME_EMAIL, Let's Encrypt's too.
app_compose_files() {
  printf '%s\n' "$SWARMVOTE_ROOT/docker-compose.yml"
  [ -z "${ACME_EMAIL:-}" ] || printf '%s\n' "$SWARMVOTE_ROOT/traefik/acme.yml"
  [ -z "${TRUSTED_SOURCES:-}" ] || printf '%s\n' "$SWARMVOTE_ROOT/traefik/trusted.yml"
}

# Traefik's rule for TRUSTED_SOURCES (a, b/24 → (ClientIP(`a`) || ClientIP(`b/24`))),
# exported as TRUSTED_RULE for traefik/trusted.yml. Clients on this host
# (127.0.0.1) reach Traefik's host-mode ports through Docker's userland
# proxy, so Traefik sees them as the docker_gwbridge network's gateway: a
# loopback source trusts that address too.
export_trusted_rule() {
  local source rule="" sources=() gateway
  IFS=, read -ra sources <<<"${TRUSTED_SOURCES// /}"
  for source in "${sources[@]}"; do
    [ -n "$source" ] || continue
    rule+="${rule:+ || }ClientIP(\`$source\`)"
    case "$source" in
      127.* | ::1 | ::1/*)
        gateway=$(docker network inspect docker_gwbridge --format '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null || true)
        [ -z "$gateway" ] || rule+=" || ClientIP(\`$gateway\`)"
        ;;
    esac
  done
  export TRUSTED_RULE="($rule)"
}

# Waits until every service of stack $1 runs its replicas and each running
# task's container is healthy; on timeout shows the failing service's logs.
# A service whose update Swarm rolled back (its new tasks failed) is an
# error, not "healthy": the old version still runs.
wait_stack() {
  local stack=${1:?missing stack} deadline pending svc started=$SECONDS since rolled
  since=$(date -u +%FT%T)
  deadline=$((SECONDS + DEPLOY_TIMEOUT))
  while :; do
    pending=$(unhealthy_services "$stack")
    if [ -z "$pending" ]; then
      rolled=$(rolled_back_services "$stack" "$since")
      [ -z "$rolled" ] || die "Swarm rolled back the update of $rolled: the new tasks failed their health check. The old version still runs; see ./deploy.sh logs SERVICE, and docker service ps --no-trunc SERVICE"
      step "stack $stack is healthy"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      for svc in $pending; do
        printf '\n--- %s: tasks ---\n' "$svc" >&2
        docker service ps --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' "$svc" | head -n 5 >&2
        printf -- '--- %s: last log lines ---\n' "$svc" >&2
        docker service logs --tail 20 --no-task-ids "$svc" 2>&1 | tail -n 20 >&2
      done
      die "stack $stack not healthy after ${DEPLOY_TIMEOUT}s: $pending (see above; ./deploy.sh logs SERVICE for more)"
    fi
    waiting "$started" "$pending"
    sleep 3
  done
}

# Prints the services of stack $1 whose update was rolled back after time
# $2 (UTC, 2006-01-02T15:04:05).
rolled_back_services() {
  local stack=${1:?missing stack} since=${2:?missing time} name state at
  for name in $(docker stack services --format '{{.Name}}' "$stack" 2>/dev/null); do
    state="" at=""
    read -r state at < <(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.CompletedAt.UTC.Format "2006-01-02T15:04:05"}}{{end}}' "$name" 2>/dev/null) || true
    [[ "${state:-}" == rollback_* && "${at:-}" > "$since" ]] && printf '%s ' "$name"
  done
  return 0
}

# Prints the services of stack $1 that do not yet run all their replicas.
# A task with a health check counts as running only once it is healthy.
unhealthy_services() {
  local stack=${1:?missing stack} name replicas running desired
  docker stack services --format '{{.Name}} {{.Replicas}}' "$stack" 2>/dev/null | while read -r name replicas _; do
    running=${replicas%%/*}
    desired=${replicas#*/}
    # An update in progress still counts the old tasks as running.
    if [ "$running" -lt "$desired" ] \
      || [[ "$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$name" 2>/dev/null)" =~ ^(updating|rollback_started)$ ]]; then
      printf '%s ' "$name"
    fi
  done
}

# Makes (once) a local CA and a certificate signed by it, in .secrets/tls, for
# DOMAIN, *.DOMAIN and each service's host name (clients do not accept a
# wildcard right under a one-label name such as localhost); a new certificate
# when the names change. Exports TLS_CERT_SECRET and TLS_KEY_SECRET.
ensure_tls() {
  local dir="$SECRETS_DIR/tls" names sub
  # Each name, no wildcard: rustls (the load generator's TLS) refuses a
  # wildcard name under a CA's name constraints (MalformedDnsIdentifier).
  names="DNS:$DOMAIN"
  for sub in "$VOTE_SUB" "$RESULT_SUB" "$HAPROXY_SUB" "$WP_SUB"; do
    names="$names,DNS:$sub.$DOMAIN"
  done
  command -v openssl >/dev/null 2>&1 || die "openssl is needed to make the local certificate (apt-get install openssl)"
  (umask 077 && mkdir -p "$dir")
  # The CA can certify DOMAIN and its subdomains only (name constraints),
  # so trusting it in a browser trusts nothing else. One made before the
  # constraints, or for another DOMAIN, is replaced (browsers must trust
  # the new ca.crt).
  if [ ! -s "$dir/ca.crt" ] || [ "$(cat "$dir/ca.domain" 2>/dev/null)" != "$DOMAIN" ]; then
    [ ! -s "$dir/ca.crt" ] || warn "the local CA was not limited to $DOMAIN: making a new one; trust the new .secrets/tls/ca.crt in your browser"
    step "creating a local certificate authority for $DOMAIN only (.secrets/tls/ca.crt)"
    openssl req -x509 -new -newkey rsa:3072 -nodes -sha256 -days 3650 \
      -subj "/CN=swarmvote local CA for $DOMAIN" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "nameConstraints=critical,permitted;DNS:$DOMAIN" 2>/dev/null \
      || die "making the local CA failed (openssl req)"
    printf '%s' "$DOMAIN" >"$dir/ca.domain"
    rm -f "$dir/names"
  fi
  if [ "$(cat "$dir/names" 2>/dev/null)" != "$names" ] || [ ! -s "$dir/cert.pem" ]; then
    # The CA's key is needed only here; an operator may keep it offline.
    [ -s "$dir/ca.key" ] || die "the certificate must be made anew (new names), but the CA's key .secrets/tls/ca.key is not here: put it back, or remove .secrets/tls to make a new CA"
    step "creating a certificate for $DOMAIN and its subdomains"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=$DOMAIN" \
      -keyout "$dir/key.pem" -out "$dir/cert.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$names" >"$dir/ext.cnf"
    openssl x509 -req -sha256 -days 825 -in "$dir/cert.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
      -CAcreateserial -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
    chmod 0600 "$dir/key.pem" "$dir/cert.pem"
    printf '%s' "$names" >"$dir/names"
  fi
  ensure_file_secret TLS_CERT "$dir/cert.pem"
  ensure_file_secret TLS_KEY "$dir/key.pem"
}

# Like ensure_secret, for a value held in file $2.
ensure_file_secret() {
  local name=${1:?missing name} file=${2:?missing file} hash secret
  hash=$(sha256sum "$file" | cut -c1-12)
  secret="swarmvote_$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')_$hash"
  if ! docker secret inspect "$secret" >/dev/null 2>&1; then
    docker secret create "$secret" "$file" >/dev/null
    step "created secret $secret"
  fi
  export "${name}_SECRET=$secret"
}

# Exports HAPROXY_BASICAUTH ("user:hash") for the stats pages' basic auth:
# HAPROXY_AUTH_USER (default admin) and HAPROXY_AUTH_PASS, a password hash;
# without one, a password is generated once into .secrets/haproxy_auth_password
# and its hash kept beside it, so the label (and the service) stays the same
# from one run to the next.
ensure_stats_auth() {
  local user=${HAPROXY_AUTH_USER:-admin} hash=${HAPROXY_AUTH_PASS:-} file="$SECRETS_DIR/haproxy_auth_pass_hash"
  if [ -z "$hash" ]; then
    if [ ! -s "$file" ]; then
      command -v openssl >/dev/null 2>&1 || die "openssl is needed to hash the stats pages' password (apt-get install openssl)"
      (umask 077 && secret_value HAPROXY_AUTH_PASSWORD | openssl passwd -apr1 -stdin >"$file")
    fi
    hash=$(cat "$file")
  fi
  export HAPROXY_BASICAUTH="$user:$hash"
}

# --- The stacks, each deployable alone (its folder's deploy.sh) -----------

# The images of each stack (build_image: tagged, and pushed to REGISTRY
# when one is set).
build_postgres_images() {
  build_rust
  build_image postgres "$SWARMVOTE_ROOT/postgres/Dockerfile" "$SWARMVOTE_ROOT/postgres" --build-arg "BUILD_IMAGE=$BUILD_IMAGE"
  build_image pgpool "$SWARMVOTE_ROOT/postgres/pgpool.Dockerfile" "$SWARMVOTE_ROOT/postgres" --build-arg "BUILD_IMAGE=$BUILD_IMAGE"
  build_image pg-haproxy "$SWARMVOTE_ROOT/postgres/haproxy.Dockerfile" "$SWARMVOTE_ROOT"
}
build_redis_images() {
  build_rust
  build_image redis "$SWARMVOTE_ROOT/redis/Dockerfile" "$SWARMVOTE_ROOT" --build-arg "BUILD_IMAGE=$BUILD_IMAGE"
}
build_wordpress_images() {
  # the mariadb image carries pgha (the Galera bootstrap election)
  build_rust
  build_image mariadb "$SWARMVOTE_ROOT/wordpress/mariadb.Dockerfile" "$SWARMVOTE_ROOT/wordpress" --build-arg "BUILD_IMAGE=$BUILD_IMAGE"
  build_image mariadb-haproxy "$SWARMVOTE_ROOT/wordpress/haproxy.Dockerfile" "$SWARMVOTE_ROOT"
  build_image wordpress "$SWARMVOTE_ROOT/wordpress/wordpress.Dockerfile" "$SWARMVOTE_ROOT/wordpress"
}
# With "given": vote, worker and result images named in .env (VOTE_IMAGE,
# ...) are used as they are, not built.
build_app_images() {
  local svc var
  for svc in vote worker result; do
    var="$(printf '%s' "$svc" | tr '[:lower:]' '[:upper:]')_IMAGE"
    if [ "${1:-}" = given ] && [[ $GIVEN_IMAGES == *" $var "* ]]; then
      given_image "$svc" "$var"
    else
      build_rust
      build_image "$svc" "$SWARMVOTE_ROOT/$svc/Dockerfile" "$SWARMVOTE_ROOT/$svc" --build-arg "BUILD_IMAGE=$BUILD_IMAGE"
    fi
  done
  build_image traefik "$SWARMVOTE_ROOT/traefik/Dockerfile" "$SWARMVOTE_ROOT/traefik"
  build_image socket-proxy "$SWARMVOTE_ROOT/socket-proxy/Dockerfile" "$SWARMVOTE_ROOT/socket-proxy"
}

# Uses the image that .env's variable $2 names for service $1 (checked by
# check_given_images).
given_image() { step "$1: ${!2} (given in $2, not built)"; }

# The images given in .env must be here, or pullable (each node of a swarm
# pulls them for itself): checked before anything is deployed.
check_given_images() {
  local var
  for var in $GIVEN_IMAGES; do
    docker image inspect "${!var}" >/dev/null 2>&1 || docker pull -q "${!var}" >/dev/null 2>&1 ||
      die "$var=${!var}: this engine has no such image and cannot pull it (push it first: ./deploy.sh push with REGISTRY set, or unset $var to build it)"
  done
}

deploy_postgres() {
  log "postgres stack"
  local name
  for name in POSTGRESQL_PASSWORD POSTGRESQL_POSTGRES_PASSWORD REPMGR_PASSWORD PGPOOL_ADMIN_PASSWORD POSTGRESQL_RESULT_PASSWORD; do
    ensure_secret "$name"
  done
  ensure_stats_auth
  build_postgres_images
  deploy_stack postgres "$SWARMVOTE_ROOT/postgres/docker-compose.yml"
  wait_stack postgres
  wait_pg_primary
}

# Waits until Pgpool-II (db) reaches a primary that takes writes: a node's
# container is healthy while it deliberately waits for a primary, so healthy
# containers alone do not mean the database works.
wait_pg_primary() {
  local deadline=$((SECONDS + DEPLOY_TIMEOUT)) started=$SECONDS id why
  while :; do
    id=$(docker ps -q --filter "label=com.docker.swarm.service.name=postgres_pg-1" | head -n 1)
    # A write (a temporary table) succeeds only on a primary.
    if [ -n "$id" ] && docker exec -u postgres "$id" timeout 5 psql -X -q -h db -U "${REPMGR_USERNAME:-repmgr}" -d postgres \
      -c 'CREATE TEMPORARY TABLE deploy_probe (x int)' >/dev/null 2>&1; then
      step "PostgreSQL takes writes through db"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      why=$(docker logs "$id" 2>&1 | grep 'pgha\[' | tail -n 1)
      die "PostgreSQL does not take writes through db after ${DEPLOY_TIMEOUT}s (pg-1 says: ${why:-nothing}); see ./deploy.sh status and ./deploy.sh logs pg-1"
    fi
    waiting "$started" "PostgreSQL to take writes through db"
    sleep 2
  done
}

deploy_redis() {
  log "redis stack"
  local name
  # The default user's (operators, the stack's own scripts), then one per
  # Redis user (redis/redis.conf).
  for name in REDIS_PASSWORD REDIS_REPLICA_PASSWORD REDIS_SENTINEL_PASSWORD REDIS_MONITOR_PASSWORD REDIS_VOTE_PASSWORD REDIS_WORKER_PASSWORD; do
    ensure_secret "$name"
  done
  ensure_stats_auth
  build_redis_images
  deploy_stack redis "$SWARMVOTE_ROOT/redis/docker-compose.yml"
  wait_stack redis
}

deploy_wordpress() {
  log "wordpress stack"
  local name https=""
  for name in MARIADB_ROOT_PASSWORD MARIADB_PASSWORD MARIADB_MARIABACKUP_PASSWORD WP_ADMIN_PASSWORD; do
    ensure_secret "$name"
  done
  ensure_wordpress_keys
  ensure_stats_auth
  [ "$HTTPS_PORT" = 443 ] || https=":$HTTPS_PORT"
  export WP_URL="https://$WP_SUB.$DOMAIN$https"
  build_wordpress_images
  # The admin password is mounted only until the site is installed
  # (wordpress/install.yml): afterwards nothing in the stack holds it.
  if wordpress_installed; then
    deploy_stack wordpress "$SWARMVOTE_ROOT/wordpress/docker-compose.yml"
    wait_stack wordpress
    wait_galera
  else
    deploy_stack wordpress "$SWARMVOTE_ROOT/wordpress/docker-compose.yml" "$SWARMVOTE_ROOT/wordpress/install.yml"
    wait_stack wordpress
    wait_galera
    # A healthy WordPress task has run its setup, which installs the site.
    wordpress_installed || die "WordPress is healthy but its install is not recorded as finished (./deploy.sh logs wordpress)"
    deploy_stack wordpress "$SWARMVOTE_ROOT/wordpress/docker-compose.yml"
    wait_admin_password_gone
    step "the site is installed: the WordPress admin password is no longer mounted"
  fi
  wait_route "$WP_SUB.$DOMAIN"
}

# Whether the WordPress site's install is recorded as finished, asked on a
# Galera node that runs (as the OS user mysql, over the node's own socket).
wordpress_installed() {
  local n id state table="${WORDPRESS_TABLE_PREFIX:-wp_}swarmvote_install"
  for n in 1 2 3; do
    id=$(docker ps -q --filter "label=com.docker.swarm.service.name=wordpress_mariadb-$n" | head -n 1)
    [ -n "$id" ] || continue
    state=$(docker exec -u mysql "$id" mariadb --no-defaults --protocol=socket --socket=/run/mysqld/mysqld.sock -u mysql \
      --connect-timeout=3 -N -B -e "SELECT state FROM \`$MARIADB_DATABASE\`.\`$table\` WHERE id = 1" 2>/dev/null) || continue
    [ "$state" = finished ]
    return
  done
  return 1
}

# Waits until no running WordPress container holds the admin password
# (Swarm replaces them one at a time, each new one healthy before an old one
# stops), then until the stack is healthy.
wait_admin_password_gone() {
  local deadline=$((SECONDS + DEPLOY_TIMEOUT)) started=$SECONDS id holding
  while :; do
    holding=""
    for id in $(docker ps -q --filter label=com.docker.swarm.service.name=wordpress_wordpress); do
      docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id" 2>/dev/null | grep -q '^WP_ADMIN_PASSWORD_FILE=' && holding+=" $id"
    done
    [ -n "$holding" ] || break
    [ "$SECONDS" -lt "$deadline" ] || die "WordPress containers still hold the admin password after ${DEPLOY_TIMEOUT}s:$holding (docker service ps wordpress_wordpress)"
    waiting "$started" "WordPress to run without the admin password"
    sleep 3
  done
  wait_stack wordpress
}

# Prints the answer (status line, headers, body) of GET $2 on Galera node
# mariadb-$1's :9200 endpoint, asked inside its container; fails when it
# does not run.
# Whether Galera node $1 is Synced in the Primary component. Read from
# /state: /health also passes a node donating its state (it may take
# queries, but it is not Synced).
galera_synced() {
  local st
  st=$(galera_http "$1" /state) && grep -qx 'local_state=4' <<<"$st" && grep -qx 'primary=1' <<<"$st"
}
galera_http() {
  local id
  id=$(docker ps -q --filter "label=com.docker.swarm.service.name=wordpress_mariadb-$1" | head -n 1)
  [ -n "$id" ] || return 1
  docker exec "$id" bash -c "exec 3<>/dev/tcp/127.0.0.1/9200 && printf 'GET $2 HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null | tr -d '\r'
}

# Waits until every Galera node is Synced in the Primary component (a node's
# container is healthy while it waits for its partners or copies their state).
wait_galera() {
  local deadline=$((SECONDS + DEPLOY_TIMEOUT)) n pending started=$SECONDS
  while :; do
    pending=""
    for n in 1 2 3; do
      galera_synced "$n" || pending+="mariadb-$n "
    done
    [ -z "$pending" ] && { step "the Galera cluster is whole (3 nodes Synced)"; return 0; }
    [ "$SECONDS" -lt "$deadline" ] || die "Galera nodes not Synced after ${DEPLOY_TIMEOUT}s: $pending(./deploy.sh status; ./deploy.sh logs mariadb-1)"
    waiting "$started" "Galera nodes to be Synced: $pending"
    sleep 3
  done
}

# WordPress's keys and salts, made once into .secrets/wordpress_keys (one
# NAME=value line each), so that every replica signs cookies alike.
ensure_wordpress_keys() {
  local file="$SECRETS_DIR/wordpress_keys" key
  if [ ! -s "$file" ]; then
    (umask 077 && mkdir -p "$SECRETS_DIR" && for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY \
        AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
      printf '%s=%s\n' "$key" "$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
    done >"$file")
  fi
  ensure_file_secret WORDPRESS_KEYS "$file"
}

# Compiles our Rust binaries into the build image (BUILD_IMAGE), once per run.
build_rust() {
  [ -z "${RUST_BUILT:-}" ] || return 0
  step "compiling the Rust binaries (the first build takes several minutes)"
  # Only this node needs the compiler image: it is not pushed.
  NO_PUSH=1 build_image build "$SWARMVOTE_ROOT/build.Dockerfile" "$SWARMVOTE_ROOT"
  RUST_BUILT=1
}

deploy_app() {
  log "app stack"
  ensure_secret REDIS_VOTE_PASSWORD
  ensure_secret REDIS_WORKER_PASSWORD
  ensure_secret POSTGRESQL_PASSWORD
  ensure_secret POSTGRESQL_RESULT_PASSWORD
  ensure_secret VOTE_COOKIE_KEY
  ensure_tls
  TRAEFIK_DYNAMIC_HASH=$(sha256sum "$SWARMVOTE_ROOT/traefik/dynamic.yml" | cut -c1-12)
  export TRAEFIK_DYNAMIC_HASH
  export_trusted_rule
  build_app_images given
  local files
  mapfile -t files < <(app_compose_files)
  deploy_stack app "${files[@]}"
  wait_stack app
  wait_route "$VOTE_SUB.$DOMAIN"
  wait_route "$RESULT_SUB.$DOMAIN"
}

# Waits until Traefik routes https://$1/ here (it discovers services a few
# seconds after they are healthy). Skipped without curl.
wait_route() {
  local host=${1:?missing host} deadline
  command -v curl >/dev/null 2>&1 || { warn "curl is missing: not checking that $host is routed"; return 0; }
  deadline=$((SECONDS + 60))
  until curl -sf -o /dev/null --max-time 3 --cacert "$SECRETS_DIR/tls/ca.crt" \
      --resolve "$host:$HTTPS_PORT:127.0.0.1" "https://$host:$HTTPS_PORT/"; do
    [ "$SECONDS" -lt "$deadline" ] || die "https://$host/ is not answering through Traefik after 60s (./deploy.sh logs traefik)"
    sleep 1
  done
  step "https://$host/ answers"
}

# Everything a stack's deploy needs before its own steps.
prepare() {
  load_env
  require_docker
  check_given_images
  ensure_networks
  ensure_base_image
}
