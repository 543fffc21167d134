//! The queue protocol between vote (producer) and worker (consumer).
//!
//! Votes travel through one Redis Stream. An entry's id (`<ms>-<seq>`, given
//! by the primary) is a total order over all votes, which is what makes "the
//! latest vote wins" decidable in PostgreSQL whatever order batches arrive in.

use std::fmt;
use std::str::FromStr;

use crate::{Choice, VoterId};

/// The stream that carries votes.
pub const STREAM: &str = "votes";
/// The consumer group every worker joins; one group means each entry is
/// handled by one worker at a time.
pub const GROUP: &str = "workers";
/// Where entries that can never be stored go, for a person to look at.
pub const DEAD_LETTER_STREAM: &str = "votes:dead";
/// Entry field with the voter's id.
pub const FIELD_VOTER: &str = "voter_id";
/// Entry field with the choice, `a` or `b`.
pub const FIELD_VOTE: &str = "vote";
/// The ids of voters who voted before voter ids were signed (a Redis set): a
/// worker loads them once from PostgreSQL and the queue, and vote lets such
/// a voter keep an unsigned id (see vote's `identity`).
pub const LEGACY_VOTERS: &str = "voters:legacy";
/// Set (to the loading time, ms) once [`LEGACY_VOTERS`] is complete.
pub const LEGACY_VOTERS_LOADED: &str = "voters:legacy:loaded";

/// A stream entry id, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: i64,
    pub seq: i64,
}

impl EntryId {
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// The smallest id greater than this one.
    pub fn successor(self) -> EntryId {
        if self.seq == i64::MAX {
            EntryId {
                ms: self.ms + 1,
                seq: 0,
            }
        } else {
            EntryId {
                ms: self.ms,
                seq: self.seq + 1,
            }
        }
    }
}

impl FromStr for EntryId {
    type Err = Malformed;

    /// Parses `<ms>-<seq>`. Both halves must fit PostgreSQL's `bigint`.
    fn from_str(s: &str) -> Result<Self, Malformed> {
        let (ms, seq) = s.split_once('-').ok_or(Malformed::Id)?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(Malformed::Id);
        }
        Ok(EntryId {
            ms: ms.parse().map_err(|_| Malformed::Id)?,
            seq: seq.parse().map_err(|_| Malformed::Id)?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A vote as it travels through the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteEntry {
    pub id: EntryId,
    pub voter: VoterId,
    pub choice: Choice,
}

/// Why an entry cannot be stored. The label is used in metrics and in the
/// dead-letter stream, so it stays short and stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("entry id is not <ms>-<seq> within bigint range")]
    Id,
    #[error("field {FIELD_VOTER} is missing or not a 32-character lowercase hex id")]
    Voter,
    #[error("field {FIELD_VOTE} is missing or not \"a\" or \"b\"")]
    Vote,
    #[error("entry has fields other than exactly {FIELD_VOTER} and {FIELD_VOTE}")]
    Fields,
}

impl Malformed {
    pub fn label(self) -> &'static str {
        match self {
            Malformed::Id => "id",
            Malformed::Voter => "voter_id",
            Malformed::Vote => "vote",
            Malformed::Fields => "fields",
        }
    }
}

/// The fields of a new entry, in the order they are written.
pub fn encode(voter: &VoterId, choice: Choice) -> [(&'static str, &str); 2] {
    [(FIELD_VOTER, voter.as_str()), (FIELD_VOTE, choice.as_str())]
}

/// Validates an entry read from the stream. Anything but exactly the two
/// expected fields with valid values is malformed: a stray field may be a
/// producer bug, and guessing would store something nobody validated.
pub fn decode(id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<VoteEntry, Malformed> {
    let id: EntryId = id.parse()?;
    if fields.len() != 2 {
        return Err(Malformed::Fields);
    }
    let mut voter = None;
    let mut choice = None;
    for (key, value) in fields {
        let value = std::str::from_utf8(value).ok();
        match key.as_slice() {
            k if k == FIELD_VOTER.as_bytes() => {
                voter = Some(value.and_then(VoterId::parse).ok_or(Malformed::Voter)?);
            }
            k if k == FIELD_VOTE.as_bytes() => {
                choice = Some(value.and_then(Choice::parse).ok_or(Malformed::Vote)?);
            }
            _ => return Err(Malformed::Fields),
        }
    }
    Ok(VoteEntry {
        id,
        voter: voter.ok_or(Malformed::Voter)?,
        choice: choice.ok_or(Malformed::Vote)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn round_trips_a_vote() {
        let voter = VoterId::generate();
        let encoded = encode(&voter, Choice::B);
        let entry = decode("1700000000000-3", &fields(&encoded)).expect("valid");
        assert_eq!(entry.voter, voter);
        assert_eq!(entry.choice, Choice::B);
        assert_eq!(
            entry.id,
            EntryId {
                ms: 1_700_000_000_000,
                seq: 3
            }
        );
    }

    #[test]
    fn ids_order_like_redis() {
        let a: EntryId = "5-10".parse().expect("id");
        let b: EntryId = "6-0".parse().expect("id");
        assert!(a < b);
        assert!(a < a.successor());
        assert_eq!(a.successor().to_string(), "5-11");
        for bad in [
            "",
            "5",
            "-1-2",
            "5-",
            "a-1",
            "99999999999999999999-0",
            "1-2-3",
        ] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_malformed_entries() {
        let voter = VoterId::generate();
        let v = voter.as_str();
        let cases: [(&[(&str, &str)], Malformed); 6] = [
            (&[("voter_id", v)], Malformed::Fields),
            (&[("voter_id", v), ("vote", "c")], Malformed::Vote),
            (&[("voter_id", "x"), ("vote", "a")], Malformed::Voter),
            (&[("voter_id", v), ("other", "a")], Malformed::Fields),
            (&[("vote", "a"), ("vote", "b")], Malformed::Voter),
            (
                &[("voter_id", v), ("vote", "a"), ("x", "y")],
                Malformed::Fields,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(decode("1-1", &fields(pairs)), Err(expected), "{pairs:?}");
        }
        let bad_utf8 = vec![
            (b"voter_id".to_vec(), v.as_bytes().to_vec()),
            (b"vote".to_vec(), vec![0xff]),
        ];
        assert_eq!(decode("1-1", &bad_utf8), Err(Malformed::Vote));
    }
}
