#!/usr/bin/env bash
# Measures what high availability costs a vote, in interleaved rounds of one
# run, all through the same Traefik with the workers stopped (so that every
# side gets the same CPU, 2 cores here):
#   ha       the deployed path: vote -> HAProxy "redis-master" -> primary,
#            acknowledged once every replica that could be promoted holds
#            it, on the node a majority of the Sentinels names
#   wait1    the same image on the same path with the older rule (WAIT 1,
#            no Sentinels): what the Sentinels' rule costs
#   single   the same image on a single Redis, appendfsync everysec
#   always   the same image on a single Redis, appendfsync always: what
#            writing every vote to disk before answering costs
# Appends a table to bench/RESULTS.md. Deploys first (./deploy.sh is
# idempotent).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=10s
CONNECTIONS=64
ROUNDS=3

usage() {
  cat <<'USAGE'
Usage: bench/redis-ha.sh [--no-record] [--help]

Deploys (./deploy.sh), starts two single Redis servers (everysec, always)
and three extra vote services (bench_*, removed at the end), and runs wrk
through Traefik: POST / on each of four paths, three interleaved rounds,
workers stopped; prints the ratios and appends the table to
bench/RESULTS.md unless --no-record.
USAGE
}

# shellcheck source=bench/deployed.sh
source bench/deployed.sh
bench_args "$@"
url=$(bench_prepare) || exit 1

inspect() { docker service inspect --format "$2" "$1"; }
vote_image=$(inspect app_vote '{{.Spec.TaskTemplate.ContainerSpec.Image}}')
redis_image=$(inspect redis_redis-1 '{{.Spec.TaskTemplate.ContainerSpec.Image}}')
secret=$(inspect app_vote '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{if eq .File.Name "redis_vote_password"}}{{.SecretName}}{{end}}{{end}}')
workers=$(inspect app_worker '{{.Spec.Mode.Replicated.Replicas}}')

cleanup() {
  docker service rm bench_vote bench_redis bench_vote_always bench_redis_always bench_vote_wait1 >/dev/null 2>&1 || true
  docker service scale --detach=true "app_worker=$workers" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# single_redis NAME FSYNC: a single Redis with AOF and appendfsync FSYNC,
# whose default user has vote's password.
single_redis() {
  # shellcheck disable=SC2016 # expanded inside the container
  docker service create --detach=false --quiet --name "$1" --network redis --endpoint-mode dnsrr \
    --secret "source=$secret,target=redis_password" --entrypoint bash "$redis_image" \
    -c "exec redis-server --dir /data --appendonly yes --appendfsync $2"' --requirepass "$(cat /run/secrets/redis_password)"' >/dev/null
}
# vote_on NAME HOST REDIS_HOST ENV...: a vote service routed at HOST.
vote_on() {
  local name=$1 host=$2 redis=$3 args=() e
  shift 3
  for e in "$@"; do args+=(--env "$e"); done
  docker service create --detach=false --quiet --name "$name" --replicas 2 --endpoint-mode dnsrr \
    --network web_net --network redis --secret "source=$secret,target=redis_password" \
    --env "REDIS_HOST=$redis" --env REDIS_PASSWORD_FILE=/run/secrets/redis_password "${args[@]}" \
    --label traefik.enable=true \
    --label "traefik.http.routers.$name.rule=Host(\`$host\`)" \
    --label "traefik.http.routers.$name.entrypoints=websecure" --label "traefik.http.routers.$name.tls=true" \
    --label "traefik.http.services.$name.loadbalancer.server.port=8080" "$vote_image" >/dev/null
}

echo "redis-ha.sh: starting two single Redis servers and three vote services; stopping the workers" >&2
single_redis bench_redis everysec
single_redis bench_redis_always always
vote_on bench_vote vote-single.localhost bench_redis VOTE_MIN_REPLICAS=0
vote_on bench_vote_always vote-always.localhost bench_redis_always VOTE_MIN_REPLICAS=0
vote_on bench_vote_wait1 vote-wait1.localhost redis-master VOTE_MIN_REPLICAS=1 REDIS_USERNAME=vote
docker service scale --detach=false app_worker=0 >/dev/null 2>&1
for host in vote-single.localhost vote-always.localhost vote-wait1.localhost; do
  for _ in $(seq 1 30); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Host: $host" "$url/")" = 200 ] && break
    sleep 1
  done
done

# Requests per second of one wrk run of votes for host $1.
rps() {
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -H "Host: $1" -s bench/post.lua "$url/" \
    | awk '/^Requests\/sec:/ {print $2} /Non-2xx or 3xx/ {print "errors " $NF > "/dev/stderr"}'
}

median() { sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rows=""
: >"/tmp/redis-ha.$$"
for round in $(seq 1 "$ROUNDS"); do
  ha=$(rps vote.localhost)
  wait1=$(rps vote-wait1.localhost)
  single=$(rps vote-single.localhost)
  always=$(rps vote-always.localhost)
  printf '%s %s %s\n' "$(ratio "$ha" "$wait1")" "$(ratio "$ha" "$single")" "$(ratio "$always" "$single")" >>"/tmp/redis-ha.$$"
  rows+="| $round | $ha | $wait1 | $single | $always | $(ratio "$ha" "$wait1")× | $(ratio "$ha" "$single")× | $(ratio "$always" "$single")× |"$'\n'
done
rule=$(awk '{ print $1 }' "/tmp/redis-ha.$$" | median)
ha_cost=$(awk '{ print $2 }' "/tmp/redis-ha.$$" | median)
fsync=$(awk '{ print $3 }' "/tmp/redis-ha.$$" | median)
rm -f "/tmp/redis-ha.$$"

table=$(cat <<TABLE
### Redis HA path, the Sentinels' rule and appendfsync — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(bench_commit)

\`bench/redis-ha.sh\` on $(nproc) cores; wrk -t2 -c$CONNECTIONS -d$DURATION, POST / (a new voter each) through Traefik (HTTPS) to 2 vote replicas per path; workers stopped. req/s:

| round | HA (every promotable replica, Sentinels asked) | HA, WAIT 1 only | single Redis, everysec | single Redis, always | HA / WAIT 1 | HA / single | always / everysec |
|---|---|---|---|---|---|---|---|
$rows
Medians: the Sentinels' rule costs **${rule}×** of WAIT 1 (goal ≥ 0.80×); HA vs single Redis **${ha_cost}×**; appendfsync always vs everysec **${fsync}×**.
TABLE
)
printf '%s\n' "$table"
[ -z "$record" ] || printf '\n%s\n' "$table" >>bench/RESULTS.md
