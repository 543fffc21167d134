//! How a PostgreSQL node starts (`decide_and_start` in
//! `postgres/entrypoint.sh`): what the entrypoint observed in, one action
//! out. The entrypoint observes and asks again every second until the
//! answer is not `wait`, then does what it says.
//!
//! The rules, as the entrypoint had them in shell:
//!  * an empty data directory clones the primary. With no primary only the
//!    bootstrap node creates a cluster, and only once a partner answers and
//!    none that answers has data;
//!  * data of another cluster (another system identifier than the
//!    primary's) is kept aside, and the primary cloned;
//!  * a former standby follows the primary; a former primary rejoins it
//!    (`repmgr node rejoin --force-rewind`); a former standby never follows
//!    a primary on an older timeline than its data's, nor does a former
//!    primary rejoin one while a partner knows its newer timeline (a
//!    standby may have confirmed commits on it);
//!  * with no primary, a former standby waits: it never makes itself a
//!    writable primary at start;
//!  * a former primary with no other primary starts as the primary only
//!    when a partner answers, none is on a newer timeline, and no failover
//!    can be under way: `window` seconds have passed since the entrypoint
//!    started, or no partner is promoting and fewer than two may be running
//!    standbys. A promotion takes a standby's watcher and a second standby
//!    that confirms the primary lost (`pgha failover`, rule 4); a partner
//!    running as a primary, or waiting at start, runs no watcher, and a
//!    silent one may. (Waiting the window there was most of the 27-29 s a
//!    new primary killed right after its promotion took to replace: it
//!    came back in seconds and waited 20 s for a failover none could make.)
//!
//! What the entrypoint observed, as it writes it for `pgha start`:
//!
//! ```text
//! me pg-1
//! bootstrap-node pg-1
//! data primary
//! local-tli 3
//! local-sysid 7345017843026710561
//! primary none
//! elapsed 12
//! window 20
//! partner pg-2 reachable tli 3 data yes standby watching
//! partner pg-3 silent no-answer
//! ```
//!
//! ```text
//! me NAME               this node
//! bootstrap-node NAME   the node that may create the cluster (BOOTSTRAP_NODE)
//! data empty|standby|primary
//!                       its data directory: empty (no PG_VERSION), or what
//!                       it was when it last ran (standby.signal or not)
//! local-tli N           the timeline of its data (0 when it has none)
//! local-sysid ID|-      its system identifier (-: unknown)
//! primary none
//! primary NAME TLI ID|- each partner that answers as a registered primary
//!                       (find_primary), one line each: its timeline and
//!                       its system identifier (-: not known). The one on
//!                       the newest timeline is the primary; two on it are
//!                       no basis to choose, and the node waits
//! elapsed S             seconds since the entrypoint started
//! window S              FAILOVER_WINDOW
//! partner NAME reachable tli N|- data yes|no standby no|watching|promoting
//! partner NAME silent no-answer|unresolved
//!                       each partner as its /state answered: its timeline
//!                       (-: none), whether it has data, whether it may be
//!                       a running standby (no: it runs as a primary, or
//!                       waits at start with no postgres; promoting: its
//!                       watcher is promoting it); or why it did not answer
//!                       (no answer, or its name does not resolve)
//! ```
//!
//! Every key but `partner` and `primary` is given once, and one `partner` line per
//! partner (every partner, in the configured order: the texts list them
//! so). A system identifier reads as pg_controldata prints it (unsigned) or
//! as `pg_control_system()` returns it (a bigint, negative for clusters
//! created from 2038 on): the same 64 bits either way.
//!
//! The answer, one line: `clone NAME`, `init`, `reclone NAME WHY`,
//! `follow NAME`, `rejoin NAME`, `start-primary WHY` or `wait WHY`.

use std::fmt;

use anyhow::bail;

use crate::lines::{self, number, yes_no};
use crate::partners::check_name;
use crate::rules::{self, Primary};

/// What this node's data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// No cluster (no `PG_VERSION`).
    Empty,
    /// It was a standby when it last ran (`standby.signal`).
    Standby,
    /// It was a primary when it last ran.
    Primary,
}

