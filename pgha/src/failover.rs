//! Who replaces a primary that stopped answering, and whom a standby
//! follows: the failover decision, asked every second by each running
//! standby's watcher (`watch_failover` in `postgres/entrypoint.sh`). repmgrd
//! only monitors (`failover=manual`); its own election was the cause of
//! hung primaries never replaced (an elected standby whose repmgrd never
//! acted) and of slow ones (a sibling that had pinged a second ago cancelled
//! the election, so detection had to stay slower than that).
//!
//! `pgha failover`, on a node whose postgres runs as a standby:
//!
//! ```text
//! me pg-2 1 0/5000100
//! upstream pg-1 unseen 7
//! pointed pg-1 pg-1
//! detect 6
//! stale 10
//! partner pg-1 silent
//! partner pg-3 standby 1 0/50000D8 pg-1 6 running 1 running
//! ```
//!
//! ```text
//! me NAME TLI LSN                 this node, the newest timeline it knows
//!                                 of, and the WAL it received
//! upstream NAME|none unseen S     the primary it follows (the last one its
//!                                 primary_conninfo named) and the seconds
//!                                 since it last reached it (0: just now)
//! pointed FROM|none TO|none       the primary its primary_conninfo named
//!                                 when the round began, and when it ended
//!                                 (none: cleared by a promoter)
//! detect S                        seconds unseen before a failover
//! stale S                         a partner's watcher that has not
//!                                 published for longer is taken as not
//!                                 running (more than its slowest round)
//! partner NAME silent             did not answer
//! partner NAME primary TLI        runs as a primary, writing on TLI
//! partner NAME standby TLI LSN UPSTREAM UNSEEN WATCH AGE ENTRYPOINT
//!                                 a standby: the newest timeline it knows
//!                                 of, its WAL, the primary it follows
//!                                 (none), how long it has not reached it,
//!                                 its watcher as it published it: running
//!                                 (watching), promoting, or other, the
//!                                 seconds since it did, and what its
//!                                 entrypoint does (running, or starting,
//!                                 rejoining, stopping, ...)
//! ```
//!
//! The answer: `ok`, `wait WHY`, `follow NAME WHY` or `promote WHY`.
//!
//! The rule, in order:
//! 0. A node pointed elsewhere during the round looks again: what it saw
//!    was gathered while it followed FROM, and its own timeline and WAL are
//!    now TO's, newer than the partners' reports of it. (Acting on such a
//!    round promoted a node that a finishing promoter had just re-pointed.)
//! 1. The partner that is a primary on the newest timeline is the one to
//!    follow; a tie on that timeline is no basis to choose (the fence rule
//!    stops the older of two primaries; two on one timeline is an alarm).
//!    A primary on a timeline older than one this node knows of was
//!    superseded (its successor may be down): never followed, it counts
//!    as no primary.
//! 2. A reachable upstream, or one unseen for less than `detect`: ok. A
//!    stall shorter than `detect` never promotes.
//! 3. A partner promoting: wait for it. A watcher that has not published
//!    for more than `stale`, or whose node's entrypoint is not running, can
//!    neither vouch nor be promoted: it counts as `other` from here on. (3 s
//!    was less than a round: a frozen primary was never replaced.)
//! 4. A quorum: this node and at least one partner, a running standby of the
//!    same upstream that has not reached it for at least half of `detect`.
//!    Alone, this node may be the one cut off: it waits.
//! 5. Of those, the one on the newest timeline, then with the most WAL
//!    (ties: the first name) is promoted. Every standby sees the same positions once the primary
//!    stopped sending, so they agree on who.

use std::fmt;

use anyhow::bail;

use crate::lines::{self, number};
use crate::lsn::Lsn;
use crate::partners::check_name;

/// A partner as a standby's watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Silent,
    Primary {
        timeline: u32,
    },
    Standby {
        timeline: u32,
        received: Lsn,
        upstream: Option<String>,
        unseen_s: u64,
        watcher: Watcher,
        /// Seconds since its watcher published.
        age_s: u64,
        /// Its entrypoint runs (not starting, rejoining, stopping).
        entrypoint_running: bool,
    },
}

/// A partner's failover watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watcher {
    Running,
    Promoting,
    /// Starting, stopping, deciding: it cannot be promoted now.
    Other,
}

/// What a running standby's watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub me: String,
    pub timeline: u32,
    pub received: Lsn,
    pub upstream: Option<String>,
    pub unseen_s: u64,
    /// What primary_conninfo named when the round began, and when it ended.
    pub pointed: (Option<String>, Option<String>),
    pub detect_s: u64,
    /// Seconds after which a partner's watcher is taken as not running.
    pub stale_s: u64,
    pub partners: Vec<(String, Seen)>,
}

