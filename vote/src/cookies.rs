//! The voter's cookies.
//!
//! `voter_id` is the identity: a random id signed by this service (see
//! [`crate::identity`]), `HttpOnly` (scripts never see it), `SameSite=Lax`
//! (browsers do not send it with another site's form posts), `Secure` behind
//! HTTPS. `last_vote` only lets the page show the voter's choice
//! without a lookup; it is never trusted for anything else.

use axum::http::{header, HeaderMap};
use common::Choice;

/// About 400 days, the longest lifetime browsers honour.
const MAX_AGE_SECS: u32 = 400 * 24 * 3600;

/// The value of cookie `name` from the request, if any (first one wins).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `voter_id` cookie's value as sent (read by [`crate::identity`]).
pub fn voter_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, "voter_id")
}

/// The choice last acknowledged to this browser, for display only.
pub fn last_vote(headers: &HeaderMap) -> Option<Choice> {
    cookie(headers, "last_vote").and_then(Choice::parse)
}

/// Whether the visitor came over HTTPS (Traefik sets `X-Forwarded-Proto`).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}")
}

/// `value` is the signed id ([`crate::identity::CookieKey::sign`]).
pub fn set_voter_id(value: &str, secure: bool) -> String {
    set_cookie("voter_id", value, secure)
}

pub fn set_last_vote(choice: Choice, secure: bool) -> String {
    set_cookie("last_vote", choice.as_str(), secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(
                header::COOKIE,
                HeaderValue::from_str(c).expect("valid header"),
            );
        }
        h
    }

    #[test]
    fn finds_the_voter_among_other_cookies() {
        let h = headers(&["theme=dark", "x=1; voter_id= abc.def ; last_vote=b"]);
        assert_eq!(voter_cookie(&h), Some("abc.def"));
        assert_eq!(last_vote(&h), Some(Choice::B));
        let first = headers(&["voter_id=first", "voter_id=second"]);
        assert_eq!(voter_cookie(&first), Some("first"));
    }

    #[test]
    fn missing_values_read_as_absent() {
        for bad in ["voter", "last_vote=c", "voter_idx=1"] {
            let h = headers(&[bad]);
            assert_eq!(voter_cookie(&h), None, "{bad}");
            assert_eq!(last_vote(&h), None, "{bad}");
        }
    }

    #[test]
    fn attributes_follow_the_scheme() {
        let plain = set_voter_id("v", false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        assert!(set_voter_id("v", true).ends_with("; Secure"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(is_https(&h));
    }
}