/// The partner that answered as the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    /// The timeline it writes on.
    pub timeline: u32,
    /// Its cluster, when it said: data of another cluster is never mixed
    /// with its own.
    pub system_id: Option<u64>,
}

/// What a partner's `/state` said (it answers while its postgres is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Reachable {
        /// The timeline of its data, `None` when it has none.
        timeline: Option<u32>,
        /// Its data directory holds a cluster.
        data: bool,
        /// Whether it may be a running standby, which a failover could
        /// promote or count on.
        standby: Standby,
    },
    Silent(Silence),
}

/// A partner as a possible part of a failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standby {
    /// It runs as a primary, or waits at start with no postgres: it has no
    /// failover watcher, so it can neither be promoted nor confirm.
    No,
    /// It runs as a standby (or is between steps that make it one).
    Watching,
    /// Its watcher is promoting it.
    Promoting,
}

/// Why a partner did not answer, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    NoAnswer,
    /// Its name does not resolve (its task is not running).
    Unresolved,
}

/// What the entrypoint observed, once per look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub me: String,
    /// The node that may create the cluster when nobody has data.
    pub bootstrap_node: String,
    pub data: DataDir,
    /// The timeline of this node's data (0 when it has none).
    pub local_timeline: u32,
    /// This node's system identifier, `None` when unknown.
    pub local_system_id: Option<u64>,
    /// Every partner that answered as a registered primary.
    pub primaries: Vec<Found>,
    /// Seconds since the entrypoint started.
    pub elapsed_s: u64,
    /// Seconds a former primary gives a failover under way (repmgrd on a
    /// standby promotes about 5 s after the primary dies).
    pub window_s: u64,
    /// Every partner, in the configured order.
    pub partners: Vec<(String, Seen)>,
}

/// How the node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Copy the primary's data (`repmgr standby clone`) and follow it.
    Clone { from: String },
    /// Create a new cluster (`initdb`) and start as its primary.
    Init,
    /// Keep the data directory aside (it is another cluster's), then clone.
    Reclone { from: String, why: String },
    /// Start as a standby and make sure it streams from the primary.
    Follow { primary: String },
    /// It was a primary and another node is primary now: rewind onto it.
    Rejoin { primary: String },
    /// Start as the primary.
    StartPrimary { why: String },
    /// Not yet: look again shortly. Why, for the log and `/state`.
    Wait { why: String },
}

impl fmt::Display for Start {
    /// The answer line the entrypoint reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Clone { from } => write!(f, "clone {from}"),
            Start::Init => f.write_str("init"),
            Start::Reclone { from, why } => write!(f, "reclone {from} {why}"),
            Start::Follow { primary } => write!(f, "follow {primary}"),
            Start::Rejoin { primary } => write!(f, "rejoin {primary}"),
            Start::StartPrimary { why } => write!(f, "start-primary {why}"),
            Start::Wait { why } => write!(f, "wait {why}"),
        }
    }
}

