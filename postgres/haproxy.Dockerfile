# pg-haproxy of the postgres stack: HAProxy 2.6 in front of pg-1..3, a primary
# and a replica endpoint chosen by the nodes' :8008 role checks; stats page.
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends haproxy; \
    rm -rf /var/lib/apt/lists/*
COPY postgres/haproxy.cfg postgres/primary-guard.lua /usr/local/etc/haproxy/
COPY images/listen-address /usr/local/bin/listen-address
RUN haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg
EXPOSE 5432 5433 8404
USER haproxy
STOPSIGNAL SIGUSR1
# Data ports listen only on the network named by LISTEN_SUBNET (haproxy.cfg).
# No process here may gain privileges (setuid files, file capabilities):
# docker stack deploy on this engine drops no-new-privileges, so the image
# sets it (setpriv, util-linux).
ENTRYPOINT ["setpriv", "--no-new-privs", "listen-address", "exec"]
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
