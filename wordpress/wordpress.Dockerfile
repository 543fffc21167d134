# WordPress of the wordpress stack: Debian's wordpress 6.1 served by nginx and
# php8.2-fpm in one container, both as www-data. The entrypoint (under tini)
# installs the site once, then supervises php-fpm, nginx and WP-Cron: when one
# of them ends the container exits, and Swarm replaces the task. Configured
# only from the environment and secret files (see config-default.php).
# Build context: this directory.
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8

# Keeping what wordpress depends on but this image never uses out (~140 MB):
# - "apache2 | httpd", "libapache2-mod-php | php": the trailing "-" on the
#   Apache packages makes apt take nginx and php8.2-fpm for those instead;
# - "default-mysql-client | virtual-mysql-client" (for Debian's setup-mysql
#   helper; the setup here speaks to MariaDB from PHP): an empty local package
#   that provides virtual-mysql-client, instead of the client and Perl;
# - php8.2-fpm's "systemd | systemd-tmpfiles": the standalone tmpfiles.
RUN set -eux; \
    mkdir -p /tmp/no-mysql-client/DEBIAN; \
    printf '%s\n' 'Package: swarmvote-no-mysql-client' 'Version: 1' 'Architecture: all' \
        'Maintainer: swarmvote' 'Provides: virtual-mysql-client' \
        'Description: satisfies wordpress'"'"'s MySQL client dependency with nothing' \
        >/tmp/no-mysql-client/DEBIAN/control; \
    dpkg-deb --build /tmp/no-mysql-client /tmp/no-mysql-client.deb; \
    dpkg -i /tmp/no-mysql-client.deb; \
    rm -rf /tmp/no-mysql-client /tmp/no-mysql-client.deb; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        wordpress wordpress-theme-twentytwentythree \
        php8.2-fpm php8.2-cli php8.2-mysql nginx tini systemd-standalone-tmpfiles \
        apache2- libapache2-mod-php- libapache2-mod-php8.2-; \
    rm -rf /var/lib/apt/lists/*; \
    rm -f /etc/php/8.2/fpm/pool.d/www.conf /etc/nginx/sites-enabled/default; \
    # www-data may write only uploads (the shared volume) and runtime dirs:
    # wp-content's code stays the image's (DISALLOW_FILE_MODS agrees).
    chown -R root:root /var/lib/wordpress/wp-content; \
    chown www-data:www-data /var/lib/wordpress/wp-content/uploads; \
    mkdir -p /run/php /run/nginx /run/wordpress /var/lib/nginx /usr/local/lib/swarmvote; \
    chown www-data:www-data /run/php /run/nginx /run/wordpress /var/lib/nginx

COPY nginx.conf /etc/nginx/nginx.conf
COPY php-fpm.conf /etc/php/8.2/fpm/swarmvote-fpm.conf
COPY config-default.php /etc/wordpress/config-default.php
COPY wordpress-setup.php /usr/local/lib/swarmvote/wordpress-setup.php
COPY hardening.php /var/lib/wordpress/wp-content/mu-plugins/swarmvote-hardening.php
COPY wordpress-entrypoint.sh /usr/local/bin/wordpress-entrypoint
COPY wordpress-healthcheck.sh /usr/local/bin/wordpress-healthcheck
RUN set -eux; \
    chmod 0644 /etc/nginx/nginx.conf /etc/php/8.2/fpm/swarmvote-fpm.conf \
        /etc/wordpress/config-default.php /usr/local/lib/swarmvote/wordpress-setup.php \
        /var/lib/wordpress/wp-content/mu-plugins/swarmvote-hardening.php; \
    chmod 0755 /usr/local/bin/wordpress-entrypoint /usr/local/bin/wordpress-healthcheck

USER www-data
# Fail the build on a syntax error, checked as the user that runs them (nginx
# run as root would create its temporary directories for another user).
RUN set -eux; \
    php8.2 -l /etc/wordpress/config-default.php; \
    php8.2 -l /usr/local/lib/swarmvote/wordpress-setup.php; \
    php8.2 -l /var/lib/wordpress/wp-content/mu-plugins/swarmvote-hardening.php; \
    PHP_FPM_MAX_CHILDREN=8 php-fpm8.2 -t -y /etc/php/8.2/fpm/swarmvote-fpm.conf; \
    nginx -t -e stderr
# Media uploads, shared by all replicas (a named volume; on several nodes it
# must be shared storage, e.g. NFS).
VOLUME /var/lib/wordpress/wp-content/uploads
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["wordpress-healthcheck"]
STOPSIGNAL SIGTERM
# No process here may gain privileges (setuid files, file capabilities):
# docker stack deploy on this engine drops no-new-privileges, so the image
# sets it (setpriv, util-linux).
ENTRYPOINT ["setpriv", "--no-new-privs", "tini", "--", "wordpress-entrypoint"]
