<?php
/*
 * Setup step of the wordpress image, run by the entrypoint (as www-data,
 * from the command line, never through the web) before php-fpm and nginx
 * start:
 *
 *   1. wait until the database accepts this replica's credentials, logging
 *      the server's own error while it does not;
 *   2. take the install lock, so that of replicas starting together exactly
 *      one installs;
 *   3. install the site when it is not installed, or when an install began
 *      and did not finish (no user, or the install record says it began and
 *      never that it finished: dropped first; title, admin user and e-mail
 *      from WP_TITLE, WP_ADMIN_USER, WP_ADMIN_EMAIL, password from
 *      WP_ADMIN_PASSWORD_FILE), or upgrade its tables when this image's
 *      WordPress is newer than the database; otherwise do nothing;
 *   4. release the lock.
 *
 * Exit status: 0 ready to serve; 1 gave up (database unreachable for
 * WORDPRESS_DB_WAIT_S seconds, lock not had in WORDPRESS_LOCK_WAIT_S, install
 * failed); 2 configuration error; 3 the database connection was lost part
 * way (a Galera node restarting in a rolling update): the entrypoint runs
 * setup again, which finds where it stopped (an install that began and did
 * not finish is redone).
 *
 * The lock is a row lock, not GET_LOCK(): production is Galera, which lists
 * GET_LOCK() among the explicit locks it does not support, and some MariaDB
 * releases refuse it outright when wsrep_on=ON (MDEV-30473: 10.6.13 and
 * 10.11.3 answer "doesn't yet support 'GET_LOCK in cluster'"; Debian's
 * 10.11.19 accepts it again). SELECT ... FOR UPDATE in a transaction held
 * open on a connection of its own works everywhere and behaves the same way:
 * other replicas block on it, and the server drops it when the connection
 * dies, so a crashed installer leaves no stale lock. Like GET_LOCK(), a
 * Galera row lock holds on one node only; that is enough because HAProxy
 * sends every client to the same single writer.
 */

const WORDPRESS_DIR = '/usr/share/wordpress';
const SITE_CONFIG = '/etc/wordpress/config-default.php';
const LOCK_TABLE_SUFFIX = 'swarmvote_lock';
/*
 * The install record: one row, 'began' just before an install and
 * 'finished' once its last step is done. A site whose record says 'began'
 * was left by an install that died part way (after its admin user was
 * written, so the user count cannot tell). A site with no record was
 * installed before the record existed, and counts as finished.
 */
const INSTALL_TABLE_SUFFIX = 'swarmvote_install';

/** One log line on stderr, in the entrypoint's format. */
function say(string $message): void
{
    fwrite(STDERR, gmdate('Y-m-d\TH:i:s\Z') . " wordpress-setup $message\n");
}

/**
 * Logs and exits with $status. A failure (1) right after a query that
 * failed because the database went away or is not serving (a Galera node
 * that left the Primary component answers 1047) is worth another try: 3.
 */
function stop(int $status, string $message): never
{
    if ($status === 1 && in_array(last_query_error(), LOST_CONNECTION_CODES, true)) {
        $status = 3;
        $message .= ' (the last query failed with ' . last_query_error() . ': the database went away or is not serving)';
    }
    say(($status === 2 ? 'config error: ' : 'error: ') . $message);
    exit($status);
}

/** A positive integer from the environment. */
function env_seconds(string $name, int $default): int
{
    $value = swarmvote_env($name, (string) $default);
    if (!ctype_digit($value) || (int) $value < 1) {
        stop(2, "$name must be a positive number of seconds, got '$value'");
    }
    return (int) $value;
}

/** [host, port] from a WordPress DB_HOST ("host", "host:port"). */
function db_address(string $db_host): array
{
    if (preg_match('/^(.+):([0-9]+)$/', $db_host, $m)) {
        return [trim($m[1], '[]'), (int) $m[2]];
    }
    return [$db_host, 3306];
}

/** A new connection with this replica's credentials; throws mysqli_sql_exception. */
function db_connect(): mysqli
{
    [$host, $port] = db_address(DB_HOST);
    $db = mysqli_init();
    $db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 5);
    // @: a failed host lookup also raises a PHP warning that repeats the
    // exception's message; the caller logs the exception.
    @$db->real_connect($host, DB_USER, DB_PASSWORD, DB_NAME, $port);
    $db->set_charset('utf8mb4');
    return $db;
}

