//! Voter ids that only this service can mint.
//!
//! The `voter_id` cookie is `<id>.<mac>`: a random 128-bit id (32 hex
//! digits, what the queue and PostgreSQL store) and the first 128 bits of
//! HMAC-SHA256 over it with a key from a Docker secret (`VOTE_COOKIE_KEY`),
//! in hex. Every vote replica holds the same key, so any of them accepts an
//! id another minted; nobody without the key can make an id we accept, so
//! nobody can choose an id (another voter's, or a million fresh ones that
//! skip the page).
//!
//! Ids from before signing (a bare 32-hex id) are "legacy": such a voter
//! keeps the id if it voted before the upgrade (the worker loads those ids
//! into a Redis set, [`common::queue::LEGACY_VOTERS`]), so no vote is
//! counted twice across the upgrade; any other bare id is a new voter. The
//! decision is [`decide`], a pure function of what the cookie says and what
//! the set says.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use common::VoterId;

/// Hex digits of the MAC kept in the cookie (128 bits).
const MAC_HEX: usize = 32;
/// Bound to this use, so the key signs nothing else by accident.
const CONTEXT: &[u8] = b"swarmvote voter_id v1\0";

/// The signing key, ready to use; cheap to clone.
#[derive(Clone)]
pub struct CookieKey(Hmac<Sha256>);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// What a `voter_id` cookie says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cookie {
    /// No cookie, or one that is no id at all (a new voter).
    Absent,
    /// An id we signed.
    Signed(VoterId),
    /// A bare id, as issued before ids were signed.
    Legacy(VoterId),
    /// Shaped like a signed id, but the signature is not ours: made up, or
    /// another key's.
    Forged,
}

/// Whether the Redis set of pre-upgrade voters has a legacy id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyLookup {
    Known,
    Unknown,
    /// The worker has not finished loading the set yet.
    NotLoaded,
}

/// Who a vote is counted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This existing voter (the cookie is re-issued, signed).
    Voter(VoterId),
    /// A new voter: mint an id.
    New,
    /// Refuse: the cookie claims an id we never issued.
    Refuse,
    /// Answer 503: whether the legacy id voted before is not known yet.
    NotYet,
}

/// The rule for a vote: what the cookie says, and for a legacy id what the
/// set of pre-upgrade voters says (`lookup` is not consulted otherwise).
pub fn decide(cookie: &Cookie, lookup: impl FnOnce() -> LegacyLookup) -> Decision {
    match cookie {
        Cookie::Absent => Decision::New,
        Cookie::Signed(id) => Decision::Voter(id.clone()),
        Cookie::Forged => Decision::Refuse,
        Cookie::Legacy(id) => match lookup() {
            LegacyLookup::Known => Decision::Voter(id.clone()),
            // It never voted: nothing to count twice, so it may start anew.
            LegacyLookup::Unknown => Decision::New,
            LegacyLookup::NotLoaded => Decision::NotYet,
        },
    }
}

impl CookieKey {
    /// A key from secret bytes (at least 16).
    pub fn new(secret: &[u8]) -> Option<CookieKey> {
        (secret.len() >= 16)
            .then(|| Hmac::<Sha256>::new_from_slice(secret).ok())
            .flatten()
            .map(CookieKey)
    }

