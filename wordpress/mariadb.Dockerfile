# mariadb-1..3 of the wordpress stack: MariaDB 10.11 + Galera 4 (Debian's
# packages), mariabackup for state transfers, and a tiny HTTP endpoint on
# :9200 (GET /health for HAProxy, GET /state for the partners at start-up).
# mariadb-entrypoint.sh decides at every start whether this node creates,
# bootstraps or joins the cluster; whom to join and which node bootstraps,
# it asks the pgha binary (the rules, pgha/src/galera_join.rs and
# pgha/src/galera.rs), which comes from the Rust build
# stage: build it first (deploy.sh does):
# docker build -f build.Dockerfile -t swarmvote/build .
ARG BUILD_IMAGE=swarmvote/build:latest
FROM ${BUILD_IMAGE} AS build

FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8

# iproute2 (ss): the SST scripts check their listening socket with it.
# Debian's postinst creates a data directory and the mysql users; it is
# removed again so that a new volume starts empty (the entrypoint owns it).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        mariadb-server mariadb-client mariadb-backup galera-4 \
        socat iproute2 procps tini gosu; \
    rm -rf /var/lib/apt/lists/* /var/lib/mysql; \
    mkdir -p /var/lib/mysql /run/mysqld /run/galera; \
    chown mysql:mysql /var/lib/mysql /run/mysqld /run/galera

COPY galera.cnf /etc/mysql/mariadb.conf.d/99-galera.cnf
COPY mariadb-entrypoint.sh /usr/local/bin/mariadb-entrypoint.sh
COPY galera-endpoint.sh /usr/local/bin/galera-endpoint.sh
COPY --from=build /src/target/release/pgha /usr/local/bin/pgha
RUN chmod 0644 /etc/mysql/mariadb.conf.d/99-galera.cnf; \
    chmod 0755 /usr/local/bin/mariadb-entrypoint.sh /usr/local/bin/galera-endpoint.sh

VOLUME /var/lib/mysql
# 3306 SQL, 4567 group communication, 4568 IST, 4444 SST, 9200 health/state
EXPOSE 3306 4444 4567 4568 9200

# Healthy while the entrypoint is deliberately waiting or transferring state
# (a restart would only start the wait again), and once mysqld answers. Whether
# the node may take queries is /health, which HAProxy asks.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9200 && printf 'GET /live HTTP/1.0\\r\\n\\r\\n' >&3 && r=$(cat <&3) && [[ ${r%%$'\\r'*} == *' 200 '* ]]"]

# mysqld shuts down cleanly on TERM (and writes its position to grastate.dat).
STOPSIGNAL SIGTERM
# No process here may gain privileges (setuid files, file capabilities):
# docker stack deploy on this engine drops no-new-privileges, so the image
# sets it (setpriv, util-linux).
ENTRYPOINT ["setpriv", "--no-new-privs", "/usr/bin/tini", "--", "/usr/local/bin/mariadb-entrypoint.sh"]
