//! Where a vote request was sent from: only this site's own pages may post
//! a vote from a browser, so no other site can make its visitors vote (or
//! hand them a new voter id) behind their backs.
//!
//! Browsers say who started a request in two headers, and we read both:
//! - `Sec-Fetch-Site` (every current browser): `same-origin` is this site,
//!   `none` is the user's own action (a bookmark, the address bar); anything
//!   else, `same-site` included, is another page. A sibling subdomain (the
//!   WordPress site, say) is a different origin and may not vote for anyone.
//! - `Origin`, for browsers without `Sec-Fetch-Site`: it must name the host
//!   the request was sent to. `Origin: null` (a sandboxed frame, a
//!   `data:` page) is refused.
//!
//! A request with neither header is not from a browser (curl, the load
//! generator, another program): it carries no visitor's cookies but its own,
//! so there is nothing to forge, and it is allowed.

use axum::http::{header, HeaderMap};

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This site's own page, the user's own action, or not a browser.
    Allowed,
    /// Another site (or an opaque origin) sent it.
    CrossSite,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// The host and port of an `Origin` value (`https://vote.example:8443` →
/// `vote.example:8443`), or `None` when it is not an http(s) origin.
fn origin_authority(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))?;
    // An origin is scheme://host[:port], nothing after it.
    (!rest.is_empty() && !rest.contains(['/', '?', '#', '@'])).then_some(rest)
}

/// Same host and port, ignoring letter case and a port the scheme implies.
fn same_authority(origin: &str, host: &str) -> bool {
    let strip = |a: &str, default_port: &str| -> String {
        let a = a.to_ascii_lowercase();
        match a.strip_suffix(default_port) {
            Some(bare) => bare.to_owned(),
            None => a,
        }
    };
    let default_port = if origin.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    origin_authority(origin)
        .is_some_and(|authority| strip(authority, default_port) == strip(host, default_port))
}

/// Decides whether a state-changing request may be served.
pub fn check(headers: &HeaderMap) -> Origin {
    if let Some(site) = header_str(headers, "sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Origin::Allowed,
            _ => Origin::CrossSite,
        };
    }
    match header_str(headers, header::ORIGIN.as_str()) {
        None => Origin::Allowed,
        Some(origin) => {
            let host = header_str(headers, header::HOST.as_str()).unwrap_or("");
            if same_authority(origin, host) {
                Origin::Allowed
            } else {
                Origin::CrossSite
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Request headers as (name, raw value) pairs.
    type Pairs<'a> = &'a [(&'static str, &'a [u8])];

    fn headers(pairs: Pairs<'_>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                *name,
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        h
    }

    #[test]
    fn the_table() {
        use Origin::{Allowed, CrossSite};
        let cases: &[(Pairs<'_>, Origin)] = &[
            // Not a browser: nothing to forge.
            (&[], Allowed),
            (&[("host", b"vote.localhost")], Allowed),
            // Fetch metadata decides when present, whatever Origin says.
            (&[("sec-fetch-site", b"same-origin")], Allowed),
            (&[("sec-fetch-site", b"none")], Allowed),
            (&[("sec-fetch-site", b"cross-site")], CrossSite),
            (&[("sec-fetch-site", b"same-site")], CrossSite),
            (&[("sec-fetch-site", b"")], CrossSite),
            (&[("sec-fetch-site", b"SAME-ORIGIN")], CrossSite),
            (&[("sec-fetch-site", b"same-origin\xff")], CrossSite),
            (
                &[
                    ("sec-fetch-site", b"cross-site"),
                    ("origin", b"https://vote.localhost"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            // Origin against Host.
            (
                &[
                    ("origin", b"https://vote.localhost"),
                    ("host", b"vote.localhost"),
                ],
                Allowed,
            ),
            (
                &[
                    ("origin", b"https://Vote.Localhost:443"),
                    ("host", b"vote.localhost"),
                ],
                Allowed,
            ),
            (
                &[
                    ("origin", b"https://vote.localhost:8443"),
                    ("host", b"vote.localhost:8443"),
                ],
                Allowed,
            ),
            (
                &[
                    ("origin", b"https://vote.localhost:8443"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (
                &[
                    ("origin", b"https://evil.example"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (
                &[
                    ("origin", b"https://vote.localhost.evil.example"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (
                &[
                    ("origin", b"https://wp.localhost"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (
                &[("origin", b"null"), ("host", b"vote.localhost")],
                CrossSite,
            ),
            (
                &[
                    ("origin", b"https://vote.localhost/x"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (
                &[
                    ("origin", b"https://user@vote.localhost"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (&[("origin", b"https://")], CrossSite),
            (&[("origin", b"https://vote.localhost")], CrossSite),
            (
                &[
                    ("origin", b"ftp://vote.localhost"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
            (
                &[
                    ("origin", b"https://vote.localhost\xff"),
                    ("host", b"vote.localhost"),
                ],
                CrossSite,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(check(&headers(pairs)), *expected, "{pairs:?}");
        }
    }
}