    /// A random key, for a service run by hand without one: ids it mints
    /// are good only as long as the process lives.
    pub fn random() -> CookieKey {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        CookieKey(Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC takes any key length"))
    }

    fn mac(&self, id: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(CONTEXT);
        mac.update(id.as_bytes());
        mac
    }

    /// The cookie value for `id`: `<id>.<mac>`.
    pub fn sign(&self, id: &VoterId) -> String {
        let tag = self.mac(id.as_str()).finalize().into_bytes();
        let mut value = String::with_capacity(VoterId::HEX_LEN + 1 + MAC_HEX);
        value.push_str(id.as_str());
        value.push('.');
        for b in &tag[..MAC_HEX / 2] {
            value.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            value.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        value
    }

    /// Reads a cookie value (`None`: no cookie).
    pub fn read(&self, value: Option<&str>) -> Cookie {
        let Some(value) = value else {
            return Cookie::Absent;
        };
        let Some((id, tag)) = value.split_once('.') else {
            return VoterId::parse(value).map_or(Cookie::Absent, Cookie::Legacy);
        };
        let (Some(id), Some(tag)) = (VoterId::parse(id), decode_hex(tag)) else {
            // Not our shape at all: garbage, not a claim to anyone's id.
            return Cookie::Absent;
        };
        // Constant time: a mismatch tells nothing about how close it was.
        if self.mac(id.as_str()).verify_truncated_left(&tag).is_ok() {
            Cookie::Signed(id)
        } else {
            Cookie::Forged
        }
    }
}

/// The 16 bytes of a 32-digit lowercase hex MAC.
fn decode_hex(text: &str) -> Option<[u8; MAC_HEX / 2]> {
    let digits = text.as_bytes();
    if digits.len() != MAC_HEX {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; MAC_HEX / 2];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> CookieKey {
        CookieKey::new(&[byte; 32]).expect("a long enough key")
    }

    #[test]
    fn a_signed_id_reads_back_and_nothing_else_does() {
        let k = key(1);
        let id = VoterId::generate();
        let cookie = k.sign(&id);
        assert_eq!(cookie.len(), 65);
        assert_eq!(k.read(Some(&cookie)), Cookie::Signed(id.clone()));
        // Another key's signature, a changed id, a changed or cut MAC.
        assert_eq!(key(2).read(Some(&cookie)), Cookie::Forged);
        let other = VoterId::generate();
        let swapped = format!("{}{}", other.as_str(), &cookie[32..]);
        assert_eq!(k.read(Some(&swapped)), Cookie::Forged);
        let last = if cookie.ends_with('0') { "1" } else { "0" };
        let flipped = format!("{}{last}", &cookie[..64]);
        assert_eq!(k.read(Some(&flipped)), Cookie::Forged);
        assert_eq!(
            k.read(Some(&format!("{}.{}", id.as_str(), "0".repeat(32)))),
            Cookie::Forged
        );
        assert_eq!(k.read(Some(&cookie[..64])), Cookie::Absent, "a cut MAC");
        assert_eq!(
            k.read(Some(&cookie.to_uppercase())),
            Cookie::Absent,
            "not our shape"
        );
    }

    #[test]
    fn bare_ids_are_legacy_and_garbage_is_absent() {
        let k = key(1);
        let id = VoterId::generate();
        assert_eq!(k.read(Some(id.as_str())), Cookie::Legacy(id));
        let huge = "f".repeat(10_000);
        for garbage in [
            "",
            ".",
            "..",
            "not-hex",
            "../../etc/passwd",
            huge.as_str(),
            "ABCDEF0123456789ABCDEF0123456789",
            "0123456789abcdef0123456789abcdef.",
            "0123456789abcdef0123456789abcdef.zz",
            "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef.",
            "é123456789abcdef0123456789abcde",
        ] {
            assert_eq!(k.read(Some(garbage)), Cookie::Absent, "{garbage:.40}");
        }
        assert_eq!(k.read(None), Cookie::Absent);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(CookieKey::new(b"short").is_none());
        assert!(CookieKey::new(&[7; 16]).is_some());
    }

    #[test]
    fn the_decision_table() {
        let id = VoterId::generate();
        use Decision::*;
        use LegacyLookup::*;
        let cases = [
            (Cookie::Absent, Known, New),
            (Cookie::Signed(id.clone()), Unknown, Voter(id.clone())),
            (Cookie::Forged, Known, Refuse),
            (Cookie::Legacy(id.clone()), Known, Voter(id.clone())),
            (Cookie::Legacy(id.clone()), Unknown, New),
            (Cookie::Legacy(id.clone()), NotLoaded, NotYet),
        ];
        for (cookie, lookup, expected) in cases {
            assert_eq!(
                decide(&cookie, || lookup),
                expected,
                "{cookie:?} {lookup:?}"
            );
        }
        // The set is consulted only for a legacy id.
        let asked = std::cell::Cell::new(false);
        decide(&Cookie::Signed(id.clone()), || {
            asked.set(true);
            Known
        });
        assert!(!asked.get());
    }
}