/// What a running standby does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failover {
    Ok,
    Wait { why: String },
    Follow { primary: String, why: String },
    Promote { why: String },
}

impl fmt::Display for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failover::Ok => f.write_str("ok"),
            Failover::Wait { why } => write!(f, "wait {why}"),
            Failover::Follow { primary, why } => write!(f, "follow {primary} {why}"),
            Failover::Promote { why } => write!(f, "promote {why}"),
        }
    }
}

fn wait(why: String) -> Failover {
    Failover::Wait { why }
}

/// The failover rule (see the module header).
pub fn decide(seen: &Observed) -> Failover {
    // 0. Re-pointed during the round: what was seen is stale.
    if seen.pointed.0 != seen.pointed.1 {
        let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "none".to_owned());
        return wait(format!(
            "this node was pointed from {} to {} during the round: looking again",
            name(&seen.pointed.0),
            name(&seen.pointed.1)
        ));
    }
    // 1. A partner running as a primary: the newest timeline, if not
    // older than this node's.
    let primaries: Vec<(&str, u32)> = seen
        .partners
        .iter()
        .filter_map(|(name, s)| match s {
            Seen::Primary { timeline } if *timeline >= seen.timeline => {
                Some((name.as_str(), *timeline))
            }
            _ => None,
        })
        .collect();
    if let Some(newest) = primaries.iter().map(|&(_, t)| t).max() {
        let on_newest: Vec<&str> = primaries
            .iter()
            .filter(|&&(_, t)| t == newest)
            .map(|&(name, _)| name)
            .collect();
        if let [primary] = on_newest.as_slice() {
            if seen.upstream.as_deref() == Some(*primary) {
                return Failover::Ok;
            }
            return Failover::Follow {
                primary: primary.to_string(),
                why: format!(
                    "{primary} is the primary (timeline {newest}), this node followed {}",
                    seen.upstream.as_deref().unwrap_or("none")
                ),
            };
        }
        return wait(format!(
            "{} all run as primary on timeline {newest}: no rule can tell which to follow",
            on_newest.join(" and ")
        ));
    }
    // 2. Nothing to replace yet.
    let Some(upstream) = seen.upstream.as_deref() else {
        return wait("no primary known yet".to_owned());
    };
    if let Some((_, Seen::Primary { timeline })) =
        seen.partners.iter().find(|(name, _)| name == upstream)
    {
        return wait(format!(
            "{upstream} runs as primary on timeline {timeline}, older than timeline {} this node knows of: it was superseded, and is not followed",
            seen.timeline
        ));
    }
    if seen.unseen_s < seen.detect_s {
        return Failover::Ok;
    }
    // 3. Someone is already at it (a live watcher only).
    let watcher = |s: &Seen| match s {
        Seen::Standby {
            watcher,
            age_s,
            entrypoint_running: true,
            ..
        } if *age_s <= seen.stale_s => *watcher,
        _ => Watcher::Other,
    };
    if let Some((name, _)) = seen
        .partners
        .iter()
        .find(|(_, s)| watcher(s) == Watcher::Promoting)
    {
        return wait(format!("{name} is being promoted"));
    }
    // 4. A quorum: the partners that also lost the upstream.
    let agree: Vec<(&str, u32, Lsn)> = seen
        .partners
        .iter()
        .filter(|(_, s)| watcher(s) == Watcher::Running)
        .filter_map(|(name, s)| match s {
            Seen::Standby {
                timeline,
                received,
                upstream: Some(theirs),
                unseen_s,
                ..
            } if theirs == upstream && 2 * unseen_s >= seen.detect_s => {
                Some((name.as_str(), *timeline, *received))
            }
            _ => None,
        })
        .collect();
    let lost = format!("{upstream} unreachable for {}s", seen.unseen_s);
    if agree.is_empty() {
        return wait(format!(
            "{lost}, but no partner confirms it (this node may be the one cut off)"
        ));
    }
    // 5. The most advanced of the quorum; ties go to the first name.
    let mut candidates = agree.clone();
    candidates.push((seen.me.as_str(), seen.timeline, seen.received));
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
    let (chosen, tli, lsn) = candidates[0];
    let at = format!("timeline {tli}, {lsn}");
    let also: Vec<&str> = agree.iter().map(|&(n, ..)| n).collect();
    if chosen == seen.me {
        Failover::Promote {
            why: format!(
                "{lost}, also for {}; this node received the most WAL ({at})",
                also.join(" and ")
            ),
        }
    } else {
        wait(format!(
            "{lost}; {chosen} received the most WAL ({at}) and is to be promoted"
        ))
    }
}

