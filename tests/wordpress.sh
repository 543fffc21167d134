#!/usr/bin/env bash
# Tests of the wordpress stack, against the deployed system (run by
# tests/deploy.sh after it deployed; alone: TEST_HTTPS_PORT=443
# tests/wordpress.sh [PART...] against ./deploy.sh's deployment).
#
# Parts: site (pages, a post published in Chromium, read through both
# replicas), writer (the writer node killed while posts are published), all
# (every node killed at once), isolate (one node cut off the network),
# bad-input (wrong password, an install that died part way, a volume of
# another cluster).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh

readonly RESULTS="$ARTIFACTS/wordpress.txt"
# The table prefix of the one-off site of unfinished_install.
readonly UNFINISHED_PREFIX=t_unfinished_
readonly NODES=(mariadb-1 mariadb-2 mariadb-3)
JAR="$ARTIFACTS/wp-cookies.txt"

wp() { https wp "$@"; }
quietly() { "$@" >/dev/null; }

# GET $1 of node $2's :9200 endpoint, from inside its container.
node_http() {
  local id
  id=$(container_of "wordpress_$2")
  [ -n "$id" ] || return 1
  docker exec "$id" bash -c "exec 3<>/dev/tcp/127.0.0.1/9200 && printf 'GET $1 HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null | tr -d '\r'
}
# Synced in the Primary component (/health also passes a donor).
synced() {
  local st
  st=$(node_http /state "$1") && grep -qx 'local_state=4' <<<"$st" && grep -qx 'primary=1' <<<"$st"
}

# Waits (up to $1 seconds) until all three nodes are Synced in one Primary
# component of size 3.
wait_cluster() {
  local n all
  for _ in $(seq 1 "${1:-180}"); do
    all=1
    for n in "${NODES[@]}"; do
      synced "$n" && node_http /state "$n" | grep -qx 'cluster_size=3' || { all=0; break; }
    done
    [ "$all" = 1 ] && return 0
    sleep 1
  done
  return 1
}

# SQL as root on node $1 (through its socket); prints the rows.
node_sql() {
  local id
  id=$(container_of "wordpress_$1")
  [ -n "$id" ] || return 1
  # shellcheck disable=SC2016 # expanded inside the container
  docker exec -i "$id" bash -c 'MYSQL_PWD=$(cat /run/secrets/mariadb_root_password) mariadb -uroot -N -B "$MARIADB_DATABASE"' <<<"$2" 2>/dev/null
}

# The node HAProxy ("mariadb") sends clients to now, from its stats: the
# first one UP of mariadb-1, then the backups in order.
writer() {
  wp_stats | awk -F, '$1 == "mariadb" && $2 ~ /^mariadb-/ && $18 ~ /^UP/ { print $2; exit }'
}
wp_stats() { https haproxy '/wordpress;csv' -u "admin:$(cat .secrets/haproxy_auth_password)" 2>/dev/null; }

# Logs in as the admin into the cookie jar; prints the REST nonce.
login() {
  rm -f "$JAR"
  wp /wp-login.php -o /dev/null -c "$JAR" -b 'wordpress_test_cookie=WP%20Cookie%20check' \
    --data-urlencode "log=${WP_ADMIN_USER:-admin}" --data-urlencode "pwd@.secrets/wp_admin_password" \
    -d testcookie=1 -d wp-submit=Log+In
  wp '/wp-admin/admin-ajax.php?action=rest-nonce' -b "$JAR"
}

# publish NONCE TITLE: prints "HTTP_CODE POST_ID" (id 0 when none).
publish() {
  local body code
  body=$(wp /wp-json/wp/v2/posts -b "$JAR" -H "X-WP-Nonce: $1" -H 'Content-Type: application/json' \
    -d "{\"title\":\"$2\",\"content\":\"Published by tests/wordpress.sh\",\"status\":\"publish\"}" \
    -w '\n%{http_code}' 2>/dev/null || true)
  code=$(tail -n 1 <<<"$body")
  printf '%s %s\n' "${code:-000}" "$(sed -nE '1s/^\{"id":([0-9]+).*/\1/p' <<<"$body" | grep . || echo 0)"
}

# publish_loop NONCE SECONDS OUT: publishes a post every ~200 ms, logging
# "ms code id" lines to OUT.
publish_loop() {
  local nonce=$1 until=$((SECONDS + $2)) out=$3 i=0
  : >"$out"
  while [ "$SECONDS" -lt "$until" ]; do
    i=$((i + 1))
    printf '%s %s\n' "$(now_ms)" "$(publish "$nonce" "loop $i $RANDOM")" >>"$out"
    sleep 0.2
  done
}

