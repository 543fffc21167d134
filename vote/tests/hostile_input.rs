//! Property tests of the vote service's parsers with arbitrary input: the
//! form and JSON ballots, the cookie header and the signed voter id. None
//! may panic, and each accepts exactly what it should. Failing cases are
//! kept by proptest in `hostile_input.proptest-regressions` next to this
//! file and run first on every later run (the corpus); `PROPTEST_CASES`
//! sets how many cases each property tries (default 256; tests/fuzz.sh
//! runs many more).

use common::{Choice, VoterId};
use proptest::prelude::*;
use vote::identity::{Cookie, CookieKey};
use vote::web::{parse_form, parse_json};

fn key() -> CookieKey {
    CookieKey::new(b"a key for the property tests only").expect("a long key")
}

/// A form field name or value: random bytes (`&`, `=`, `+`, `%` and bytes
/// that are not UTF-8 included), or a token near a real ballot, so that
/// almost-votes (`A`, `a+`, `%61`, `vot%65`, `a%00`) come up often.
fn form_part() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::sample::select(vec![
            "vote", "vot%65", "Vote", "vote%00", "a", "b", "A", "a+", "+a", "%61", "%62", "a%00",
            "ab", "",
        ])
        .prop_map(|t| t.as_bytes().to_vec()),
    ]
}

proptest! {
    #[test]
    fn form_ballots_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_form(&body);
    }

    /// Exactly one `vote` field of `a` or `b`, among any other fields in
    /// any order, is that vote.
    #[test]
    fn a_form_with_one_good_vote_is_that_vote(
        others in prop::collection::vec(("[b-z]{1,8}", "[a-z0-9]{0,8}"), 0..6),
        at in 0usize..6,
        choice in prop_oneof![Just(Choice::A), Just(Choice::B)],
    ) {
        let mut fields: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
        fields.insert(at.min(fields.len()), format!("vote={}", choice.as_str()));
        prop_assert_eq!(parse_form(fields.join("&").as_bytes()).ok(), Some(choice));
    }

    /// Whatever else is in a form, it is accepted only when its one `vote`
    /// field decodes to exactly `a` or `b`.
    #[test]
    fn a_form_is_accepted_only_with_one_exact_vote(
        parts in prop::collection::vec((form_part(), form_part()), 0..6),
    ) {
        let mut body = Vec::new();
        for (i, (k, v)) in parts.iter().enumerate() {
            if i > 0 { body.push(b'&'); }
            body.extend_from_slice(k);
            body.push(b'=');
            body.extend_from_slice(v);
        }
        let votes: Vec<String> = form_urlencoded::parse(&body)
            .filter(|(k, _)| k == "vote")
            .map(|(_, v)| v.into_owned())
            .collect();
        let expected = match votes.as_slice() {
            [one] => Choice::parse(one),
            _ => None,
        };
        prop_assert_eq!(parse_form(&body).ok(), expected);
    }

    #[test]
    fn json_ballots_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_json(&body);
    }

    /// JSON is accepted only as an object with the one key `vote` and a
    /// value of exactly "a" or "b".
    #[test]
    fn json_is_accepted_only_as_a_ballot(value in "[ -~]{0,6}", key_name in "vote|Vote|vote |x", extra in any::<bool>()) {
        let body = if extra {
            serde_json::json!({ key_name.clone(): value, "x": 1 })
        } else {
            serde_json::json!({ key_name.clone(): value })
        };
        let expected = if key_name == "vote" && !extra { Choice::parse(&value) } else { None };
        prop_assert_eq!(parse_json(body.to_string().as_bytes()).ok(), expected);
    }

    /// Any cookie value reads without a panic, and only a value this key
    /// signed reads as signed.
    #[test]
    fn no_made_up_cookie_reads_as_signed(value in "\\PC{0,100}") {
        match key().read(Some(&value)) {
            Cookie::Signed(id) => prop_assert_eq!(key().sign(&id), value),
            Cookie::Legacy(id) => prop_assert_eq!(id.as_str(), value.as_str()),
            Cookie::Absent | Cookie::Forged => {}
        }
    }

    /// Values in our exact shape, with a made-up signature, are forged.
    #[test]
    fn a_guessed_signature_is_forged(id in "[0-9a-f]{32}", mac in "[0-9a-f]{32}") {
        let value = format!("{id}.{mac}");
        let parsed = VoterId::parse(&id).expect("a well-formed id");
        prop_assume!(key().sign(&parsed) != value);
        prop_assert_eq!(key().read(Some(&value)), Cookie::Forged);
    }

    /// A signed id reads back as itself, with any other cookies around it
    /// in the header.
    #[test]
    fn a_signed_id_is_found_among_any_cookies(
        before in prop::collection::vec("[a-uw-z][a-z_]{0,6}=[!#-+.-:<-~]{0,10}", 0..4),
        after in prop::collection::vec("[a-uw-z][a-z_]{0,6}=[!#-+.-:<-~]{0,10}", 0..4),
    ) {
        let id = VoterId::generate();
        let mut cookies = before.clone();
        cookies.push(format!("voter_id={}", key().sign(&id)));
        cookies.extend(after);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            axum::http::HeaderValue::from_str(&cookies.join("; ")).expect("a valid header"),
        );
        prop_assert_eq!(key().read(vote::cookies::voter_cookie(&headers)), Cookie::Signed(id));
    }
}