/**
 * Why the server cannot serve us yet, or '' when it can. A Galera node that
 * is still joining accepts connections but refuses statements (1047, "WSREP
 * has not yet prepared node for application use") until wsrep_ready is ON.
 */
function not_ready(mysqli $db): string
{
    $row = $db->query("SHOW GLOBAL STATUS LIKE 'wsrep_ready'")->fetch_row();
    return $row === null || $row[1] === 'ON' ? '' : "the node is not ready yet (wsrep_ready={$row[1]})";
}

/**
 * Error codes that mean the server went away or is not serving yet (a
 * Galera node restarting), as opposed to a refusal: worth another try.
 */
const LOST_CONNECTION_CODES = [
    1047, // ER_UNKNOWN_COM_ERROR: WSREP has not yet prepared node for application use
    1927, // ER_CONNECTION_KILLED
    2002, // CR_CONNECTION_ERROR
    2003, // CR_CONN_HOST_ERROR
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
];

/** The error code of WordPress's last query, 0 when none or unknown. */
function last_query_error(): int
{
    global $wpdb;
    try {
        return isset($wpdb) && $wpdb->dbh instanceof mysqli ? mysqli_errno($wpdb->dbh) : 0;
    } catch (Throwable $e) {
        return 0; // a closed connection
    }
}

/** Stops with 3 (try again) for a lost connection, 1 for any other error. */
function stop_on_sql_error(string $doing, mysqli_sql_exception $e): never
{
    $lost = in_array($e->getCode(), LOST_CONNECTION_CODES, true);
    stop($lost ? 3 : 1, "$doing: " . $e->getMessage() . ($lost ? ' (the database connection was lost)' : ''));
}

/** Waits until the database accepts us and serves; gives up after $limit seconds. */
function wait_for_database(int $limit): void
{
    $started = time();
    $last_error = '';
    $last_logged = 0;
    for ($attempt = 1; ; $attempt++) {
        try {
            $db = db_connect();
            $error = not_ready($db);
            $db->close();
            if ($error === '') {
                if ($attempt > 1) {
                    say('the database is reachable now');
                }
                return;
            }
        } catch (mysqli_sql_exception $e) {
            $error = $e->getMessage();
        }
        $waited = time() - $started;
        $hint = str_contains($error, 'Access denied')
            ? ' (the password in WORDPRESS_DB_PASSWORD_FILE, or the user, does not match the database)'
            : '';
        if ($waited >= $limit) {
            stop(1, sprintf('giving up after %d s: cannot connect to %s as %s: %s%s',
                $waited, DB_HOST, DB_USER, $error, $hint));
        }
        // Every new error at once, the same error every 30 s.
        if ($error !== $last_error || time() - $last_logged >= 30) {
            say(sprintf('waiting for the database %s (%d s so far, giving up at %d s): %s%s',
                DB_HOST, $waited, $limit, $error, $hint));
            $last_error = $error;
            $last_logged = time();
        }
        sleep(3);
    }
}

/**
 * Takes the install lock on a connection of its own and returns that
 * connection: the lock lasts until it is closed (or this process dies).
 */
function take_install_lock(string $table, int $limit): mysqli
{
    $db = db_connect();
    $db->query("CREATE TABLE IF NOT EXISTS `$table` (id TINYINT UNSIGNED NOT NULL PRIMARY KEY) ENGINE=InnoDB");
    // The row, once. Not INSERT IGNORE every time: while a replica holds the
    // lock, inserting the existing row waits for it, silently, and fails
    // after innodb_lock_wait_timeout. A plain SELECT never waits.
    if ($db->query("SELECT id FROM `$table` WHERE id = 1")->num_rows === 0) {
        try {
            $db->query("INSERT IGNORE INTO `$table` (id) VALUES (1)");
        } catch (mysqli_sql_exception $e) {
            if ($e->getCode() !== 1205) { // 1205: another replica inserted and locked it
                throw $e;
            }
        }
    }
    $db->begin_transaction();
    $started = time();
    $wait = 'NOWAIT';
    while (true) {
        try {
            $db->query("SELECT id FROM `$table` WHERE id = 1 FOR UPDATE $wait");
            return $db;
        } catch (mysqli_sql_exception $e) {
            if ($e->getCode() !== 1205) { // ER_LOCK_WAIT_TIMEOUT, also NOWAIT's answer
                throw $e;
            }
        }
        $waited = time() - $started;
        if ($waited >= $limit) {
            stop(1, "another replica has held the install lock for $waited s; giving up");
        }
        say("another replica holds the install lock (installing or upgrading); waiting ($waited s)");
        $wait = 'WAIT 10';
    }
}