/// The start rule (see the module header).
pub fn decide(o: &Observed) -> Start {
    let seen: Vec<(&str, u32)> = o
        .primaries
        .iter()
        .map(|p| (p.name.as_str(), p.timeline))
        .collect();
    let primary = match rules::newest(&seen) {
        Primary::One(name) => o.primaries.iter().find(|p| p.name == name),
        Primary::None => None,
        Primary::Ambiguous(names) => {
            return Start::Wait {
                why: format!(
                    "{} all answer as primary on timeline {}: no rule can tell which holds the acknowledged commits; waiting for the fence rule to stop the superseded one",
                    names.join(" and "),
                    o.primaries.iter().map(|p| p.timeline).max().unwrap_or(0)
                ),
            }
        }
    };
    let Some(p) = primary else {
        return match o.data {
            DataDir::Empty => empty_without_primary(o),
            DataDir::Standby => Start::Wait {
                why: format!(
                    "this node was a STANDBY and no primary is reachable among {}: not starting (a standby never makes itself a writable primary at start); waiting for a primary",
                    names(o.partners.iter().map(|(name, _)| name.as_str()), " ")
                ),
            },
            DataDir::Primary => former_primary_without_primary(o),
        };
    };
    let from = p.name.clone();
    // A primary on an older timeline than this node's data. Which history
    // holds acknowledged commits depends on who confirmed them (ANY 1):
    //  * a former standby that knows the newer timeline may have confirmed
    //    commits on it: it never follows the older primary, it waits (its
    //    knowledge fences that primary: `pgha fence`);
    //  * a former primary promoted to the newer timeline, then killed: if
    //    another partner knows its timeline, that standby may have confirmed
    //    commits on it, so it waits too; if none does, no standby ever
    //    followed it, nothing it wrote past the fork was acknowledged, and
    //    the older primary (which may have acknowledged commits since, with
    //    the standby that stayed on its history) is the one to rejoin.
    let foreign = p.system_id.is_some() && p.system_id != o.local_system_id;
    if o.data != DataDir::Empty && !foreign && p.timeline < o.local_timeline {
        let witness = reachable(o)
            .find(|&(name, tli, ..)| name != from && tli.is_some_and(|t| t >= o.local_timeline));
        let why = match (o.data, witness) {
            (DataDir::Standby, _) => Some(String::new()),
            (_, Some((name, ..))) => Some(format!(" (and {name} knows this node's timeline)")),
            _ => None,
        };
        if let Some(also) = why {
            return Start::Wait {
                why: format!(
                    "{from} runs as primary on timeline {}, older than this node's {}{also}: it was superseded; waiting for it to stop",
                    p.timeline, o.local_timeline
                ),
            };
        }
    }
    match (o.data, p.system_id) {
        (DataDir::Empty, _) => Start::Clone { from },
        (_, Some(theirs)) if Some(theirs) != o.local_system_id => Start::Reclone {
            why: format!(
                "DATA DIRECTORY BELONGS TO ANOTHER CLUSTER: local system identifier {}, primary {from} has {theirs}",
                o.local_system_id
                    .map_or_else(|| "unknown".to_owned(), |id| id.to_string())
            ),
            from,
        },
        (DataDir::Standby, _) => Start::Follow { primary: from },
        (DataDir::Primary, _) => Start::Rejoin { primary: from },
    }
}

/// An empty node and no primary: only the bootstrap node may create the
/// cluster, and only when a partner confirms it has no data and none that
/// answers has any.
fn empty_without_primary(o: &Observed) -> Start {
    if o.me != o.bootstrap_node {
        return Start::Wait {
            why: format!(
                "empty data dir: waiting for a primary to clone from ({} bootstraps the cluster)",
                o.bootstrap_node
            ),
        };
    }
    let with_data = names(
        reachable(o)
            .filter(|&(_, _, data, _)| data)
            .map(|(name, ..)| name),
        ",",
    );
    if !with_data.is_empty() {
        return Start::Wait {
            why: format!(
                "empty data dir, no primary, but partners have data ({with_data}): waiting for a primary instead of initialising a second cluster"
            ),
        };
    }
    if reachable(o).next().is_none() {
        return Start::Wait {
            why: "empty data dir, no partner reachable yet: waiting (a partner must confirm it has no data before initialising)".into(),
        };
    }
    Start::Init
}

