//! The PostgreSQL tier's rules: an observed state in, an action out.
//!
//! Which primary Pgpool-II routes writes to ([`primary`]): of the nodes
//! whose postgres runs as a primary, the one on the highest timeline. A
//! promotion always starts a new timeline, so a primary on an older one has
//! been superseded, whatever it still believes; the failover, start and
//! fence rules ([`crate::failover`], [`crate::start`], [`crate::supervise`])
//! follow the same newest timeline. Also here: what a standby checks just
//! before it promotes itself, and what a node keeps aside before a rewind.

use std::fmt;

use crate::lsn::Lsn;
use crate::waldump::{self, Tail};

/// What a node reports about itself (its `/state` endpoint), or what this
/// node knows of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    /// Its data directory, `None` when empty.
    pub data: Option<Data>,
    /// What its postgres runs as, `None` when postgres is not running.
    pub running: Option<Running>,
}

/// Facts about a node's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data {
    /// The cluster it belongs to (`pg_control_system()`): data of another
    /// cluster must never be mixed with this one's.
    pub system_id: u64,
    /// The timeline its WAL is on.
    pub timeline: u32,
    /// How far its WAL reaches: flushed on a primary, received on a standby.
    pub end: Lsn,
    /// It was a standby when it last ran (`standby.signal`).
    pub standby: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    Primary,
    Standby,
}

/// Who the primary is, by the one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    /// The one node to write to.
    One(String),
    /// No node runs as a primary.
    None,
    /// Several run as primaries on the same, highest timeline: nothing can
    /// tell which one holds the acknowledged commits, so none is used.
    Ambiguous(Vec<String>),
}

/// Of `nodes` (those that answered), the primary on the highest timeline.
pub fn primary(nodes: &[NodeState]) -> Primary {
    let primaries: Vec<(&str, u32)> = nodes
        .iter()
        .filter(|n| n.running == Some(Running::Primary))
        .filter_map(|n| n.data.map(|d| (n.name.as_str(), d.timeline)))
        .collect();
    newest(&primaries)
}

/// Of the nodes that run as primaries, each with the timeline it writes
/// on, the one on the highest timeline (the start and stray rules see
/// them so: partners that answer as registered primaries).
pub fn newest(primaries: &[(&str, u32)]) -> Primary {
    let Some(highest) = primaries.iter().map(|&(_, tli)| tli).max() else {
        return Primary::None;
    };
    let mut top: Vec<String> = primaries
        .iter()
        .filter(|&&(_, tli)| tli == highest)
        .map(|&(name, _)| name.to_owned())
        .collect();
    top.sort();
    match top.len() {
        1 => Primary::One(top.remove(0)),
        _ => Primary::Ambiguous(top),
    }
}

/// What a standby that repmgrd elected saw of one partner, just before it
/// promotes itself, after it asked every standby partner to stop streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partner {
    /// The primary repmgrd declared failed; not asked again.
    Failed,
    /// Answers neither SQL nor its entrypoint's `/state`.
    Silent,
    /// Its entrypoint answers, its postgres does not run: when it starts it
    /// follows the primary on the highest timeline, never an older one.
    Down,
    /// Runs as a primary.
    Primary,
    /// Runs as a standby: whether its WAL receiver still runs, and how far
    /// the WAL it holds reaches (received or replayed, the greater).
    Standby { receiving: bool, end: Lsn },
}

/// The promotion rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promote {
    /// No partner can confirm a commit of the old primary any more, and none
    /// holds WAL this node lacks: promote.
    Go,
    /// A partner's WAL receiver has not stopped yet: look again shortly.
    Wait(String),
    /// Promoting now could lose acknowledged commits: do not.
    Refuse(String),
}

/// The promotion rule. A standby that keeps streaming from the old primary
/// confirms its commits once it thaws or its network heals, and with
/// `ANY 1` synchronous replication one confirmation acknowledges a commit
/// that the new primary's timeline lacks. So this node promotes only when a
/// majority of the cluster (itself, the stopped standbys and the nodes whose
/// postgres is down) can no longer confirm anything for the old primary, no
/// stopped standby holds WAL past `mine` (commits it may have confirmed),
/// and no partner still runs as a primary.
pub fn before_promote(mine: Lsn, partners: &[(String, Partner)]) -> Promote {
    let mut quiet = 1; // this node: repmgrd stopped its WAL receiver
    let mut receiving = Vec::new();
    for (name, seen) in partners {
        match *seen {
            Partner::Primary => {
                return Promote::Refuse(format!(
                    "{name} still runs as a primary: it is not failed, and two primaries could both take writes"
                ));
            }
            Partner::Standby { end, .. } if end > mine => {
                return Promote::Refuse(format!(
                    "{name} holds WAL up to {end}, past this node's {mine}: it may have confirmed commits this node lacks, so it must be promoted instead"
                ));
            }
            Partner::Standby {
                receiving: true, ..
            } => receiving.push(name.as_str()),
            Partner::Standby {
                receiving: false, ..
            }
            | Partner::Down => quiet += 1,
            Partner::Failed | Partner::Silent => {}
        }
    }
    if !receiving.is_empty() {
        return Promote::Wait(format!(
            "the WAL receiver of {} still runs",
            receiving.join(", ")
        ));
    }
    let nodes = partners.len() + 1;
    if quiet * 2 <= nodes {
        return Promote::Refuse(format!(
            "only {quiet} of {nodes} nodes are known to have stopped streaming: a silent standby could still confirm the old primary's commits"
        ));
    }
    Promote::Go
}

