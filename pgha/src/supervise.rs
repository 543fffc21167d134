//! The two checks the entrypoint makes while its postgres runs
//! (`supervise` in `postgres/entrypoint.sh`): a primary stops when a
//! partner is a primary on a newer timeline (`pgha fence`), and a standby
//! that does not stream from the primary for a while restarts (`pgha
//! stray`). What the check saw in, one line out; the next start of the
//! node follows or rejoins the primary (see [`crate::start`]).
//!
//! `pgha fence`, on a node whose postgres runs as a primary:
//!
//! ```text
//! me 3
//! partner pg-2 primary 4
//! partner pg-3 standby
//! ```
//!
//! ```text
//! me TLI                      the timeline this node writes on
//! partner NAME primary TLI    a partner runs as a primary, writing on TLI
//! partner NAME standby        a partner answered and runs as a standby
//! partner NAME knows TLI      a partner whose data is a standby's (running
//!                             or not) knows of timeline TLI
//! partner NAME silent         a partner did not answer
//! ```
//!
//! The answer: `stay` or `fence WHY`.
//!
//! `pgha stray`, on a node whose postgres runs as a standby:
//!
//! ```text
//! primary pg-1 3
//! receiver streaming pg-2
//! stray-for 20
//! limit 30
//! ```
//!
//! ```text
//! primary none
//! primary NAME TLI                each partner that answers as a
//!                                 registered primary (find_primary), one
//!                                 line each, and its write timeline: the
//!                                 one on the newest is the primary; two on
//!                                 it are no basis to judge, and it is ok
//! receiver STATUS [HOST]|none     its WAL receiver (pg_stat_wal_receiver)
//! stray-for S|none                seconds since a check first found it
//!                                 stray (none: the last check did not)
//! limit S                         STRAY_LIMIT
//! ```
//!
//! The answer: `ok` (it streams from the primary, or there is none to
//! follow: the entrypoint stops its clock), `stray` (it does not: the clock
//! runs, or starts now) or `restart WHY`.

use std::fmt;

use anyhow::bail;

use crate::lines::{self, number};
use crate::partners::check_name;
use crate::rules::{self, Primary};

/// A partner as a running primary's fence check saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs as a primary, writing on this timeline.
    Primary {
        timeline: u32,
    },
    Standby,
    /// A standby's data (running or not) that knows of this timeline: it
    /// streamed it, and may have confirmed commits on it.
    Knows {
        timeline: u32,
    },
    Silent,
}

/// What a running primary does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    Stay,
    /// A partner was promoted after this node: stop (and exit), so that the
    /// next start rejoins it as a standby. Why, for the log.
    Stop {
        why: String,
    },
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fence::Stay => f.write_str("stay"),
            Fence::Stop { why } => write!(f, "fence {why}"),
        }
    }
}

/// The fence rule: this node writes on timeline `mine`; the first partner
/// (in the order seen) that runs as a primary on a newer timeline was
/// promoted after it, so this node was superseded. So was it when a
/// standby knows of a newer timeline, even if that timeline's primary is
/// down now (killed right after its promotion): that standby may have
/// confirmed commits on it, and cannot follow this node. (A down former
/// primary's own newer timeline is no reason: if no standby followed it,
/// nothing on it was acknowledged; see [`crate::start`].)
/// A promotion always starts a new timeline: a timeline no newer than
/// this node's is no reason to stop.
pub fn fence(mine: u32, partners: &[(String, Role)]) -> Fence {
    for (name, role) in partners {
        match *role {
            Role::Primary { timeline } if timeline > mine => {
                return Fence::Stop {
                    why: format!(
                        "{name} is the primary on a newer timeline ({timeline} > {mine}): this node was superseded"
                    ),
                };
            }
            Role::Knows { timeline } if timeline > mine => {
                return Fence::Stop {
                    why: format!(
                        "{name} knows of a newer timeline ({timeline} > {mine}): another node was promoted after this one"
                    ),
                };
            }
            _ => {}
        }
    }
    Fence::Stay
}

/// What `pgha fence` reads (see the module header): this node's timeline
/// and each partner, in input order.
pub fn parse_fence(input: &str) -> anyhow::Result<(u32, Vec<(String, Role)>)> {
    const PARTNER: &str =
        "partner NAME primary TLI, partner NAME standby, partner NAME knows TLI or partner NAME silent";
    let mut mine = None;
    let mut partners: Vec<(String, Role)> = Vec::new();
    for line in lines::split(input)? {
        match (line.key, line.words.as_slice()) {
            ("me", [tli]) => {
                if mine
                    .replace(line.read(number(tli, "a timeline"))?)
                    .is_some()
                {
                    return Err(line.err("me given twice"));
                }
            }
            ("me", _) => return Err(line.err("expected me TLI")),
            ("partner", [name, rest @ ..]) => {
                line.read(check_name(name))?;
                let role = match rest {
                    ["primary", tli] => Role::Primary {
                        timeline: line.read(number(tli, "a timeline"))?,
                    },
                    ["standby"] => Role::Standby,
                    ["knows", tli] => Role::Knows {
                        timeline: line.read(number(tli, "a timeline"))?,
                    },
                    ["silent"] => Role::Silent,
                    _ => return Err(line.err(format!("expected {PARTNER}"))),
                };
                if partners.iter().any(|(known, _)| known.as_str() == *name) {
                    return Err(line.err(format!("partner {name} given twice")));
                }
                partners.push((name.to_string(), role));
            }
            ("partner", _) => return Err(line.err(format!("expected {PARTNER}"))),
            (key, _) => return Err(line.err(format!("unknown key {key:?}"))),
        }
    }
    match mine {
        Some(mine) => Ok((mine, partners)),
        None => bail!("missing: me (this node's timeline)"),
    }
}

