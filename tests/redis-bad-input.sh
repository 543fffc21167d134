#!/usr/bin/env bash
# Bad input against the deployed redis stack (run by tests/deploy.sh after it
# deployed; alone: TEST_HTTPS_PORT=443 tests/redis-bad-input.sh against
# ./deploy.sh's deployment): a node with the wrong password or without its
# secret, a node that no longer resolves, a replica made primary by hand, a
# stale configuration on a node's volume, an HAProxy cut off from the
# Sentinels. The votes keep flowing meanwhile.
# Faults of every timing are the fault harness's (tests/faults/redis.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/redis-lib.sh
source tests/redis-lib.sh

# Samples, every ~300 ms until file $2 exists, the nodes each HAProxy has in
# rotation; appends "ms container count nodes" lines to $1. Only healthy
# HAProxies count: a task is in Swarm's DNS, and so reachable by clients,
# only once healthy, and a starting HAProxy has its servers UP until their
# first check (its health check waits for that).
sample_rotation() {
  local out=$1 stop=$2 id up
  while [ ! -e "$stop" ]; do
    for id in $(docker ps -q --filter label=com.docker.swarm.service.name=redis_redis-master --filter health=healthy); do
      # shellcheck disable=SC2016 # expanded inside the container
      up=$(docker exec "$id" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8404; printf "GET /redis;csv HTTP/1.0\r\n\r\n" >&3; cat <&3' 2>/dev/null \
        | awk -F, '$1 == "primary" && $2 ~ /^redis-/ && $18 ~ /^UP/ { printf "%s,", $2 }') || continue
      printf '%s %s %s %s\n' "$(now_ms)" "$id" "$(tr -cd , <<<"$up" | wc -c)" "${up:--}" >>"$out"
    done
    sleep 0.3
  done
}

# A vote through the whole path is still acknowledged.
votes_work() {
  local answer
  for _ in $(seq 1 20); do
    answer=$(https vote /api/vote -H 'Content-Type: application/json' -d '{"vote":"a"}' 2>/dev/null || true)
    [ "$answer" = '{"recorded":true,"vote":"a"}' ] && return 0
    sleep 0.5
  done
  return 1
}

# logs_say SERVICE PATTERN: the service's recent logs match PATTERN.
logs_say() {
  local id
  for _ in $(seq 1 30); do
    for id in $(docker ps -aq --filter "label=com.docker.swarm.service.name=$1"); do
      docker logs --since 2m "$id" 2>&1 | grep -qE -- "$2" && return 0
    done
    sleep 1
  done
  return 1
}

# A replica that makes itself a primary on its own (REPLICAOF NO ONE; a node
# restarted with a stale configuration does the same): it says role:master,
# which is all its own check asks, but the Sentinels name $1, so neither
# HAProxy may let it out of maintenance. The Sentinels turn such a node back
# into a replica after 0-10 s, so it is made primary again every quarter
# second until it has said role:master in 10 samples (2.5 s, more than a
# check needs to pass), for 15 s at most.
rogue_primary() {
  local p=$1 rogue=$2 dir masters=0 samples=0
  dir=$(mktemp -d)
  sample_rotation "$dir/samples" "$dir/stop" &
  while [ "$masters" -lt 10 ] && [ "$samples" -lt 60 ]; do
    # A miss (the name did not resolve, say) shows as a sample of a replica.
    sentinel_cli -h "$rogue" REPLICAOF NO ONE >/dev/null 2>&1 || true
    sleep 0.25
    samples=$((samples + 1))
    [ "$(replication_field "$rogue" role)" != master ] || masters=$((masters + 1))
  done
  touch "$dir/stop"
  wait
  # The fault took if it said role:master for long enough that a broken guard
  # would have admitted it: HAProxy's role check runs every second and needs
  # one pass (redis/haproxy.cfg), so 10 samples (2.5 s) is ample. The
  # Sentinels undo it at their own pace (full runs saw 14 and 9 of 20).
  check "a replica made primary by hand ($rogue) said role:master ($masters of $samples samples)" test "$masters" -ge 10
  check "...but no HAProxy put it in rotation, and $p stayed ($(wc -l <"$dir/samples") samples)" \
    bash -c "! grep -qE '[ ,]$rogue,' '$dir/samples' && grep -qE '[ ,]$p,' '$dir/samples'"
  check "...votes were acknowledged meanwhile" votes_work
  check "...and the Sentinels made it a replica of $p again" wait_replica_of "$rogue" "$p"
  rm -rf "$dir"
}

# An HAProxy cut off from every Sentinel keeps every node in maintenance; it
# must fail its own health check (so Swarm's DNS sends clients to the other
# one, and Swarm replaces it), while votes keep being acknowledged.
deaf_proxy() {
  local id state=""
  id=$(container_of redis_redis-master)
  cut_from "$id" -I sentinel-1 sentinel-2 sentinel-3
  for _ in $(seq 1 40); do
    state=$(docker inspect --format '{{.State.Health.Status}}' "$id" 2>/dev/null || echo replaced)
    [ "$state" = healthy ] || break
    sleep 0.5
  done
  check "an HAProxy that cannot hear the Sentinels fails its health check ($state)" test "$state" != healthy
  check "...votes are acknowledged meanwhile" votes_work
  docker inspect "$id" >/dev/null 2>&1 && cut_from "$id" -D sentinel-1 sentinel-2 sentinel-3 2>/dev/null
  check "...and two healthy HAProxies serve again" bash -c \
    "for _ in \$(seq 1 60); do [ \"\$(docker ps -q --filter label=com.docker.swarm.service.name=redis_redis-master --filter health=healthy | wc -l)\" -eq 2 ] && exit 0; sleep 1; done; exit 1"
}

# Wrong and missing passwords, a node that cannot be resolved, stale config,
# a rogue primary, an HAProxy deaf to the Sentinels.
bad_input() {
  local image secrets name p replica
  echo "redis: bad input"
  image=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' redis_redis-1)
  # Every secret a node mounts, none of them the stack's.
  secrets=$(mktemp -d)
  for name in redis_password redis_replica_password redis_sentinel_password redis_monitor_password redis_vote_password redis_worker_password; do
    printf 'not-the-password' >"$secrets/$name"
  done
  chmod 0755 "$secrets" && chmod 0644 "$secrets"/*
  docker run -d --name swarmvote-test-wrongpass --network redis_repl -e NODE_NAME=redis-x \
    -v "$secrets:/run/secrets:ro" "$image" node >/dev/null
  check "a node with the wrong password says the Sentinels refused it" \
    bash -c "for _ in \$(seq 1 20); do docker logs swarmvote-test-wrongpass 2>&1 | grep -q 'refused the password' && exit 0; sleep 0.5; done; exit 1"
  check "the cluster keeps serving votes meanwhile" votes_work
  docker rm -f swarmvote-test-wrongpass >/dev/null
  rm "$secrets/redis_vote_password"
  check "a node without one of its users' secrets exits naming it" \
    bash -c "docker run --rm --network redis_repl -e NODE_NAME=redis-x -v '$secrets:/run/secrets:ro' '$image' node 2>&1 | grep -q 'password secret /run/secrets/redis_vote_password is missing'"
  printf 'two words' >"$secrets/redis_vote_password"
  check "a node whose user's password Redis cannot hold exits saying why" \
    bash -c "docker run --rm --network redis_repl -e NODE_NAME=redis-x -v '$secrets:/run/secrets:ro' '$image' node 2>&1 | grep -q 'redis_vote_password has spaces'"
  rm -rf "$secrets"
  check "a node without its password secret exits with a clear message" \
    bash -c "docker run --rm --network redis_repl -e NODE_NAME=redis-x '$image' node 2>&1 | grep -q 'password secret /run/secrets/redis_password is missing'"

  p=$(primary)
  replica=$(sentinel_cli -h "$p" INFO replication | sed -nE 's/^slave0:ip=([^,]+),.*/\1/p')
  docker service scale --detach=true "redis_$replica=0" >/dev/null
  check "Sentinels say so when a node ($replica) no longer resolves" logs_say redis_sentinel-1 "Failed to resolve hostname '$replica'"
  check "the cluster keeps serving votes without $replica" votes_work
  docker service scale --detach=true "redis_$replica=1" >/dev/null
  check "$replica rejoins as a replica of $p" wait_replica_of "$replica" "$p"

  # The other replica: $replica was just restarted, and Swarm's DNS may not
  # resolve a new task for some seconds.
  rogue_primary "$p" "$(sentinel_cli -h "$p" INFO replication | sed -nE "s/^slave[0-9]+:ip=([^,]+),.*/\1/p" | grep -vx "$replica" | head -n 1)"

  # A replica whose volume holds a stale configuration (another primary,
  # written as a Sentinel's CONFIG REWRITE would) restarts as a replica of
  # the real primary.
  docker exec "$(container_of "redis_$replica")" bash -c 'printf "replicaof stale-primary 6379\n" >>/data/redis.conf'
  docker kill "$(container_of "redis_$replica")" >/dev/null
  check "a node with stale configuration on its volume says it replaces it" logs_say "redis_$replica" "replacing /data/redis.conf"
  check "...and rejoins as a replica of $p" wait_replica_of "$replica" "$p"
}

main() {
  bad_input
  deaf_proxy
  report "redis bad input"
}

main "$@"
