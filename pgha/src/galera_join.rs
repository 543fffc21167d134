//! Whether a starting Galera node joins a running cluster, and what of its
//! data it keeps aside first (`decide_and_start` in
//! `wordpress/mariadb-entrypoint.sh`). The same `/state` lines as the
//! election ([`crate::galera`]) in, with what the node knows of its own
//! data; one decision out. The supervisor asks it too: a node outside any
//! Primary component restarts to rejoin only when it says `join`.
//!
//! The rules:
//!  * a partner runs a cluster this node may join when its mysqld is in a
//!    Primary component, Synced (`local_state` 4), its entrypoint `running`
//!    and configured for this cluster's name. None: the election decides;
//!  * those partners must name one cluster (`cluster_uuid`); two are no
//!    basis to join either, and the node waits;
//!  * before joining, data the cluster's full copy (SST) would overwrite is
//!    kept aside when it could hold something the cluster lacks, at most
//!    once, the first reason that applies:
//!    - its volume belongs to a cluster of another name;
//!    - its position is of another cluster (state uuid);
//!    - it holds tables but no position (a kind bounded in number, as
//!      repeated crashes make it again); without tables it is a failed
//!      join's leftovers and is simply replaced;
//!    - its position is ahead of the newest node of the running cluster:
//!      it holds transactions the cluster does not (every partner is
//!      compared, not only the first);
//!    - the cluster was bootstrapped without it (any partner's `left_out`
//!      names it).

use std::fmt;

use anyhow::{bail, Context};

use crate::galera::{Cluster, States, ZERO_UUID};

/// What the starting node knows of its own data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// The name of the cluster its volume belongs to, when another.
    pub foreign: Option<String>,
    /// The state uuid of its position, when it has one.
    pub uuid: Option<String>,
    /// The seqno of its position, when usable (not -1: a crash that
    /// `--wsrep-recover` could not undo).
    pub seqno: Option<u64>,
    pub data: Data,
}

/// What its data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Empty,
    /// A MariaDB data directory (`mysql/` in it).
    Tables,
    /// Files but no tables (`grastate.dat` alone): a failed join's leftovers.
    Leftovers,
}

/// Data kept aside before the join: the entrypoint's `move_aside`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aside {
    /// The kind of a copy bounded in number (repeated faults make it
    /// again); `None`: never removed.
    pub kind: Option<&'static str>,
    pub headline: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// No partner runs a cluster this node may join: the election decides.
    Elect,
    /// Partners run Primary components, but no basis to join one: why.
    Wait { why: String },
    /// Join the cluster these partners run (in configured order).
    Join {
        primaries: Vec<String>,
        aside: Option<Aside>,
        /// A bootstrap went on without this node: its record is cleared
        /// once it has joined.
        left_out: bool,
        why: String,
    },
}

/// The decision; `me` is the starting node.
pub fn decide(cluster: &Cluster, me: &str, local: &Local, states: &States) -> Join {
    let joinable: Vec<&str> = cluster
        .nodes
        .iter()
        .filter(|n| n.as_str() != me)
        .filter(|n| {
            states.get(n.as_str()).is_some_and(|s| {
                s.in_primary
                    && s.phase == "running"
                    && s.local_state == "4"
                    && s.cluster_name == cluster.name
            })
        })
        .map(String::as_str)
        .collect();
    if joinable.is_empty() {
        return Join::Elect;
    }
    let state = |n: &str| &states[n];

    // (cluster uuid, the first node naming it)
    let mut clusters: Vec<(&str, &str)> = Vec::new();
    for &n in &joinable {
        let c = state(n).cluster_uuid.as_str();
        if !c.is_empty() && !clusters.iter().any(|&(known, _)| known == c) {
            clusters.push((c, n));
        }
    }
    if clusters.len() > 1 {
        let named: Vec<String> = clusters
            .iter()
            .map(|(c, n)| format!("{n} is in {}", short(c)))
            .collect();
        return Join::Wait {
            why: format!(
                "the nodes in a Primary component are in different clusters ({}): waiting",
                named.join(", ")
            ),
        };
    }
    let running = clusters.first().copied();
    // the newest position of the running cluster, and the node holding it
    let newest = joinable
        .iter()
        .filter_map(|&n| state(n).seqno.map(|q| (q, n)))
        .max_by_key(|&(q, n)| (q, std::cmp::Reverse(n)));
    let left_out = joinable
        .iter()
        .any(|&n| state(n).left_out.iter().any(|l| l == me));

    let mut notes: Vec<String> = Vec::new();
    let mut aside = None;
    if let Some(name) = &local.foreign {
        aside = Some(Aside {
            kind: None,
            headline: "DATA OF ANOTHER CLUSTER",
            reason: format!(
                "volume of cluster '{name}', this node is configured for '{}'",
                cluster.name
            ),
        });
    } else if let (Some(uuid), Some((c, n))) = (&local.uuid, running) {
        if uuid != c {
            aside = Some(Aside {
                kind: None,
                headline: "DATA OF ANOTHER CLUSTER",
                reason: format!(
                    "its state uuid {uuid} is not the running cluster's {c} (seen on {n})"
                ),
            });
        }
    }
    if aside.is_none() && local.uuid.is_none() {
        match local.data {
            Data::Tables => {
                aside = Some(Aside {
                    kind: Some("noposition"),
                    headline: "NO USABLE POSITION",
                    reason: "the data directory has no position to join the cluster from".into(),
                });
            }
            Data::Leftovers => notes.push(
                "the data directory holds no tables and no position (a failed join's leftovers): the join replaces it with a full copy (SST)".into(),
            ),
            Data::Empty => {}
        }
    }
    if aside.is_none() {
        if let (Some(mine), Some((theirs, n))) = (local.seqno, newest) {
            if mine > theirs {
                aside = Some(Aside {
                    kind: None,
                    headline: "WARNING: THIS NODE IS AHEAD of the running cluster",
                    reason: format!(
                        "position {mine} > {theirs} on {n}, the newest of {}: its last {} transactions are not in the cluster",
                        joinable.join(" "),
                        mine - theirs
                    ),
                });
            }
        }
    }
    if aside.is_none() && left_out && local.data != Data::Empty {
        aside = Some(Aside {
            kind: None,
            headline: "LEFT OUT OF A BOOTSTRAP",
            reason: "the cluster was bootstrapped without this node after it was silent for long; its data may hold transactions the cluster does not".into(),
        });
    }
    let verb = if joinable.len() == 1 { "runs" } else { "run" };
    let mut why = format!(
        "{} {verb} a Primary component (cluster {}): joining it",
        joinable.join(" "),
        running.map_or("unknown", |(c, _)| short(c))
    );
    for note in notes {
        why = format!("{why}; {note}");
    }
    Join::Join {
        primaries: joinable.iter().map(|&n| n.to_owned()).collect(),
        aside,
        left_out,
        why,
    }
}