/// A former primary and no other primary: it may be stale (a partner was
/// promoted and is down now), or a failover may be under way.
fn former_primary_without_primary(o: &Observed) -> Start {
    if reachable(o).next().is_none() {
        let silent = names(
            o.partners.iter().filter_map(|(name, seen)| match seen {
                Seen::Silent(Silence::NoAnswer) => Some(format!("{name}: no answer")),
                Seen::Silent(Silence::Unresolved) => Some(format!("{name}: name does not resolve")),
                Seen::Reachable { .. } => None,
            }),
            ", ",
        );
        return Start::Wait {
            why: format!(
                "this node was a primary but no partner answers ({silent}): refusing to start as a lone primary (it may be stale); waiting"
            ),
        };
    }
    let mine = o.local_timeline;
    let newer = names(
        reachable(o).filter_map(|(name, tli, ..)| {
            tli.filter(|&t| t > mine)
                .map(|t| format!("{name}(tli {t})"))
        }),
        ",",
    );
    if !newer.is_empty() {
        return Start::Wait {
            why: format!(
                "this node was a primary (timeline {mine}) but partners have a newer timeline: {newer} - it is stale; waiting for the new primary to come up, then it will rejoin"
            ),
        };
    }
    if o.elapsed_s < o.window_s {
        if let Some((name, ..)) = reachable(o).find(|&(.., s)| s == Standby::Promoting) {
            return Start::Wait {
                why: format!(
                    "this node was the primary and {name} is being promoted: giving that failover {}s before starting as primary",
                    o.window_s
                ),
            };
        }
        // Those that may take part in a promotion: a silent partner may be
        // a running standby this node cannot reach.
        let may: Vec<&str> = o
            .partners
            .iter()
            .filter(|(_, seen)| {
                !matches!(
                    seen,
                    Seen::Reachable {
                        standby: Standby::No,
                        ..
                    }
                )
            })
            .map(|(name, _)| name.as_str())
            .collect();
        if may.len() >= 2 {
            return Start::Wait {
                why: format!(
                    "this node was the primary and no other primary runs: giving a failover under way {}s before starting as primary ({} may take part in one)",
                    o.window_s,
                    may.join(" and ")
                ),
            };
        }
    }
    let highest = reachable(o)
        .filter_map(|(_, tli, ..)| tli)
        .max()
        .unwrap_or(0);
    Start::StartPrimary {
        why: format!(
            "this node was the primary, no other primary is running and no partner has a newer timeline (local {mine}, partners max {highest})"
        ),
    }
}

/// The partners that answered: (name, timeline, has data, standby).
fn reachable(o: &Observed) -> impl Iterator<Item = (&str, Option<u32>, bool, Standby)> {
    o.partners.iter().filter_map(|(name, seen)| match *seen {
        Seen::Reachable {
            timeline,
            data,
            standby,
        } => Some((name.as_str(), timeline, data, standby)),
        Seen::Silent(_) => None,
    })
}

