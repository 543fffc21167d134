//! What Pgpool-II's reconciler does: make the Pgpool-II instance route
//! writes to the one primary the tier's rule names ([`crate::rules::primary`]:
//! of the nodes running as primary, the one on the highest timeline), and
//! attach standbys it left detached. Asked every 2 s by
//! `postgres/pgpool-entrypoint.sh`, which runs the answer with pcp.
//!
//! `pgha pool`, one line per backend, in Pgpool-II's order:
//!
//! ```text
//! node pg-1 up primary down
//! node pg-2 up standby primary 4
//! node pg-3 down standby streaming 24
//! ```
//!
//! ```text
//! node NAME STATUS ROLE SEEN      STATUS and ROLE as Pgpool-II has them
//!                                 (pcp_node_info): up, waiting, down, ...;
//!                                 primary, standby or unknown. SEEN is the node's
//!                                 own word, asked directly:
//!   primary TLI                   runs as a primary writing on TLI
//!   standby                       runs in recovery, not streaming
//!   streaming S                   runs in recovery and streams; S: the
//!                                 seconds Pgpool-II has kept it detached
//!                                 meanwhile (0 when attached)
//!   down                          did not answer
//! ```
//!
//! The answer, one change a round: `none`, `detach NAME WHY`,
//! `attach NAME WHY`, `promote NAME WHY` (Pgpool-II's own primary only, no
//! switchover), or `none WHY` when nothing may be done and the log should
//! say why.
//!
//! The rule, in order:
//! 1. Pgpool-II routes writes (an attached node it calls primary) to another
//!    node than the rule's primary: detach that node; Pgpool-II then finds
//!    the rule's primary among the attached ones. It keeps a frozen primary
//!    until its health check gives up, and a thawed old primary looks as
//!    good to it as the new one, so its own choice is never trusted.
//! 2. Pgpool-II has no primary: attach the rule's primary if detached (a
//!    full restart, a primary restarted in place), else make it Pgpool-II's
//!    primary (a promotion after `search_primary_node_timeout`).
//! 3. Several primaries on the newest timeline: no rule can choose; nothing
//!    about the primary changes.
//! 4. A standby that streams but Pgpool-II kept detached for
//!    [`ATTACH_AFTER_S`]: attach it. Pgpool-II's own `auto_failback` is
//!    off: it needs the `sr_check` worker, which waits on a frozen node
//!    while holding the lock Pgpool-II's primary search needs.

use std::fmt;

use anyhow::bail;

use crate::lines::{self, number};
use crate::partners::check_name;
use crate::rules::{self, Data, NodeState, Primary, Running};
use crate::Lsn;

/// Seconds a standby must have streamed while detached before it is
/// attached: two rounds, so that a standby that streamed for a moment
/// before its WAL receiver broke again is not attached.
pub const ATTACH_AFTER_S: u64 = 4;

/// A node's own word on its role, asked directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Down,
    Primary {
        timeline: u32,
    },
    Standby,
    /// Streams; detached for this many seconds (0: attached).
    Streaming {
        detached_s: u64,
    },
}

/// One backend: Pgpool-II's view and the node's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    /// Pgpool-II sends it queries (any status but `down`).
    pub attached: bool,
    /// Pgpool-II calls it the primary.
    pub pool_primary: bool,
    pub seen: Seen,
}

/// The reconciler's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None { why: Option<String> },
    Detach { node: String, why: String },
    Attach { node: String, why: String },
    Promote { node: String, why: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::None { why: None } => f.write_str("none"),
            Action::None { why: Some(why) } => write!(f, "none {why}"),
            Action::Detach { node, why } => write!(f, "detach {node} {why}"),
            Action::Attach { node, why } => write!(f, "attach {node} {why}"),
            Action::Promote { node, why } => write!(f, "promote {node} {why}"),
        }
    }
}

/// Reads `pgha pool`'s input (see the module header).
pub fn parse(input: &str) -> anyhow::Result<Vec<Backend>> {
    let mut backends: Vec<Backend> = Vec::new();
    for line in lines::split(input)? {
        if line.key != "node" {
            return Err(line.err(format!("unknown key {:?}", line.key)));
        }
        let backend = line.read(backend(&line.words))?;
        if backends.iter().any(|b| b.name == backend.name) {
            return Err(line.err(format!("{} given twice", backend.name)));
        }
        backends.push(backend);
    }
    Ok(backends)
}