/// What `pgha failover` reads (see the module header).
pub fn parse(input: &str) -> anyhow::Result<Observed> {
    const KEYS: &[(&str, &str)] = &[
        ("me", "me NAME TLI LSN"),
        ("upstream", "upstream NAME|none unseen SECONDS"),
        ("pointed", "pointed FROM|none TO|none"),
        ("detect", "detect SECONDS"),
        ("stale", "stale SECONDS"),
    ];
    const PARTNER: &str = "partner NAME silent, partner NAME primary TLI, or partner NAME standby TLI LSN UPSTREAM|none UNSEEN running|promoting|other AGE ENTRYPOINT";
    let mut given: Vec<&str> = Vec::new();
    let mut me = None;
    let mut upstream = None;
    let mut pointed = (None, None);
    let mut detect_s = 0;
    let mut stale_s = 0;
    let mut partners: Vec<(String, Seen)> = Vec::new();
    let optional_name = |name: &str| -> anyhow::Result<Option<String>> {
        if name == "none" {
            return Ok(None);
        }
        check_name(name)?;
        Ok(Some(name.to_owned()))
    };
    for line in lines::split(input)? {
        if line.key == "partner" {
            let [name, rest @ ..] = line.words.as_slice() else {
                return Err(line.err(format!("expected {PARTNER}")));
            };
            line.read(check_name(name))?;
            let seen = match rest {
                ["silent"] => Seen::Silent,
                ["primary", tli] => Seen::Primary {
                    timeline: line.read(number(tli, "a timeline"))?,
                },
                ["standby", tli, lsn, up, unseen, watcher, age, entrypoint] => Seen::Standby {
                    timeline: line.read(number(tli, "a timeline"))?,
                    received: line.read(lsn.parse())?,
                    upstream: line.read(optional_name(up))?,
                    unseen_s: line.read(number(unseen, "unseen"))?,
                    watcher: match *watcher {
                        "running" => Watcher::Running,
                        "promoting" => Watcher::Promoting,
                        "other" => Watcher::Other,
                        _ => return Err(line.err("a watcher is running, promoting or other")),
                    },
                    age_s: line.read(number(age, "a watcher's age"))?,
                    entrypoint_running: match *entrypoint {
                        "running" => true,
                        e if !e.is_empty()
                            && e.len() <= 32
                            && e.bytes()
                                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_') =>
                        {
                            false
                        }
                        _ => {
                            return Err(
                                line.err("an entrypoint state is lowercase letters, '-' or '_'")
                            )
                        }
                    },
                },
                _ => return Err(line.err(format!("expected {PARTNER}"))),
            };
            if partners.iter().any(|(known, _)| known == name) {
                return Err(line.err(format!("{name} given twice")));
            }
            partners.push((name.to_string(), seen));
            continue;
        }
        let (key, shape) = line.keyed(KEYS, &mut given)?;
        match (key, line.words.as_slice()) {
            ("me", [name, tli, lsn]) => {
                line.read(check_name(name))?;
                me = Some((
                    name.to_string(),
                    line.read(number(tli, "a timeline"))?,
                    line.read(lsn.parse::<Lsn>())?,
                ));
            }
            ("upstream", [name, "unseen", s]) => {
                upstream = Some((
                    line.read(optional_name(name))?,
                    line.read(number(s, "unseen"))?,
                ));
            }
            ("pointed", [from, to]) => {
                pointed = (
                    line.read(optional_name(from))?,
                    line.read(optional_name(to))?,
                );
            }
            ("detect", [s]) => detect_s = line.read(number(s, "detect"))?,
            ("stale", [s]) => stale_s = line.read(number(s, "stale"))?,
            _ => return Err(line.err(format!("expected {shape}"))),
        }
    }
    let keys: Vec<&str> = KEYS.iter().map(|&(key, _)| key).collect();
    lines::require(&given, &keys)?;
    let (Some((me, timeline, received)), Some((upstream, unseen_s))) = (me, upstream) else {
        unreachable!("require checked me and upstream");
    };
    if detect_s == 0 {
        bail!("detect must be at least 1 second");
    }
    if partners.iter().any(|(name, _)| *name == me) {
        bail!("{me} is this node, not a partner");
    }
    Ok(Observed {
        me,
        timeline,
        received,
        upstream,
        unseen_s,
        pointed,
        detect_s,
        stale_s,
        partners,
    })
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
