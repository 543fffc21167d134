//! The voter's cookies.
//!
//! `voter_id` is the identity: random, `HttpOnly` (scripts never see it),
//! `SameSite=Lax` (another site's form cannot vote as this voter), `Secure`
//! behind HTTPS. `last_vote` only lets the page show the voter's choice
//! without a lookup; it is never trusted for anything else.

use axum::http::{header, HeaderMap};
use common::{Choice, VoterId};

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

/// The voter's id, or `None` when it is missing or malformed (the caller
/// issues a fresh one).
pub fn voter_id(headers: &HeaderMap) -> Option<VoterId> {
    cookie(headers, "voter_id").and_then(VoterId::parse)
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

pub fn set_voter_id(id: &VoterId, secure: bool) -> String {
    set_cookie("voter_id", id.as_str(), secure)
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
        let id = VoterId::generate();
        let h = headers(&[
            "theme=dark",
            &format!("x=1; voter_id={}; last_vote=b", id.as_str()),
        ]);
        assert_eq!(voter_id(&h), Some(id));
        assert_eq!(last_vote(&h), Some(Choice::B));
    }

    #[test]
    fn malformed_values_read_as_absent() {
        let long = format!("voter_id={}", "a".repeat(5000));
        for bad in [
            "voter_id=",
            "voter_id=../../etc",
            long.as_str(),
            "voter_id",
            "last_vote=c",
        ] {
            let h = headers(&[bad]);
            assert_eq!(voter_id(&h), None, "{bad}");
            assert_eq!(last_vote(&h), None, "{bad}");
        }
    }

    #[test]
    fn attributes_follow_the_scheme() {
        let id = VoterId::generate();
        let plain = set_voter_id(&id, false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        assert!(set_voter_id(&id, true).ends_with("; Secure"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(is_https(&h));
    }
}
