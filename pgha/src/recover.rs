//! What a starting PostgreSQL node does when a step of its start failed
//! (`recover_from` in `postgres/entrypoint.sh`): the step that failed and
//! what the node sees now in, one action out. The shell had it as a fixed
//! ladder, whatever the cause: a failed start or follow rewound the node,
//! a failed rewind cloned it, even when the primary was simply gone (a
//! primary killed right after its promotion), so the rewind and the clone
//! failed too and the data directory was kept aside for nothing.
//!
//! The rules:
//!  * the primary does not answer: look again (the start rule finds the
//!    primary there is now); a rewind or a copy from it would fail too;
//!  * a rewind (`repmgr node rejoin --force-rewind`) failed while the
//!    primary answers: a fresh copy (the data directory is kept aside);
//!  * a start as standby, or a follow, failed while the primary answers:
//!    - on another timeline than the primary's (or its timeline unknown
//!      past the last try): this node's history forked off, rewind it;
//!    - on the primary's own timeline a fork is not the cause: try again,
//!      [`TRIES`] times in all, then rewind (a rewind finds what is wrong,
//!      or the copy after it replaces it).
//!
//! What the entrypoint observed:
//!
//! ```text
//! primary pg-2        the primary the start rule named
//! failed follow       the step that failed: start, follow or rejoin
//! answers no          whether the primary accepts connections now
//! local-tli 3         the timeline of this node's data
//! primary-tli 4       the timeline the primary writes on (-: unknown)
//! tries 1             the times this step failed in a row, this one included
//! ```
//!
//! The answer, one line: `again WHY`, `rejoin NAME WHY` or `clone NAME WHY`.

use std::fmt;

use crate::lines::{self, number, yes_no};
use crate::partners::check_name;

/// How many times a start or follow on the primary's own timeline is tried
/// before the node is rewound.
pub const TRIES: u32 = 3;

/// The step of the start that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Starting postgres as a standby.
    Start,
    /// Streaming from the primary (`repmgr standby follow`).
    Follow,
    /// Rewinding onto the primary (`repmgr node rejoin --force-rewind`).
    Rejoin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub primary: String,
    pub failed: Step,
    pub answers: bool,
    pub local_timeline: u32,
    pub primary_timeline: Option<u32>,
    pub tries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recover {
    /// Back to the start rule, after a pause.
    Again { why: String },
    /// Rewind onto the primary (`repmgr node rejoin --force-rewind`).
    Rejoin { primary: String, why: String },
    /// A fresh copy of the primary, this data directory kept aside.
    Clone { primary: String, why: String },
}

impl fmt::Display for Recover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recover::Again { why } => write!(f, "again {why}"),
            Recover::Rejoin { primary, why } => write!(f, "rejoin {primary} {why}"),
            Recover::Clone { primary, why } => write!(f, "clone {primary} {why}"),
        }
    }
}

pub fn recover(o: &Observed) -> Recover {
    let p = &o.primary;
    let what = match o.failed {
        Step::Start => "starting as its standby",
        Step::Follow => "following it",
        Step::Rejoin => "rewinding onto it",
    };
    if !o.answers {
        return Recover::Again {
            why: format!(
                "{what} failed and {p} does not answer: looking again for the primary (it may have failed over)"
            ),
        };
    }
    if o.failed == Step::Rejoin {
        return Recover::Clone {
            primary: p.clone(),
            why: format!("{what} failed while {p} answers: a fresh copy"),
        };
    }
    let mine = o.local_timeline;
    match o.primary_timeline {
        Some(theirs) if theirs != mine => Recover::Rejoin {
            primary: p.clone(),
            why: format!(
                "{what} failed, and this node's timeline {mine} is not {p}'s {theirs}: its history forked off"
            ),
        },
        _ if o.tries >= TRIES => Recover::Rejoin {
            primary: p.clone(),
            why: format!("{what} failed {} times: rewinding", o.tries),
        },
        Some(_) => Recover::Again {
            why: format!(
                "{what} failed on {p}'s own timeline {mine}, so not for a fork: trying again (try {} of {TRIES})",
                o.tries
            ),
        },
        None => Recover::Again {
            why: format!(
                "{what} failed and {p}'s timeline is unknown: trying again (try {} of {TRIES})",
                o.tries
            ),
        },
    }
}

/// Each key, and how its line reads.
const KEYS: &[(&str, &str)] = &[
    ("primary", "primary NAME"),
    ("failed", "failed start|follow|rejoin"),
    ("answers", "answers yes|no"),
    ("local-tli", "local-tli N"),
    ("primary-tli", "primary-tli N|-"),
    ("tries", "tries N"),
];

/// What the entrypoint observed (see the module header). Refused: an
/// unknown key, a key given twice or missing, a line not shaped as its key
/// reads, no try counted.
pub fn parse(input: &str) -> anyhow::Result<Observed> {
    let mut given: Vec<&str> = Vec::new();
    let mut o = Observed {
        primary: String::new(),
        failed: Step::Start,
        answers: false,
        local_timeline: 0,
        primary_timeline: None,
        tries: 0,
    };
    for line in lines::split(input)? {
        let (key, shape) = line.keyed(KEYS, &mut given)?;
        let [word] = line.words.as_slice() else {
            return Err(line.err(format!("expected {shape}")));
        };
        match key {
            "primary" => {
                line.read(check_name(word))?;
                o.primary = (*word).to_owned();
            }
            "failed" => {
                o.failed = match *word {
                    "start" => Step::Start,
                    "follow" => Step::Follow,
                    "rejoin" => Step::Rejoin,
                    _ => return Err(line.err(format!("expected {shape}"))),
                }
            }
            "answers" => o.answers = line.read(yes_no(word, "answers"))?,
            "local-tli" => o.local_timeline = line.read(number(word, "a timeline"))?,
            "primary-tli" => {
                o.primary_timeline = match *word {
                    "-" => None,
                    tli => Some(line.read(number(tli, "a timeline"))?),
                }
            }
            "tries" => {
                o.tries = line.read(number(word, "tries"))?;
                if o.tries == 0 {
                    return Err(line.err("tries counts this failure too: at least 1"));
                }
            }
            _ => unreachable!("every key of KEYS is matched"),
        }
    }
    lines::require(&given, &KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
    Ok(o)
}

#[cfg(test)]
#[path = "recover_tests.rs"]
mod tests;
