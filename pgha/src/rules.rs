//! The PostgreSQL tier's rules: an observed state in, an action out.
//!
//! One authority names the primary: of the nodes whose postgres runs as a
//! primary, the one on the highest timeline. A promotion always starts a new
//! timeline, so a primary on an older one has been superseded, whatever it
//! still believes. Every other rule (how a node starts, whom a standby
//! follows, when a primary fences itself, what Pgpool-II routes writes to)
//! follows that one answer, so no two of them can disagree.

use crate::lsn::Lsn;
use crate::waldump::Tail;

/// What a node reports about itself (its `/state` endpoint), or what this
/// node knows of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    /// Its entrypoint is still deciding how to start: it runs no repmgrd,
    /// so nothing on it can promote it.
    pub deciding: bool,
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

/// Settings of the start rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRules {
    /// How many nodes the cluster has (3).
    pub cluster_size: usize,
    /// This node may create the cluster when no node has any data.
    pub bootstrap: bool,
    /// A failover may be under way when this node starts (repmgrd on a
    /// standby promotes about 5 s after the primary dies): no node starts as
    /// primary before this many seconds of waiting, unless every partner is
    /// itself deciding (then no repmgrd runs that could promote).
    pub failover_window_s: u64,
}

/// How a node with no running postgres starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Create a new cluster (`initdb`) and start as its primary.
    Init,
    /// Copy the primary's data (`repmgr standby clone`) and follow it.
    Clone { from: String },
    /// Keep the data directory aside, then clone: it is another cluster's.
    KeepAsideThenClone { from: String, why: String },
    /// Start as a standby of the primary.
    Standby { of: String },
    /// It was a primary and another node is primary now: rewind onto it
    /// (keeping aside what only this node holds, see [`before_rewind`]).
    Rejoin { to: String },
    /// Start as the primary (a former standby is promoted).
    Primary,
    /// Not yet; the reason, for the log and `/state`.
    Wait(String),
}

/// The start rule. `me` is this node (postgres not running), `partners`
/// the partners that answered, `waited_s` how long it has been deciding.
pub fn start(me: &NodeState, partners: &[NodeState], rules: StartRules, waited_s: u64) -> Start {
    let Some(mine) = me.data else {
        return start_empty(partners, rules);
    };
    match primary(partners) {
        Primary::One(p) => {
            let theirs = partners.iter().find(|n| n.name == p).and_then(|n| n.data);
            match theirs {
                Some(d) if d.system_id != mine.system_id => Start::KeepAsideThenClone {
                    from: p.clone(),
                    why: format!("this data directory belongs to cluster {}, {p} to cluster {}", mine.system_id, d.system_id),
                },
                _ if mine.standby => Start::Standby { of: p },
                _ => Start::Rejoin { to: p },
            }
        }
        Primary::Ambiguous(names) => Start::Wait(format!(
            "{} all run as primaries on the same timeline: waiting for an operator or for all but one to stop",
            names.join(", ")
        )),
        Primary::None => elect(me, mine, partners, rules, waited_s),
    }
}

fn start_empty(partners: &[NodeState], rules: StartRules) -> Start {
    if let Primary::One(p) = primary(partners) {
        return Start::Clone { from: p };
    }
    let with_data: Vec<&str> = partners
        .iter()
        .filter(|n| n.data.is_some())
        .map(|n| n.name.as_str())
        .collect();
    if !rules.bootstrap {
        Start::Wait("empty data directory: waiting for a primary to clone from".into())
    } else if !with_data.is_empty() {
        Start::Wait(format!(
            "empty data directory, no primary, but {} hold data: waiting for a primary instead of creating a second cluster",
            with_data.join(", ")
        ))
    } else if partners.is_empty() {
        Start::Wait("empty data directory and no partner answers: a partner must confirm it has no data first".into())
    } else {
        Start::Init
    }
}

/// No node runs as primary: this node starts as the primary only if its WAL
/// reaches furthest of the nodes that answered and those nodes are enough to
/// hold every acknowledged commit.
///
/// Commits are acknowledged once the primary and one standby flushed them
/// (`synchronous_standby_names = 'ANY 1 (...)'`). So a former primary may
/// start with one partner answering (it holds its own acknowledged commits,
/// and the partner shows no newer timeline), but a former standby only when
/// every other node but one answers: the one missing node may be the old
/// primary, and then each acknowledged commit is on one of the answering
/// standbys, the furthest of which holds them all.
fn elect(
    me: &NodeState,
    mine: Data,
    partners: &[NodeState],
    rules: StartRules,
    waited_s: u64,
) -> Start {
    if partners.is_empty() {
        return Start::Wait(
            "no partner answers: refusing to start as a lone primary (this node may be stale)"
                .into(),
        );
    }
    let same_cluster: Vec<(&str, Data)> = partners
        .iter()
        .filter_map(|n| n.data.map(|d| (n.name.as_str(), d)))
        .filter(|(_, d)| d.system_id == mine.system_id)
        .collect();
    // The most advanced: highest timeline, then furthest WAL; on a tie the
    // former primary, then the lowest name, so that exactly one elects itself.
    let key = |name: &str, d: &Data| {
        (
            d.timeline,
            d.end,
            !d.standby,
            std::cmp::Reverse(name.to_owned()),
        )
    };
    if let Some((ahead, d)) = same_cluster
        .iter()
        .find(|(name, d)| key(name, d) > key(&me.name, &mine))
    {
        return Start::Wait(format!(
            "{ahead} is further (timeline {} at {}, this node timeline {} at {}): it is the one to start as primary",
            d.timeline, d.end, mine.timeline, mine.end
        ));
    }
    if mine.standby && partners.len() + 2 < rules.cluster_size {
        return Start::Wait(format!(
            "this node was a standby and only {} of {} partners answer: a missing one may hold acknowledged commits",
            partners.len(),
            rules.cluster_size - 1
        ));
    }
    let all_deciding = partners.iter().all(|n| n.deciding);
    if !all_deciding && waited_s < rules.failover_window_s {
        return Start::Wait(format!(
            "no primary runs; giving a failover under way {}s before starting as primary",
            rules.failover_window_s
        ));
    }
    Start::Primary
}

/// What a running primary does when it sees `nodes` (itself included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// It is the primary by the rule: carry on.
    Stay,
    /// Another node is the primary: stop taking writes, then rejoin it.
    Stop { primary: String },
    /// Another primary on the same timeline: no rule can choose; log it
    /// loudly and keep going (the proxies route to neither, see [`primary`]).
    Alarm(Vec<String>),
}

/// The fence rule, for a node whose postgres runs as a primary.
pub fn fence(me: &str, nodes: &[NodeState]) -> Fence {
    match primary(nodes) {
        Primary::One(p) if p != me => Fence::Stop { primary: p },
        Primary::Ambiguous(names) => Fence::Alarm(names),
        _ => Fence::Stay,
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

/// What a node's WAL past the fork point means before it is rewound or
/// re-cloned onto the primary's newer timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeforeRewind {
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

/// The rewind rule, from what the node holds past the fork point (see
/// [`fork_point`] and [`crate::waldump::tail`]).
pub fn before_rewind(was_primary: bool, past_fork: Tail) -> BeforeRewind {
    let Tail {
        records, commits, ..
    } = past_fork;
    match commits {
        0 => BeforeRewind::Discards { records },
        _ if was_primary => BeforeRewind::KeepAside { records, commits },
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
