<?php
/*
 * Site settings of the swarmvote WordPress image.
 *
 * Debian's /usr/share/wordpress/wp-config.php includes
 * /etc/wordpress/config-<host>.php, else config-default.php; the image ships
 * only this file, so every request and every CLI run uses it. Debian's file
 * then supplies ABSPATH, WP_CONTENT_DIR (/var/lib/wordpress/wp-content) and
 * the table prefix default, and loads WordPress.
 *
 * Everything here comes from the environment and from secret files, and
 * nothing depends on the replica: all replicas compute the same settings, so
 * a cookie or nonce made by one is valid on the others.
 *
 *   WP_URL                      public URL, e.g. https://wp.localhost:8443
 *                               (no path, no trailing slash; the deployer
 *                               appends the HTTPS port when it is not 443)
 *   WORDPRESS_DB_HOST           default mariadb (host or host:port)
 *   WORDPRESS_DB_NAME           default wordpress
 *   WORDPRESS_DB_USER           default wordpress
 *   WORDPRESS_DB_PASSWORD_FILE  default /run/secrets/wordpress_db_password
 *   WORDPRESS_KEYS_FILE         default /run/secrets/wordpress_keys: the 8
 *                               keys and salts, one NAME=value a line
 *   WORDPRESS_TABLE_PREFIX      default wp_
 *   WP_BLOCK_EXTERNAL_HTTP      default true: no outgoing HTTP requests
 *   WP_ACCESSIBLE_HOSTS         hosts allowed anyway (comma-separated)
 */

const SWARMVOTE_KEY_NAMES = [
    'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY',
    'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT',
];

/** Stops on a configuration error: a log line, and a bare 503 for a browser. */
function swarmvote_config_fail(string $why): never
{
    if (PHP_SAPI === 'cli') {
        fwrite(STDERR, gmdate('Y-m-d\TH:i:s\Z') . " wordpress-config error: $why\n");
        exit(2);
    }
    error_log("wordpress-config error: $why");
    http_response_code(503);
    header('Content-Type: text/plain; charset=utf-8');
    echo "This site is misconfigured; the reason is in the container log.\n";
    exit;
}

/** The value of an environment variable, or $default when unset or empty. */
function swarmvote_env(string $name, string $default = ''): string
{
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}

/** The content of the secret file named by $env, without the final newline. */
function swarmvote_secret(string $env, string $default_path): string
{
    $path = swarmvote_env($env, $default_path);
    $value = is_readable($path) ? file_get_contents($path) : false;
    if ($value === false) {
        swarmvote_config_fail("$env=$path is missing or unreadable");
    }
    $value = rtrim($value, "\r\n");
    if ($value === '') {
        swarmvote_config_fail("$env=$path is empty");
    }
    return $value;
}

/** NAME => value from the keys file; all 8 names present, values >= 32 chars. */
function swarmvote_keys(): array
{
    $keys = [];
    foreach (explode("\n", swarmvote_secret('WORDPRESS_KEYS_FILE', '/run/secrets/wordpress_keys')) as $line) {
        $line = rtrim($line, "\r");
        if ($line === '' || $line[0] === '#' || !str_contains($line, '=')) {
            continue;
        }
        [$name, $value] = explode('=', $line, 2); // values may contain '='
        $keys[trim($name)] = $value;
    }
    $problems = [];
    foreach (SWARMVOTE_KEY_NAMES as $name) {
        if (!isset($keys[$name])) {
            $problems[] = "$name is missing";
        } elseif (strlen($keys[$name]) < 32) {
            $problems[] = "$name is shorter than 32 characters";
        }
    }
    if ($problems) {
        swarmvote_config_fail('the keys file (WORDPRESS_KEYS_FILE): ' . implode(', ', $problems));
    }
    return $keys;
}

// Database. utf8mb4 for emoji; an empty collation lets WordPress choose.
define('DB_HOST', swarmvote_env('WORDPRESS_DB_HOST', 'mariadb'));
define('DB_NAME', swarmvote_env('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', swarmvote_env('WORDPRESS_DB_USER', 'wordpress'));
define('DB_PASSWORD', swarmvote_secret('WORDPRESS_DB_PASSWORD_FILE', '/run/secrets/wordpress_db_password'));
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = swarmvote_env('WORDPRESS_TABLE_PREFIX', 'wp_');
if (!preg_match('/^[A-Za-z0-9_]+$/', $table_prefix)) {
    swarmvote_config_fail('WORDPRESS_TABLE_PREFIX may hold only letters, digits and _');
}

// Keys and salts from one secret given to every replica, so a login made on
// one replica is valid on the others. Replacing the secret logs everyone out.
foreach (swarmvote_keys() as $name => $value) {
    if (in_array($name, SWARMVOTE_KEY_NAMES, true)) {
        define($name, $value);
    }
}

// The public URL. Fixed rather than taken from the Host header, so a request
// with a forged Host cannot change the links WordPress prints.
$swarmvote_url = rtrim(swarmvote_env('WP_URL'), '/');
if (!preg_match('#^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$#', $swarmvote_url)) {
    swarmvote_config_fail("WP_URL must be like https://wp.example.org or https://wp.localhost:8443, got '$swarmvote_url'");
}
define('WP_HOME', $swarmvote_url);
define('WP_SITEURL', $swarmvote_url);

// TLS ends at Traefik, which tells us with X-Forwarded-Proto. Without this
// WordPress believes the request is plain HTTP and redirects the admin pages
// to https:// forever. (Debian's wp-config.php does the same after this file;
// doing it here keeps the rule where the rest of the site's settings are.)
$swarmvote_proto = strtolower(trim(explode(',', $_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '')[0]));
if ($swarmvote_proto === 'https') {
    $_SERVER['HTTPS'] = 'on';
}
define('FORCE_SSL_ADMIN', str_starts_with($swarmvote_url, 'https://'));

// The code is the image's: nothing changes it at run time. An edit, a plugin
// or a theme installed from the dashboard would land on one replica only
// and vanish when its task is replaced; updates come with a new image.
define('DISALLOW_FILE_EDIT', true);
define('DISALLOW_FILE_MODS', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('WP_ALLOW_MULTISITE', false);

// WP-Cron over HTTP would have each visit's PHP request the public URL,
// which from inside the container reaches nothing (wp.localhost is not
// resolvable here, the TLS port is Traefik's). The entrypoint runs
// wp-cron.php from the command line every minute instead.
define('DISABLE_WP_CRON', true);

// Outgoing HTTP (update checks, oEmbed, pingbacks): blocked by default, so
// that machines with no Internet access do not wait for timeouts on admin
// pages. The site's own host and localhost stay allowed.
if (filter_var(swarmvote_env('WP_BLOCK_EXTERNAL_HTTP', 'true'), FILTER_VALIDATE_BOOL)) {
    define('WP_HTTP_BLOCK_EXTERNAL', true);
    if (swarmvote_env('WP_ACCESSIBLE_HOSTS') !== '') {
        define('WP_ACCESSIBLE_HOSTS', swarmvote_env('WP_ACCESSIBLE_HOSTS'));
    }
}

// Errors go to the log (php-fpm forwards them to the container's stderr),
// never into a page.
define('WP_DEBUG', false);
define('WP_DEBUG_DISPLAY', false);