/// A standby's WAL receiver (`pg_stat_wal_receiver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// `streaming`, `waiting`, `starting`, ...
    pub status: String,
    /// The host it receives from.
    pub host: Option<String>,
}

/// What a running standby's stray check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// Every partner that answered as a registered primary, and the
    /// timeline it writes on.
    pub primaries: Vec<(String, u32)>,
    /// Its WAL receiver, `None` when none runs (or it did not say).
    pub receiver: Option<Receiver>,
    /// Seconds since a check first found it stray; `None` when the last
    /// check did not.
    pub stray_for_s: Option<u64>,
    /// Seconds it may go without streaming from the primary (STRAY_LIMIT).
    pub limit_s: u64,
}

/// What a running standby does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stray {
    /// It streams from the primary, or there is none to follow.
    Ok,
    /// It does not stream from the primary, not yet for `limit_s`.
    Stray,
    /// It has not for `limit_s`: restart (and exit), so that the next start
    /// follows the primary or rejoins it. Why, for the log.
    Restart { why: String },
}

impl fmt::Display for Stray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stray::Ok => f.write_str("ok"),
            Stray::Stray => f.write_str("stray"),
            Stray::Restart { why } => write!(f, "restart {why}"),
        }
    }
}

/// The stray rule: a standby that does not stream from the primary (repmgr
/// could not make it follow: its timeline forked off, its slot is gone)
/// restarts once it has gone `limit_s` so. With no primary there is nothing
/// to follow, and nothing is stray.
pub fn stray(seen: &Standby) -> Stray {
    let primaries: Vec<(&str, u32)> = seen
        .primaries
        .iter()
        .map(|(name, tli)| (name.as_str(), *tli))
        .collect();
    // Two on the newest timeline: whom it should stream from is unknown
    // (the start rule waits too); the fence rule stops one.
    let Primary::One(primary) = rules::newest(&primaries) else {
        return Stray::Ok;
    };
    let primary = &primary;
    let receiver = match &seen.receiver {
        Some(Receiver {
            status,
            host: Some(host),
        }) if status == "streaming" && host == primary => return Stray::Ok,
        Some(Receiver { status, host }) => match host {
            Some(host) => format!("{status} {host}"),
            None => status.clone(),
        },
        None => "none".to_owned(),
    };
    // A check that first finds it stray starts the clock at 0.
    if seen.stray_for_s.unwrap_or(0) >= seen.limit_s {
        return Stray::Restart {
            why: format!(
                "this standby has not streamed from the primary {primary} for {}s (wal receiver: '{receiver}')",
                seen.limit_s
            ),
        };
    }
    Stray::Stray
}

/// What `pgha stray` reads (see the module header). Every key once.
pub fn parse_stray(input: &str) -> anyhow::Result<Standby> {
    const PRIMARY: &str =
        "primary none, or a primary NAME TLI line per partner that answers as a primary";
    const KEYS: &[(&str, &str)] = &[
        ("receiver", "receiver STATUS [HOST], or receiver none"),
        ("stray-for", "stray-for SECONDS|none"),
        ("limit", "limit SECONDS"),
    ];
    let mut given: Vec<&str> = Vec::new();
    let mut said_none = false;
    let mut seen = Standby {
        primaries: Vec::new(),
        receiver: None,
        stray_for_s: None,
        limit_s: 0,
    };
    for line in lines::split(input)? {
        if line.key == "primary" {
            match line.words.as_slice() {
                ["none"] if !said_none && seen.primaries.is_empty() => said_none = true,
                [name, tli] if !said_none => {
                    line.read(check_name(name))?;
                    if seen.primaries.iter().any(|(known, _)| known == name) {
                        return Err(line.err(format!("primary {name} given twice")));
                    }
                    let tli = line.read(number(tli, "a timeline"))?;
                    seen.primaries.push((name.to_string(), tli));
                }
                ["none"] | [_, _] => return Err(line.err("primary none is given alone, once")),
                _ => return Err(line.err(format!("expected {PRIMARY}"))),
            }
            continue;
        }
        let (key, shape) = line.keyed(KEYS, &mut given)?;
        match (key, line.words.as_slice()) {
            ("receiver", ["none"]) => seen.receiver = None,
            ("receiver", [status, host @ ..]) if host.len() <= 1 => {
                if !status.bytes().all(|b| b.is_ascii_lowercase()) {
                    return Err(line.err("a receiver status is lowercase letters"));
                }
                if host
                    .iter()
                    .any(|h| !h.bytes().all(|b| b.is_ascii_graphic()))
                {
                    return Err(line.err("a receiver host is printable ASCII"));
                }
                seen.receiver = Some(Receiver {
                    status: status.to_string(),
                    host: host.first().map(|h| h.to_string()),
                });
            }
            ("stray-for", ["none"]) => seen.stray_for_s = None,
            ("stray-for", [s]) => seen.stray_for_s = Some(line.read(number(s, "stray-for"))?),
            ("limit", [s]) => seen.limit_s = line.read(number(s, "limit"))?,
            _ => return Err(line.err(format!("expected {shape}"))),
        }
    }
    let keys: Vec<&str> = KEYS.iter().map(|&(key, _)| key).collect();
    lines::require(&given, &keys)?;
    if !said_none && seen.primaries.is_empty() {
        bail!("missing: primary ({PRIMARY})");
    }
    Ok(seen)
}

#[cfg(test)]
#[path = "supervise_tests.rs"]
mod tests;
