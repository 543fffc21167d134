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
COPY haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg
RUN haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg
EXPOSE 3306 8404
USER haproxy
# SIGUSR1: soft stop, the open sessions finish first.
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
