# "mariadb" of the wordpress stack: HAProxy 2.6 in front of mariadb-1..3 -- one
# writer at a time, chosen by each node's :9200/health -- and its stats page.
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends haproxy; \
    rm -rf /var/lib/apt/lists/*
# The servers' addresses; the swarm service names by default. Tests on a
# bridge network set them to container names.
ENV GALERA_NODE_1=mariadb-1 \
    GALERA_NODE_2=mariadb-2 \
    GALERA_NODE_3=mariadb-3
COPY wordpress/haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg
COPY images/listen-address /usr/local/bin/listen-address
RUN haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg
EXPOSE 3306 8404
USER haproxy
# SIGUSR1: soft stop, the open sessions finish first.
STOPSIGNAL SIGUSR1
# Data ports listen only on the network named by LISTEN_SUBNET (haproxy.cfg).
# No process here may gain privileges (setuid files, file capabilities):
# docker stack deploy on this engine drops no-new-privileges, so the image
# sets it (setpriv, util-linux).
ENTRYPOINT ["setpriv", "--no-new-privs", "listen-address", "exec"]
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