fn backend(words: &[&str]) -> anyhow::Result<Backend> {
    let [name, status, role, seen @ ..] = words else {
        bail!("expected node NAME STATUS ROLE SEEN");
    };
    check_name(name)?;
    let attached = match *status {
        "down" | "unused" => false,
        "up" | "waiting" | "quarantine" => true,
        other => bail!("STATUS must be up, waiting, quarantine, down or unused, got {other:?}"),
    };
    let pool_primary = match *role {
        "primary" => true,
        "standby" | "unknown" => false,
        other => bail!("ROLE must be primary, standby or unknown, got {other:?}"),
    };
    let seen = match seen {
        ["down"] => Seen::Down,
        ["standby"] => Seen::Standby,
        ["primary", tli] => Seen::Primary {
            timeline: number(tli, "a timeline")?,
        },
        ["streaming", s] => Seen::Streaming {
            detached_s: number(s, "the seconds detached")?,
        },
        _ => bail!("SEEN must be down, standby, primary TLI or streaming SECONDS"),
    };
    Ok(Backend {
        name: (*name).to_owned(),
        attached,
        pool_primary,
        seen,
    })
}

/// The reconciler's rule (see the module header).
pub fn decide(backends: &[Backend]) -> Action {
    let nodes: Vec<NodeState> = backends.iter().map(node_state).collect();
    let routed = backends.iter().find(|b| b.attached && b.pool_primary);
    let seen_all = || {
        backends
            .iter()
            .map(|b| format!("{}={}", b.name, seen_word(b.seen)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut why_none = None;
    match rules::primary(&nodes) {
        Primary::One(want) => {
            if let Some(routed) = routed.filter(|r| r.name != want) {
                return Action::Detach {
                    node: routed.name.clone(),
                    why: format!(
                        "Pgpool-II routes writes to {} but the primary is {want} (highest timeline; seen {})",
                        routed.name,
                        seen_all()
                    ),
                };
            }
            if routed.is_none() {
                let attached = backends.iter().any(|b| b.name == want && b.attached);
                return if attached {
                    Action::Promote {
                        node: want.clone(),
                        why: format!("Pgpool-II has no primary; attached {want} is the primary: Pgpool-II's own primary only"),
                    }
                } else {
                    Action::Attach {
                        node: want.clone(),
                        why: format!(
                            "Pgpool-II has no primary; {want} is the primary but detached"
                        ),
                    }
                };
            }
        }
        Primary::Ambiguous(names) => {
            why_none = Some(format!(
                "{} all run as primary on the newest timeline: no rule can choose; the primary is left as it is",
                names.join(" and ")
            ));
        }
        Primary::None => {}
    }
    if let Some(b) = backends.iter().find(|b| {
        !b.attached
            && matches!(b.seen, Seen::Streaming { detached_s } if detached_s >= ATTACH_AFTER_S)
    }) {
        return Action::Attach {
            node: b.name.clone(),
            why: format!(
                "{} streams but Pgpool-II kept it detached for {ATTACH_AFTER_S} s or more",
                b.name
            ),
        };
    }
    Action::None { why: why_none }
}

/// A backend as [`rules::primary`] takes it.
fn node_state(b: &Backend) -> NodeState {
    let (running, data) = match b.seen {
        Seen::Down => (None, None),
        Seen::Standby | Seen::Streaming { .. } => (Some(Running::Standby), None),
        Seen::Primary { timeline } => (
            Some(Running::Primary),
            Some(Data {
                system_id: 0,
                timeline,
                end: Lsn::default(),
                standby: false,
            }),
        ),
    };
    NodeState {
        name: b.name.clone(),
        data,
        running,
    }
}

fn seen_word(seen: Seen) -> String {
    match seen {
        Seen::Down => "down".to_owned(),
        Seen::Standby => "standby".to_owned(),
        Seen::Primary { timeline } => format!("primary/{timeline}"),
        Seen::Streaming { .. } => "streaming".to_owned(),
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