fn names<T: AsRef<str>>(list: impl Iterator<Item = T>, separator: &str) -> String {
    list.map(|n| n.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(separator)
}

/// Each key but `partner`, and how its line reads.
const KEYS: &[(&str, &str)] = &[
    ("me", "me NAME"),
    ("bootstrap-node", "bootstrap-node NAME"),
    ("data", "data empty|standby|primary"),
    ("local-tli", "local-tli N"),
    ("local-sysid", "local-sysid ID|-"),
    ("elapsed", "elapsed SECONDS"),
    ("window", "window SECONDS"),
];
const PRIMARY: &str =
    "primary none, or a primary NAME TLI ID|- line per partner that answers as a primary";
const PARTNER: &str = "partner NAME reachable tli N|- data yes|no standby no|watching|promoting, or partner NAME silent no-answer|unresolved";

/// What the entrypoint observed (see the module header). Refused: an
/// unknown key, a key given twice, a line not shaped as its key reads, a
/// missing key, a partner named twice or named as this node, and a primary
/// that is not one of the partners.
pub fn parse(input: &str) -> anyhow::Result<Observed> {
    let mut given: Vec<&str> = Vec::new();
    let (mut me, mut bootstrap_node, mut data) = (String::new(), String::new(), DataDir::Empty);
    let (mut local_timeline, mut local_system_id) = (0, None);
    let (mut primaries, mut said_none): (Vec<Found>, bool) = (Vec::new(), false);
    let (mut elapsed_s, mut window_s) = (0, 0);
    let mut partners: Vec<(String, Seen)> = Vec::new();
    for line in lines::split(input)? {
        if line.key == "primary" {
            match line.words.as_slice() {
                ["none"] if !said_none && primaries.is_empty() => said_none = true,
                [name, tli, id] if !said_none => {
                    let found = Found {
                        name: line.read(named(name))?,
                        timeline: line.read(number(tli, "a timeline"))?,
                        system_id: line.read(system_id(id))?,
                    };
                    if primaries.iter().any(|p: &Found| p.name == found.name) {
                        return Err(line.err(format!("primary {name} given twice")));
                    }
                    primaries.push(found);
                }
                ["none"] | [_, _, _] => {
                    return Err(line.err("primary none is given alone, once"));
                }
                _ => return Err(line.err(format!("expected {PRIMARY}"))),
            }
            continue;
        }
        if line.key == "partner" {
            let [name, rest @ ..] = line.words.as_slice() else {
                return Err(line.err(format!("expected {PARTNER}")));
            };
            line.read(check_name(name))?;
            if partners.iter().any(|(known, _)| known.as_str() == *name) {
                return Err(line.err(format!("partner {name} given twice")));
            }
            partners.push((name.to_string(), line.read(partner(rest))?));
            continue;
        }
        let (key, shape) = line.keyed(KEYS, &mut given)?;
        match (key, line.words.as_slice()) {
            ("me", [name]) => me = line.read(named(name))?,
            ("bootstrap-node", [name]) => bootstrap_node = line.read(named(name))?,
            ("data", ["empty"]) => data = DataDir::Empty,
            ("data", ["standby"]) => data = DataDir::Standby,
            ("data", ["primary"]) => data = DataDir::Primary,
            ("local-tli", [n]) => local_timeline = line.read(number(n, "a timeline"))?,
            ("local-sysid", [id]) => local_system_id = line.read(system_id(id))?,
            ("elapsed", [s]) => elapsed_s = line.read(number(s, "elapsed"))?,
            ("window", [s]) => window_s = line.read(number(s, "window"))?,
            _ => return Err(line.err(format!("expected {shape}"))),
        }
    }
    let keys: Vec<&str> = KEYS.iter().map(|&(key, _)| key).collect();
    lines::require(&given, &keys)?;
    if !said_none && primaries.is_empty() {
        bail!("missing: primary ({PRIMARY})");
    }
    if partners.iter().any(|(name, _)| *name == me) {
        bail!("partner {me} is this node (me {me})");
    }
    for p in &primaries {
        if !partners.iter().any(|(name, _)| *name == p.name) {
            bail!("the primary {} is not one of the partners", p.name);
        }
    }
    Ok(Observed {
        me,
        bootstrap_node,
        data,
        local_timeline,
        local_system_id,
        primaries,
        elapsed_s,
        window_s,
        partners,
    })
}

fn named(name: &str) -> anyhow::Result<String> {
    check_name(name)?;
    Ok(name.to_owned())
}

/// A partner line after its name.
fn partner(words: &[&str]) -> anyhow::Result<Seen> {
    Ok(match words {
        ["reachable", "tli", tli, "data", data, "standby", standby] => Seen::Reachable {
            timeline: match *tli {
                "-" => None,
                n => Some(number(n, "a timeline")?),
            },
            data: yes_no(data, "data")?,
            standby: match *standby {
                "no" => Standby::No,
                "watching" => Standby::Watching,
                "promoting" => Standby::Promoting,
                _ => bail!("a partner's standby is no, watching or promoting"),
            },
        },
        ["silent", "no-answer"] => Seen::Silent(Silence::NoAnswer),
        ["silent", "unresolved"] => Seen::Silent(Silence::Unresolved),
        _ => bail!("expected {PARTNER}"),
    })
}

/// A system identifier: unsigned, or a negative bigint as SQL shows the
/// same 64 bits; `-` when unknown.
fn system_id(word: &str) -> anyhow::Result<Option<u64>> {
    const WHAT: &str = "a system identifier";
    Ok(match word.strip_prefix('-') {
        Some("") => None,
        Some(digits) => {
            let magnitude: u64 = number(digits, WHAT)?;
            match i64::try_from(magnitude) {
                // as u64: the two's complement, the bits pg_control holds
                Ok(m) => Some((-m) as u64),
                Err(_) if magnitude == 1 << 63 => Some(1 << 63),
                Err(_) => bail!("{WHAT} -{digits} is past a bigint"),
            }
        }
        None => Some(number(word, WHAT)?),
    })
}

#[cfg(test)]
#[path = "start_tests.rs"]
mod tests;