fn short(uuid: &str) -> &str {
    uuid.get(..8).unwrap_or(uuid)
}

impl Local {
    /// From the entrypoint's words: `--position UUID:SEQNO|none` (seqno -1:
    /// the uuid alone is known; the zero uuid: none), `--data
    /// empty|tables|leftovers`, `--foreign NAME` (empty: the volume is this
    /// cluster's).
    pub fn parse(position: &str, data: &str, foreign: &str) -> anyhow::Result<Self> {
        let (uuid, seqno) = match position {
            "none" => (None, None),
            given => {
                let (uuid, seqno) = given
                    .split_once(':')
                    .context("--position is UUID:SEQNO or none")?;
                let shaped = uuid.len() == 36
                    && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                    && uuid.split('-').map(str::len).eq([8, 4, 4, 4, 12]);
                if !shaped {
                    bail!("--position: {uuid:?} is not a state uuid");
                }
                let seqno: i64 = seqno
                    .parse()
                    .with_context(|| format!("--position: seqno {seqno:?} is not a number"))?;
                if uuid == ZERO_UUID {
                    (None, None)
                } else {
                    (Some(uuid.to_owned()), u64::try_from(seqno).ok())
                }
            }
        };
        let data = match data {
            "empty" => Data::Empty,
            "tables" => Data::Tables,
            "leftovers" => Data::Leftovers,
            other => bail!("--data is empty, tables or leftovers, not {other:?}"),
        };
        if foreign.len() > 64 || foreign.chars().any(char::is_control) {
            bail!("--foreign: a cluster name, at most 64 printable characters");
        }
        Ok(Self {
            foreign: (!foreign.is_empty()).then(|| foreign.to_owned()),
            uuid,
            seqno,
            data,
        })
    }
}

/// "KEY VALUE" lines, the key alone when the value is empty, as the shell
/// reads them (`read -r key value`): action, primaries (space separated),
/// aside_kind, aside_headline, aside_reason, left_out (yes|no), why.
impl fmt::Display for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = String::new();
        let (action, primaries, aside, left_out, why) = match self {
            Join::Elect => ("elect", none.clone(), None, false, &none),
            Join::Wait { why } => ("wait", none.clone(), None, false, why),
            Join::Join {
                primaries,
                aside,
                left_out,
                why,
            } => ("join", primaries.join(" "), aside.as_ref(), *left_out, why),
        };
        let lines = [
            ("action", action.to_owned()),
            ("primaries", primaries),
            (
                "aside_kind",
                aside.and_then(|a| a.kind).unwrap_or_default().to_owned(),
            ),
            (
                "aside_headline",
                aside.map(|a| a.headline).unwrap_or_default().to_owned(),
            ),
            (
                "aside_reason",
                aside.map(|a| a.reason.clone()).unwrap_or_default(),
            ),
            ("left_out", if left_out { "yes" } else { "no" }.to_owned()),
            ("why", why.clone()),
        ];
        let text: Vec<String> = lines
            .iter()
            .map(|(key, value)| match value.as_str() {
                "" => (*key).to_owned(),
                value => format!("{key} {value}"),
            })
            .collect();
        f.write_str(&text.join("\n"))
    }
}

#[cfg(test)]
#[path = "galera_join_tests.rs"]
mod tests;
