//! The vote record: who voted (`VoterId`) and for what (`Choice`).

use std::fmt;

/// One of the two options. On the wire and in storage it is `"a"` or `"b"`;
/// labels are presentation and live in configuration, so renaming an option
/// never rewrites stored votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Choice {
    A,
    B,
}

impl Choice {
    pub const ALL: [Choice; 2] = [Choice::A, Choice::B];

    pub fn as_str(self) -> &'static str {
        match self {
            Choice::A => "a",
            Choice::B => "b",
        }
    }

    /// Strict parse: exactly `"a"` or `"b"`, nothing else (no case folding,
    /// no whitespace), so that what is stored is what was validated.
    pub fn parse(value: &str) -> Option<Choice> {
        match value {
            "a" => Some(Choice::A),
            "b" => Some(Choice::B),
            _ => None,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A voter's identity: 128 random bits as 32 lowercase hex characters.
///
/// 128 bits (the issue asks for at least 96) make guessing another voter's id
/// hopeless; one canonical spelling makes the id usable as a primary key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoterId(String);

impl VoterId {
    pub const HEX_LEN: usize = 32;

    /// A fresh id from a cryptographically secure generator (ChaCha, per
    /// thread, seeded and periodically reseeded from the operating system):
    /// as unguessable as asking the OS each time, without a system call per
    /// voter on the vote service's hot path.
    pub fn generate() -> VoterId {
        use rand::RngCore;
        let mut bytes = [0u8; Self::HEX_LEN / 2];
        rand::rng().fill_bytes(&mut bytes);
        let mut hex = String::with_capacity(Self::HEX_LEN);
        for b in bytes {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        VoterId(hex)
    }

    /// Accepts only the canonical form; anything else is a malformed id.
    pub fn parse(value: &str) -> Option<VoterId> {
        let ok = value.len() == Self::HEX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| VoterId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VoterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to correlate log lines, not enough to impersonate the voter.
        write!(f, "VoterId({}…)", &self.0[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_strictly() {
        assert_eq!(Choice::parse("a"), Some(Choice::A));
        assert_eq!(Choice::parse("b"), Some(Choice::B));
        for bad in ["A", " a", "c", "", "ab", "a\0", "🗳"] {
            assert_eq!(Choice::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_canonical_and_distinct() {
        let a = VoterId::generate();
        let b = VoterId::generate();
        assert_ne!(a, b);
        assert_eq!(VoterId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let upper = "A".repeat(32);
        let short = "a".repeat(31);
        let long = "a".repeat(33);
        let nonhex = "g".repeat(32);
        for bad in [
            upper.as_str(),
            &short,
            &long,
            &nonhex,
            "",
            "'; DROP TABLE votes;--",
        ] {
            assert!(VoterId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