/**
 * Prepares loading WordPress in install mode: wp_die() becomes a log line
 * and exit 1. (The caller loads it: wp-load.php must run in global scope.)
 */
function prepare_wordpress(string $host): void
{
    global $wp_filter;
    // Debian's wp-config.php picks the config file by Host; any host ends at
    // config-default.php, but it must be set.
    $_SERVER['HTTP_HOST'] = $host;
    // Hooks registered before WordPress loads (WP_Hook reads them at start).
    $wp_filter = [
        'wp_die_handler' => [10 => [[
            'function' => fn() => function ($message) {
                $text = is_wp_error($message) ? $message->get_error_message() : (string) $message;
                $text = trim(preg_replace('/\s+/', ' ', strip_tags($text)));
                // A lost connection is worth another try, and so is a stop
                // whose last query failed for that reason (a Galera node
                // leaving the cluster: "tables are unavailable" after 1047);
                // other stops are not.
                $lost = stripos($text, 'Error establishing a database connection') !== false
                    || stripos($text, 'Error reconnecting to the database') !== false
                    || in_array(last_query_error(), LOST_CONNECTION_CODES, true);
                stop($lost ? 3 : 1, "WordPress stopped: $text");
            },
            'accepted_args' => 1,
        ]]],
        // No HTTP during setup: the install's pretty-permalink probe requests
        // the public URL, which is not reachable from here; set it below.
        'pre_http_request' => [10 => [[
            'function' => fn() => new WP_Error('swarmvote_setup', 'no HTTP requests during setup'),
            'accepted_args' => 1,
        ]]],
    ];
    define('WP_INSTALLING', true);
}

/**
 * The admin password, from WP_ADMIN_PASSWORD_FILE. deploy.sh gives it only
 * until the site is installed.
 */
function admin_password(): string
{
    if (swarmvote_env('WP_ADMIN_PASSWORD_FILE', '') === '') {
        stop(2, 'the site is not installed, and no admin password is given (WP_ADMIN_PASSWORD_FILE): '
            . './deploy.sh mounts it until the site is installed');
    }
    return swarmvote_secret('WP_ADMIN_PASSWORD_FILE', '');
}

/** The install inputs from the environment; reports every problem at once. */
function install_settings(string $url_host): array
{
    $settings = [
        'title' => swarmvote_env('WP_TITLE', 'swarmvote'),
        'user' => swarmvote_env('WP_ADMIN_USER', 'admin'),
        'email' => swarmvote_env('WP_ADMIN_EMAIL', "admin@$url_host"),
        'password' => admin_password(),
        'permalinks' => swarmvote_env('WP_PERMALINK_STRUCTURE', '/%postname%/'),
    ];
    $problems = [];
    if (!validate_username($settings['user']) || sanitize_user($settings['user'], true) !== $settings['user']) {
        $problems[] = "WP_ADMIN_USER '{$settings['user']}' is not a valid WordPress user name";
    }
    if (!is_email($settings['email'])) {
        $problems[] = "WP_ADMIN_EMAIL '{$settings['email']}' is not an e-mail address";
    }
    if (strlen($settings['password']) < 12) {
        $problems[] = 'the admin password (WP_ADMIN_PASSWORD_FILE) is shorter than 12 characters';
    }
    if ($problems) {
        stop(2, implode('; ', $problems));
    }
    return $settings;
}

/** The number of users, or 0 when the users table cannot be read. */
function user_count(): int
{
    global $wpdb;
    try {
        return (int) $wpdb->get_var("SELECT COUNT(*) FROM $wpdb->users");
    } catch (Throwable $e) {
        return 0;
    }
}

/** Writes the install record; stops when it cannot (the install must not go on unrecorded). */
function record_install(string $state): void
{
    global $wpdb, $table_prefix;
    $table = $table_prefix . INSTALL_TABLE_SUFFIX;
    $done = $wpdb->query("CREATE TABLE IF NOT EXISTS `$table` (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, "
        . 'state VARCHAR(16) NOT NULL, at DATETIME NOT NULL) ENGINE=InnoDB') !== false
        && $wpdb->query($wpdb->prepare("REPLACE INTO `$table` (id, state, at) VALUES (1, %s, UTC_TIMESTAMP())", $state)) !== false;
    if (!$done) {
        stop(1, "cannot record the install as $state: " . $wpdb->last_error);
    }
}

/** $text escaped for a LIKE pattern (its _ and % match themselves). */
function like_literal(string $text): string
{
    return addcslashes($text, '\\_%');
}