/// What a stopped node saw just before it is rewound onto a primary
/// (`check_past_fork` in `postgres/entrypoint.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewindSeen {
    /// It last ran as a primary (no `standby.signal`).
    pub was_primary: bool,
    /// The newest timeline its data knows of.
    pub mine: u32,
    /// The primary's write timeline; `None` when the primary did not say.
    pub theirs: Option<u32>,
    /// Where `mine` ends in the primary's timeline history; `None` when
    /// the history could not be read or does not pass through `mine`.
    pub fork: Option<Lsn>,
    /// The WAL segment holding the fork point is in its `pg_wal`.
    pub fork_segment: bool,
    /// Its latest checkpoint; `None` when pg_controldata did not say.
    pub checkpoint: Option<Lsn>,
}

/// What to do with a node's WAL past the fork point before it is rewound
/// or re-cloned onto the primary's newer timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeforeRewind {
    /// The primary is not on a newer timeline: there is no fork to check
    /// (pg_rewind finds nothing to do, or fails and the node is cloned).
    Skip { why: String },
    /// What lies past the fork cannot be read: the whole data directory
    /// is kept aside before the rewind, so nothing is lost unseen.
    KeepWhole { why: String },
    /// No transaction commits past the fork point (at most a shutdown
    /// checkpoint): rewinding discards nothing a client was told.
    Discards { records: usize },
    /// A former primary's commits past the fork point: no standby confirmed
    /// them, so no client was told they succeeded. Kept aside and logged.
    KeepAside { records: usize, commits: usize },
    /// A standby's commits past the fork point: it received WAL from a
    /// primary that a promotion had already superseded, and may have
    /// confirmed commits the new timeline lacks. Kept aside, and an alarm.
    Alarm { records: usize, commits: usize },
}

impl fmt::Display for BeforeRewind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BeforeRewind::Skip { why } => write!(f, "skip {why}"),
            BeforeRewind::KeepWhole { why } => write!(f, "keep-whole {why}"),
            BeforeRewind::Discards { records } => write!(f, "discards {records}"),
            BeforeRewind::KeepAside { records, commits } => {
                write!(f, "keep-aside {records} {commits}")
            }
            BeforeRewind::Alarm { records, commits } => write!(f, "alarm {records} {commits}"),
        }
    }
}

/// pg_waldump's messages when it reaches the end of the WAL it has, which
/// are no failure: every listing without an end point stops with the
/// first, and one with no record at or after its start point (a node
/// whose WAL ends at the fork, as after a clean switchover) with the
/// second.
const WALDUMP_ENDS: [&str; 2] = [
    "error in WAL record at",
    "could not find a valid record after",
];

/// The rewind rule. `listing` is pg_waldump's output from the fork point,
/// its own error lines (`pg_waldump: ...`) included; it is read only when
/// the fork point is known and its segment is there.
pub fn before_rewind(seen: &RewindSeen, listing: &str) -> BeforeRewind {
    let keep_whole = |why: String| BeforeRewind::KeepWhole { why };
    let mine = seen.mine;
    let Some(theirs) = seen.theirs else {
        return keep_whole(
            "the primary did not say its timeline, so the fork point is unknown".to_owned(),
        );
    };
    if theirs <= mine {
        return BeforeRewind::Skip {
            why: format!(
                "the primary writes on timeline {theirs}, not newer than this node's {mine}"
            ),
        };
    }
    let Some(fork) = seen.fork else {
        return keep_whole(format!(
            "the primary's history of timeline {theirs} does not show where timeline {mine} ends"
        ));
    };
    if !seen.fork_segment {
        if seen.checkpoint.is_none_or(|c| c >= fork) {
            return keep_whole(format!(
                "the WAL segment of the fork point {fork} is gone from pg_wal, and this node reached {}",
                seen.checkpoint
                    .map_or("an unknown checkpoint".to_owned(), |c| c.to_string())
            ));
        }
        // Recovery needs every segment from the checkpoint on: without the
        // fork's, this node's WAL ends before the fork.
        return BeforeRewind::Discards { records: 0 };
    }
    if let Some(failed) = listing.lines().find(|l| {
        l.starts_with("pg_waldump: ")
            && l.contains("error")
            && !WALDUMP_ENDS.iter().any(|end| l.contains(end))
    }) {
        return keep_whole(format!(
            "pg_waldump could not list the WAL past the fork: {failed}"
        ));
    }
    let Tail {
        records, commits, ..
    } = waldump::tail(listing, fork);
    match commits {
        0 => BeforeRewind::Discards { records },
        _ if seen.was_primary => BeforeRewind::KeepAside { records, commits },
        _ => BeforeRewind::Alarm { records, commits },
    }
}

/// Where timeline `timeline` ends in a newer timeline's history file
/// (`NNNNNNNN.history`: "parent-timeline<TAB>switch-point<TAB>reason" lines).
/// `None` when the history does not pass through that timeline.
pub fn fork_point(history: &str, timeline: u32) -> anyhow::Result<Option<Lsn>> {
    for (n, line) in history.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (fields.next(), fields.next()) else {
            anyhow::bail!(
                "timeline history line {}: expected a timeline and a WAL position, got {line:?}",
                n + 1
            );
        };
        let tli: u32 = tli.parse().map_err(|_| {
            anyhow::anyhow!("timeline history line {}: bad timeline {tli:?}", n + 1)
        })?;
        if tli == timeline {
            return Ok(Some(lsn.parse()?));
        }
    }
    Ok(None)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