# Every post whose publication was acknowledged (201) in log $1 is in the
# database on every node; prints "acknowledged N / missing M".
posts_kept() {
  local ids missing=0 n found
  ids=$(awk '$2 == 201 && $3 > 0 { print $3 }' "$1" | paste -sd, -)
  [ -n "$ids" ] || { echo "acknowledged 0"; return 1; }
  for n in "${NODES[@]}"; do
    found=$(node_sql "$n" "SELECT count(*) FROM wp_posts WHERE post_status = 'publish' AND ID IN ($ids)" || echo 0)
    missing=$((missing + $(tr ',' '\n' <<<"$ids" | wc -l) - found))
  done
  echo "acknowledged $(tr ',' '\n' <<<"$ids" | wc -l), missing $missing (summed over the nodes)"
  [ "$missing" -eq 0 ]
}

# The longest run of failed publications in log $1, in ms (first failure to
# the next success).
longest_outage() {
  awk '$2 != 201 { if (!start) start = $1; next }
       start { d = $1 - start; if (d > m) m = d; start = 0 }
       END { if (start) print "never recovered"; else print m + 0 }' "$1"
}

page_loads() { grep -qi '<html' <<<"$(wp / || true)"; }

part_site() {
  echo "wordpress: the site"
  check "the home page loads over HTTPS" page_loads
  # Every replica's setup lines (also of containers that exited), kept: an
  # install begun twice is shown, and only one may complete. (A CI run once
  # counted 2 begun, with one admin user; its logs were gone with the stack.)
  local installs attempts
  for id in $(docker ps -aq --filter label=com.docker.swarm.service.name=wordpress_wordpress); do
    docker logs -t "$id" 2>&1 | grep -E 'install|lock|dropping|error' | sed "s/^/${id:0:12} /" || true
  done | sort -k2 >"$ARTIFACTS/wordpress-setup.log"
  installs=$(grep -c 'installed the site at' "$ARTIFACTS/wordpress-setup.log" || true)
  attempts=$(grep -c 'installing the site' "$ARTIFACTS/wordpress-setup.log" || true)
  check "the site was installed once, by one replica ($installs installed, $attempts begun)" test "$installs" -eq 1
  [ "$attempts" -le 1 ] || cat "$ARTIFACTS/wordpress-setup.log"
  check "...with one admin user" test "$(node_sql mariadb-1 'SELECT count(*) FROM wp_users' || true)" = 1
  check "wp-login.php answers without a redirect loop" test "$(wp /wp-login.php -o /dev/null -w '%{http_code}' || true)" = 200
  local spki link host path id ok_replicas=0
  spki=$(openssl x509 -in .secrets/tls/cert.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
  link=$(timeout 180 tests/wp-browser.py "$HTTPS" "$spki" "${WP_ADMIN_USER:-admin}" .secrets/wp_admin_password \
    "Hello from Chromium $RANDOM" "$ARTIFACTS" 2>"$ARTIFACTS/wp-browser.log" || true)
  check "headless Chromium logs in as the admin and publishes a post (${link:-none}; screenshots in $ARTIFACTS)" test -n "$link"
  [ -n "$link" ] || { sed 's/^/      /' "$ARTIFACTS/wp-browser.log"; return; }
  host=${link#https://}
  host=${host%%/*}
  path=/${link#https://*/}
  for id in $(docker ps -q --filter label=com.docker.swarm.service.name=wordpress_wordpress); do
    for _ in 1 2 3 4 5; do
      if docker exec "$id" php -r '$c = stream_context_create(["http" => ["header" => "Host: '"$host"'\r\nX-Forwarded-Proto: https\r\n", "follow_location" => 0, "ignore_errors" => true]]);
          $b = file_get_contents("http://127.0.0.1:8080'"$path"'", false, $c); echo $http_response_header[0] ?? "no answer", "\n", $b;' \
          >"$ARTIFACTS/wp-post-$id.html" 2>&1 && grep -q 'Hello from Chromium' "$ARTIFACTS/wp-post-$id.html"; then
        ok_replicas=$((ok_replicas + 1))
        break
      fi
      echo "    replica $id: $(head -n 1 "$ARTIFACTS/wp-post-$id.html")"
      sleep 2
    done
  done
  check "the post is readable through both replicas ($ok_replicas of 2)" test "$ok_replicas" -eq 2
}

part_writer() {
  echo "wordpress: kill the writer node while posts are published"
  local nonce old dir="$ARTIFACTS/wordpress-writer" loop ms
  mkdir -p "$dir"
  old=$(writer || true)
  nonce=$(login)
  check "logged in for the REST API (nonce $nonce)" grep -Eq '^[0-9a-f]{10}$' <<<"$nonce"
  [ -n "$old" ] || { not_ok "writer: HAProxy names no writer"; return; }
  publish_loop "$nonce" 40 "$dir/posts" &
  loop=$!
  sleep 8
  docker kill "$(container_of "wordpress_$old")" >/dev/null
  wait "$loop"
  ms=$(longest_outage "$dir/posts")
  printf 'writer: publications failed for %s ms after the writer %s was killed\n' "$ms" "$old" >>"$RESULTS"
  check "writer: publications fail for under 10 s after $old is killed (${ms} ms)" test "$ms" -lt 10000 2>/dev/null
  check "writer: the killed node rejoins and every node is Synced" wait_cluster 180
  check "writer: every acknowledged post is on every node ($(posts_kept "$dir/posts" || true))" quietly posts_kept "$dir/posts"
}

part_all() {
  echo "wordpress: kill all three nodes at once"
  local nonce dir="$ARTIFACTS/wordpress-all" n started ms
  mkdir -p "$dir"
  nonce=$(login)
  publish_loop "$nonce" 10 "$dir/posts"
  started=$(now_ms)
  for n in "${NODES[@]}"; do docker kill "$(container_of "wordpress_$n")" >/dev/null & done
  wait
  check "all: the cluster comes back by itself, three nodes Synced" wait_cluster 300
  ms=$(($(now_ms) - started))
  printf 'all: the cluster was whole again %s ms after all three nodes were killed\n' "$ms" >>"$RESULTS"
  check "all: every acknowledged post survives ($(posts_kept "$dir/posts" || true))" quietly posts_kept "$dir/posts"
  local bootstrapped=""
  for n in "${NODES[@]}"; do
    docker logs "$(container_of "wordpress_$n")" >"$dir/$n.log" 2>&1 || true
    ! grep -q -- '--wsrep-new-cluster' "$dir/$n.log" || bootstrapped+="${bootstrapped:+ }$n"
  done
  check "all: exactly one node bootstrapped the cluster again (${bootstrapped:-none})" test "$(wc -w <<<"$bootstrapped")" -eq 1
  check "all: the home page answers again" test "$(wp / -o /dev/null -w '%{http_code}' || true)" = 200
}

part_isolate() {
  echo "wordpress: cut one node off the network"
  local node id seen_down=0 left=0
  node=$(writer || true)
  [ -n "$node" ] || { not_ok "isolate: HAProxy names no writer"; return; }
  id=$(container_of "wordpress_$node")
  partition "$id" -I
  # Cut off for 20 s: well past Galera's suspicion timeout and HAProxy's checks.
  for _ in $(seq 1 20); do
    synced "$node" || seen_down=1
    [ "$(writer || true)" != "$node" ] && [ -n "$(writer || true)" ] && left=1
    sleep 1
  done
  check "isolate: $node stops serving (its health is no longer Synced/Primary)" test "$seen_down" = 1
  check "isolate: HAProxy sends clients to another node" test "$left" = 1
  check "isolate: the site still answers" test "$(wp / -o /dev/null -w '%{http_code}' || true)" = 200
  partition "$id" -D
  check "isolate: $node rejoins once the network is back, every node Synced" wait_cluster 180
}

part_bad_input() {
  echo "wordpress: bad input"
  local image secret
  image=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' wordpress_wordpress)
  secret=$(mktemp -d)
  printf 'not-the-password' >"$secret/db"
  cp .secrets/wordpress_keys "$secret/keys"
  cp .secrets/wp_admin_password "$secret/admin"
  chmod 0755 "$secret" && chmod 0644 "$secret"/*
  docker run -d --name swarmvote-test-wp-wrongpass --network wp_db \
    -e WP_URL="https://wp.localhost:$HTTPS" -e WORDPRESS_DB_HOST=mariadb -e WORDPRESS_DB_PASSWORD_FILE=/s/db \
    -e WORDPRESS_KEYS_FILE=/s/keys -e WP_ADMIN_PASSWORD_FILE=/s/admin -v "$secret:/s:ro" "$image" >/dev/null
  check "WordPress with a wrong database password says so" bash -c \
    "for _ in \$(seq 1 60); do docker logs swarmvote-test-wp-wrongpass 2>&1 | grep -q 'Access denied' && exit 0; sleep 1; done; exit 1"
  docker logs swarmvote-test-wp-wrongpass >"$ARTIFACTS/wordpress-wrongpass.log" 2>&1 || true
  docker rm -f swarmvote-test-wp-wrongpass >/dev/null
  rm -rf "$secret"
  check "...and the site is untouched" test "$(wp / -o /dev/null -w '%{http_code}' || true)" = 200
  install_needs_admin_password
  unfinished_install
  foreign_volume mariadb-3
}

# A one-off WordPress replica of the deployed image on the cluster, with its
# own table prefix (so the real site is untouched), named $1; runs detached.
one_off_wordpress() { # <name> [database host, default mariadb] [no-admin-password]
  local name=$1 db=${2:-mariadb} image secret admin=(-e WP_ADMIN_PASSWORD_FILE=/s/admin)
  [ "${3:-}" != no-admin-password ] || admin=()
  image=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' wordpress_wordpress)
  mkdir -p "$ARTIFACTS/$name.secrets"
  secret=$(cd "$ARTIFACTS/$name.secrets" && pwd)
  cp .secrets/mariadb_password "$secret/db"
  cp .secrets/wordpress_keys "$secret/keys"
  cp .secrets/wp_admin_password "$secret/admin"
  chmod 0755 "$secret" && chmod 0644 "$secret"/*
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker create --name "$name" --network wp_db -e WORDPRESS_TABLE_PREFIX="$UNFINISHED_PREFIX" \
    -e WP_URL="https://wp.localhost:$HTTPS" -e WORDPRESS_DB_HOST="$db" -e WORDPRESS_DB_PASSWORD_FILE=/s/db \
    -e WORDPRESS_KEYS_FILE=/s/keys "${admin[@]}" -v "$secret:/s:ro" "$image" >/dev/null
  # A node named directly is on the cluster's own network, where only this
  # test's WordPress goes.
  [ "$db" = mariadb ] || docker network connect mariadb_galera-network "$name"
  docker start "$name" >/dev/null
}
# Waits (up to 120 s) until container $1 logged a line matching $2.
logged_within() {
  local _
  for _ in $(seq 1 "${3:-120}"); do
    docker logs "$1" 2>&1 | grep -q "$2" && return 0
    sleep 1
  done
  return 1
}

# Drops every table of the one-off site (prefix UNFINISHED_PREFIX).
drop_one_off_site() {
  local t
  for t in $(node_sql mariadb-1 "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE '${UNFINISHED_PREFIX//_/\\_}%'" || true); do
    node_sql mariadb-1 "DROP TABLE \`$t\`" || true
  done
}

# Cuts Galera node $1 off from its partners (1) or lets it back (0), from
# inside: gmcast.isolate. No database named: a non-Primary node refuses to
# switch to one.
galera_isolate() { # <node> <1|0>
  local id
  id=$(container_of "wordpress_$1")
  # shellcheck disable=SC2016 # expanded inside the container
  docker exec "$id" bash -c 'MYSQL_PWD=$(cat /run/secrets/mariadb_root_password) mariadb -uroot -e "SET GLOBAL wsrep_provider_options = '"'"'gmcast.isolate=$1'"'"'"' _ "$2" ||
    echo "    could not set gmcast.isolate=$2 on $1" >&2
}

# Waits (up to $2 s) until node $1 is out of the Primary component.
non_primary_within() {
  for _ in $(seq 1 "$2"); do
    node_http /state "$1" | grep -qx 'primary=0' && return 0
    sleep 1
  done
  return 1
}

# The one-off site's install record (began, finished), or none.
install_record() {
  node_sql mariadb-1 "SELECT state FROM ${UNFINISHED_PREFIX}swarmvote_install WHERE id = 1" 2>/dev/null || echo none
}

# The deployed site runs without its admin password once installed
# (deploy.sh unmounts it); a site that is not installed yet needs it, and
# its setup says so instead of installing one without.
install_needs_admin_password() {
  local name=swarmvote-test-wp-noadmin
  drop_one_off_site
  one_off_wordpress "$name" mariadb no-admin-password
  check "a site to install, with no admin password, says what is missing" \
    logged_within "$name" 'no admin password is given' 60
  check "...and installs nothing" test "$(install_record)" = none
  docker logs "$name" >"$ARTIFACTS/wordpress-noadmin.log" 2>&1 || true
  docker rm -f "$name" >/dev/null
  drop_one_off_site
}

# An install that died part way (WordPress counts the site installed, but
# its admin user was never written) is dropped and run again: a one-off
# replica installs a site of its own, its users are deleted, and the next
# replica must drop that site's tables and install it again.
unfinished_install() {
  local name=swarmvote-test-wp-unfinished
  one_off_wordpress "$name"
  check "a one-off replica installs a site of its own (prefix $UNFINISHED_PREFIX)" logged_within "$name" 'installed the site at'
  docker rm -f "$name" >/dev/null
  node_sql mariadb-1 "DELETE FROM ${UNFINISHED_PREFIX}users" || true
  one_off_wordpress "$name"
  check "a site installed without a user is dropped and installed again" logged_within "$name" 'has no user (an install that did not finish): dropping'
  check "...and installed again, with its admin user" logged_within "$name" 'installed the site at'
  check "...one admin user ($(node_sql mariadb-1 "SELECT count(*) FROM ${UNFINISHED_PREFIX}users" || echo none))" \
    test "$(node_sql mariadb-1 "SELECT count(*) FROM ${UNFINISHED_PREFIX}users" || true)" = 1
  check "...and recorded as finished" test "$(install_record)" = finished
  docker logs "$name" >"$ARTIFACTS/wordpress-unfinished.log" 2>&1 || true
  # An install that died after its admin user was written, before its
  # options were: its record says it began, and never that it finished.
  # WordPress itself dies on loading such a site ("One or more database
  # tables are unavailable"), so setup must drop it before loading.
  docker rm -f "$name" >/dev/null
  node_sql mariadb-1 "UPDATE ${UNFINISHED_PREFIX}swarmvote_install SET state = 'began'" || true
  node_sql mariadb-1 "DELETE FROM ${UNFINISHED_PREFIX}options" || true
  one_off_wordpress "$name"
  check "a site whose install began and never finished, its user written and no option, is dropped and installed again" \
    logged_within "$name" 'an install of the site began and never finished: dropping'
  check "...installed again" logged_within "$name" 'installed the site at'
  check "...and recorded as finished" test "$(install_record)" = finished
  docker logs "$name" >>"$ARTIFACTS/wordpress-unfinished.log" 2>&1 || true
  # A site installed before the record existed is finished, not dropped.
  docker rm -f "$name" >/dev/null
  node_sql mariadb-1 "DROP TABLE ${UNFINISHED_PREFIX}swarmvote_install" || true
  one_off_wordpress "$name"
  check "a site installed before the install record existed is kept" logged_within "$name" 'the site is already installed: nothing to do'
  docker logs "$name" >>"$ARTIFACTS/wordpress-unfinished.log" 2>&1 || true
  docker rm -f "$name" >/dev/null
  setup_loses_database "$name"
  setup_loses_primary_component "$name"
  drop_one_off_site
  rm -rf "$ARTIFACTS/$name.secrets"
  check "...and the real site is untouched" test "$(wp / -o /dev/null -w '%{http_code}' || true)" = 200
}

# A one-off replica ($1) that writes to mariadb-3 directly, on a site of
# its own, started and frozen the moment its install begins.
frozen_mid_install() {
  drop_one_off_site
  one_off_wordpress "$1" mariadb-3
  for _ in $(seq 1 600); do
    docker logs "$1" 2>&1 | grep -q 'installing the site' && break
    sleep 0.2
  done
  docker pause "$1" >/dev/null
}

# The end of a mid-install fault: replica $1 installs the site ($2 says
# when), once, and every node is Synced again. Setup waits for the
# database up to WORDPRESS_DB_WAIT_S (300 s) a try.
installed_once() {
  local name=$1 users
  if logged_within "$name" 'installed the site at' 300; then
    ok "...and installs the site $2"
  else
    not_ok "...and installs the site $2; its setup's last words:"
    docker logs "$name" 2>&1 | grep 'wordpress-' | tail -n 12 | sed 's/^/      /' || true
  fi
  users=$(node_sql mariadb-1 "SELECT count(*) FROM ${UNFINISHED_PREFIX}users" || echo none)
  check "...once: one admin user ($users), recorded as $(install_record)" test "$users/$(install_record)" = 1/finished
  docker logs "$name" >>"$ARTIFACTS/wordpress-unfinished.log" 2>&1 || true
  docker rm -f "$name" >/dev/null
  check "...and every node is Synced again" wait_cluster 180
}

# The database connection lost while an install runs, as a rolling update
# restarts the node: a one-off replica that writes to mariadb-3 directly is
# frozen the moment its install begins, mariadb-3 is stopped (Swarm starts
# it again), and the replica thawed. Its setup must try again, and the site
# end installed once.
setup_loses_database() {
  local name=$1
  frozen_mid_install "$name"
  docker stop -t 30 "$(container_of wordpress_mariadb-3)" >/dev/null
  docker unpause "$name" >/dev/null
  check "setup that lost its database while installing (mariadb-3 stopped) tries again" \
    logged_within "$name" 'lost its database connection (try 1 of'
  # Setup waits for the database up to WORDPRESS_DB_WAIT_S (300 s) a try;
  # mariadb-3 is back once Swarm restarted it and it rejoined.
  installed_once "$name" "once mariadb-3 is back"
}

# The node an install writes to leaves the Primary component part way (a
# Galera node cut off from its partners): it still takes connections, and
# refuses statements with 1047 until it is back. A one-off replica that
# writes to mariadb-3 directly is frozen the moment its install begins,
# mariadb-3 isolates itself (gmcast.isolate), and the replica is thawed:
# its setup must try again, wait for the node to be ready, and install the
# site once mariadb-3 is back in the cluster.
setup_loses_primary_component() {
  local name=$1
  frozen_mid_install "$name"
  galera_isolate mariadb-3 1
  check "mariadb-3 isolated from its partners is non-Primary" non_primary_within mariadb-3 30
  docker unpause "$name" >/dev/null
  check "setup whose database left the Primary component while installing tries again" \
    logged_within "$name" 'lost its database connection (try 1 of' 60
  check "...and waits while the node is not ready" logged_within "$name" 'the node is not ready yet' 60
  galera_isolate mariadb-3 0
  installed_once "$name" "once mariadb-3 is back in the cluster"
}

# Node $1's volume is made another cluster's (same name, another state
# uuid, as a volume kept from another deployment would be) while the node is
# stopped: it must say so, keep that data aside, and copy the cluster's.
foreign_volume() {
  local node=$1 image other id
  image=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "wordpress_$node")
  other=$(cat /proc/sys/kernel/random/uuid)
  docker service scale --detach=false "wordpress_$node=0" >/dev/null 2>&1
  docker run --rm --entrypoint bash -v "wordpress_${node//-/_}_data:/var/lib/mysql" "$image" -c \
    "sed -i 's/^uuid:.*/uuid:    $other/; s/^seqno:.*/seqno:   7/' /var/lib/mysql/data/grastate.dat &&
     sed -i 's/^uuid=.*/uuid=$other/' /var/lib/mysql/galera-cluster" >/dev/null
  docker service scale --detach=true "wordpress_$node=1" >/dev/null
  check "a node whose volume holds another cluster's state says so" bash -c \
    "for _ in \$(seq 1 90); do id=\$(docker ps -q --filter label=com.docker.swarm.service.name=wordpress_$node | head -n 1);
       [ -n \"\$id\" ] && docker logs \"\$id\" 2>&1 | grep -q 'DATA OF ANOTHER CLUSTER' && exit 0; sleep 1; done; exit 1"
  check "...and rejoins with the cluster's data, every node Synced" wait_cluster 180
  id=$(container_of "wordpress_$node")
  check "...keeping the other cluster's data aside (data.old-*)" \
    docker exec "$id" bash -c 'compgen -G "/var/lib/mysql/data.old-*" >/dev/null'
}

main() {
  local all=(site writer all isolate bad-input) chosen=("$@") s
  [ "${#chosen[@]}" -gt 0 ] || chosen=("${all[@]}")
  : >"$RESULTS"
  for s in "${chosen[@]}"; do
    case "$s" in
      site | writer | all | isolate) "part_$s" ;;
      bad-input) part_bad_input ;;
      *) echo "unknown part '$s' (${all[*]})" >&2; exit 2 ;;
    esac
  done
  check "the Galera cluster is whole at the end" wait_cluster 180
  report "wordpress" "timings in $RESULTS"
}

main "$@"