/**
 * Drops the site's tables, all but the install lock's, on a connection of
 * its own (not the lock's: DDL would commit the lock's transaction and free
 * the lock). Such a site holds nothing: no replica serves before its setup
 * finished, and setup waits for the lock the dying installer held.
 */
function drop_site(string $why, string $prefix, string $lock_table): void
{
    try {
        $db = db_connect();
        $tables = array_column($db->query("SHOW TABLES LIKE '"
            . $db->real_escape_string(like_literal($prefix)) . "%'")->fetch_all(), 0);
        $tables = array_values(array_diff($tables, [$lock_table]));
        say("$why: dropping its " . count($tables) . ' tables and installing again');
        foreach ($tables as $table) {
            $db->query('DROP TABLE IF EXISTS `' . str_replace('`', '``', $table) . '`');
        }
        $db->close();
    } catch (mysqli_sql_exception $e) {
        stop_on_sql_error('cannot drop the unfinished install', $e);
    }
}

/**
 * The install record's state ('began', 'finished'), or '' when none. Read
 * before WordPress loads: WordPress dies on loading a site whose install
 * stopped before its options were written ("One or more database tables
 * are unavailable"), so such a site must be gone first.
 */
function install_record(string $prefix): string
{
    $table = $prefix . INSTALL_TABLE_SUFFIX;
    try {
        $db = db_connect();
        $found = $db->query("SHOW TABLES LIKE '" . $db->real_escape_string(like_literal($table)) . "'")->num_rows > 0;
        $row = $found ? $db->query("SELECT state FROM `$table` WHERE id = 1")->fetch_row() : null;
        $db->close();
        return $row === null ? '' : (string) $row[0];
    } catch (mysqli_sql_exception $e) {
        stop_on_sql_error('cannot read the install record', $e);
    }
}

/** Installs the site, unless installed; upgrades its tables when needed. */
function install_or_upgrade(string $url_host, string $lock_table): void
{
    global $wp_db_version, $wp_rewrite, $table_prefix;
    wp_cache_delete('is_blog_installed');
    if (is_blog_installed() && user_count() === 0) {
        drop_site('the site looks installed but has no user (an install that did not finish)', $table_prefix, $lock_table);
        wp_cache_flush();
    }
    if (is_blog_installed()) {
        $have = (int) get_option('db_version');
        if ($have < $wp_db_version) {
            say("upgrading the database from version $have to $wp_db_version");
            wp_upgrade();
            say('upgraded the database');
        } else {
            say('the site is already installed: nothing to do');
        }
        return;
    }
    $s = install_settings($url_host);
    say(sprintf("installing the site '%s' (admin user %s, %s)", $s['title'], $s['user'], $s['email']));
    record_install('began');
    $result = wp_install($s['title'], $s['user'], $s['email'], true, '', wp_slash($s['password']));
    if (empty($result['user_id']) || is_wp_error($result['user_id'])) {
        stop(1, 'the install created no admin user');
    }
    $wp_rewrite->set_permalink_structure($s['permalinks']);
    flush_rewrite_rules(false); // false: no .htaccess to write (nginx)
    record_install('finished');
    say(sprintf('installed the site at %s (WordPress %s)', WP_HOME, get_bloginfo('version')));
}

// wp_install() e-mails the admin; there is no mail transport in the image.
function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password)
{
}

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
require_once SITE_CONFIG; // the settings only: constants, no WordPress yet
$url_host = parse_url(WP_HOME, PHP_URL_HOST);
$db_wait = env_seconds('WORDPRESS_DB_WAIT_S', 300);
$lock_wait = env_seconds('WORDPRESS_LOCK_WAIT_S', 600);

wait_for_database($db_wait);
try {
    $lock = take_install_lock($table_prefix . LOCK_TABLE_SUFFIX, $lock_wait);
} catch (mysqli_sql_exception $e) {
    stop_on_sql_error('cannot take the install lock', $e);
}
if (install_record($table_prefix) === 'began') {
    drop_site('an install of the site began and never finished', $table_prefix, $table_prefix . LOCK_TABLE_SUFFIX);
}
prepare_wordpress($url_host);
require_once WORDPRESS_DIR . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
install_or_upgrade($url_host, $table_prefix . LOCK_TABLE_SUFFIX);
try {
    $lock->rollback(); // releases the lock; the transaction wrote nothing
    $lock->close();
} catch (mysqli_sql_exception $e) {
    // A lost lock connection has released the lock already.
}
exit(0);
