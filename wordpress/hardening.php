<?php
/**
 * Plugin Name: swarmvote hardening
 * Description: Who wrote what is not a list of login names: the REST API's
 *   user endpoints and the author archives answer only to signed-in users.
 *
 * A must-use plugin (wp-content/mu-plugins, installed by the image), so no
 * admin can switch it off. The block editor, which lists authors, is used
 * signed in and keeps working.
 */

// The REST routes /wp/v2/users and /wp/v2/users/<id>, also reachable as
// ?rest_route=/wp/v2/users: gone for visitors (404 rest_no_route).
add_filter('rest_endpoints', static function (array $endpoints): array {
    if (!is_user_logged_in()) {
        foreach (array_keys($endpoints) as $route) {
            if (str_starts_with($route, '/wp/v2/users')) {
                unset($endpoints[$route]);
            }
        }
    }
    return $endpoints;
});

// /?author=1 redirects to /author/<login>/, which names the login: for
// visitors, author archives are simply not found.
add_action('template_redirect', static function (): void {
    if (!is_user_logged_in() && (is_author() || isset($_GET['author']))) {
        global $wp_query;
        $wp_query->set_404();
        status_header(404);
        nocache_headers();
    }
}, 0);
add_filter('redirect_canonical', static function ($redirect, $requested) {
    return (!is_user_logged_in() && isset($_GET['author'])) ? false : $redirect;
}, 10, 2);
