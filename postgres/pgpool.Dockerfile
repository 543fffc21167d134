# "db" of the postgres stack: Pgpool-II 4.3 in streaming-replication mode,
# the address the apps use (no failover of its own: repmgr promotes).
ARG BUILD_IMAGE=swarmvote/build:latest
FROM ${BUILD_IMAGE} AS build

FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8

RUN set -eux; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/pgha.conf; \
    apt-get update; \
    apt-get install -y --no-install-recommends pgpool2 postgresql-client-15 tini gosu procps ca-certificates; \
    rm -rf /var/lib/apt/lists/*

COPY pgpool.conf pool_hba.conf /etc/pgpool2/
COPY pgpool-entrypoint.sh /usr/local/bin/entrypoint.sh
COPY pgpool-healthcheck.sh /usr/local/bin/healthcheck.sh
COPY --from=build /src/target/release/pgha /usr/local/bin/pgha
RUN set -eux; \
    chmod 0755 /usr/local/bin/entrypoint.sh /usr/local/bin/healthcheck.sh; \
    mkdir -p /var/run/pgpool /var/log/pgpool /run/pgpool-conf; \
    chown -R postgres:postgres /etc/pgpool2 /var/run/pgpool /var/log/pgpool /run/pgpool-conf

EXPOSE 5432 9898
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck.sh"]
# No process here may gain privileges (setuid files, file capabilities):
# docker stack deploy on this engine drops no-new-privileges, so the image
# sets it (setpriv, util-linux).
ENTRYPOINT ["setpriv", "--no-new-privs", "/usr/bin/tini", "--", "/usr/local/bin/entrypoint.sh"]
