#!/usr/bin/env bash
# Measures what high availability costs a vote: votes per second through the
# deployed HA path (vote -> HAProxy "redis-master" -> primary, acknowledged
# after WAIT 1 replica) versus the same vote image on a single Redis (same
# AOF settings, no HAProxy, no WAIT), both through the same Traefik, in
# interleaved rounds of the same run. The workers are stopped meanwhile so
# that both sides get the same CPU (2 cores here). Appends a table to
# bench/RESULTS.md. Deploys first (./deploy.sh is idempotent).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=10s
CONNECTIONS=64
ROUNDS=3

usage() {
  cat <<'USAGE'
Usage: bench/redis-ha.sh [--no-record] [--help]

Deploys (./deploy.sh), starts a single Redis and a second vote service on it
(bench_redis, bench_vote, removed at the end), and runs wrk through Traefik:
POST / on the HA path against POST / on the single Redis, three interleaved
rounds, workers stopped; prints the median ratio and appends the table to
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
secret=$(inspect app_vote '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{if eq .File.Name "redis_password"}}{{.SecretName}}{{end}}{{end}}')
workers=$(inspect app_worker '{{.Spec.Mode.Replicated.Replicas}}')

cleanup() {
  docker service rm bench_vote bench_redis >/dev/null 2>&1 || true
  docker service scale --detach=true "app_worker=$workers" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "redis-ha.sh: starting a single Redis and a vote service on it; stopping the workers" >&2
docker service create --detach=false --quiet --name bench_redis --network redis --endpoint-mode dnsrr \
  --secret "source=$secret,target=redis_password" --entrypoint bash "$redis_image" \
  -c 'exec redis-server --dir /data --appendonly yes --appendfsync everysec --requirepass "$(cat /run/secrets/redis_password)"' >/dev/null
docker service create --detach=false --quiet --name bench_vote --replicas 2 --endpoint-mode dnsrr \
  --network web_net --network redis --secret "source=$secret,target=redis_password" \
  --env REDIS_HOST=bench_redis --env REDIS_PASSWORD_FILE=/run/secrets/redis_password --env VOTE_MIN_REPLICAS=0 \
  --label traefik.enable=true \
  --label 'traefik.http.routers.bench-vote.rule=Host(`vote-single.localhost`)' \
  --label traefik.http.routers.bench-vote.entrypoints=websecure --label traefik.http.routers.bench-vote.tls=true \
  --label traefik.http.services.bench-vote.loadbalancer.server.port=8080 "$vote_image" >/dev/null
docker service scale --detach=false app_worker=0 >/dev/null 2>&1
for _ in $(seq 1 30); do
  [ "$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: vote-single.localhost' "$url/healthz")" = 200 ] && break
  sleep 1
done

# Requests per second of one wrk run of votes for host $1.
rps() {
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -H "Host: $1" -s bench/post.lua "$url/" \
    | awk '/^Requests\/sec:/ {print $2} /Non-2xx or 3xx/ {print "errors " $NF > "/dev/stderr"}'
}

ratios=()
rows=""
for round in $(seq 1 "$ROUNDS"); do
  single=$(rps vote-single.localhost)
  ha=$(rps vote.localhost)
  ratio=$(awk -v h="$ha" -v s="$single" 'BEGIN {printf "%.2f", h / s}')
  ratios+=("$ratio")
  rows+="| $round | $ha | $single | ${ratio}× |"$'\n'
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")

table=$(cat <<TABLE
### Redis HA path vs a single Redis — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(bench_commit)

\`bench/redis-ha.sh\` on $(nproc) cores; wrk -t2 -c$CONNECTIONS -d$DURATION, POST / (a new voter each) through Traefik (HTTPS) to 2 vote replicas; workers stopped.

| round | HA path (HAProxy + primary + WAIT 1) req/s | single Redis req/s | ratio |
|---|---|---|---|
$rows
Median ratio: **${median}×**.
TABLE
)
printf '%s\n' "$table"
[ -z "$record" ] || printf '\n%s\n' "$table" >>bench/RESULTS.md
