//! The Galera bootstrap election of the wordpress stack's MariaDB nodes
//! (`wordpress/mariadb-entrypoint.sh`): when no node runs a Primary
//! component, which one bootstraps the cluster. Every node's `/state` in,
//! a nomination out.
//!
//! Every node runs this rule on the states it surveyed, and the nominee
//! bootstraps only once every node it counted nominates it too, and no
//! other node runs a Primary component ([`may_bootstrap`], the gate). So
//! the nomination must not depend on which node asks: it takes no "me";
//! only the gate does.
//!
//! The states, as the entrypoint writes them for `pgha galera-nominate`:
//! every line of every node's `/state` body (`wordpress/galera-endpoint.sh`),
//! prefixed by the shell with the name of the node it came from, so that no
//! body can speak for another node. A node without a line did not answer.
//!
//! ```text
//! mariadb-1 cluster_name=swarmvote
//! mariadb-1 phase=waiting
//! mariadb-1 has_data=1
//! mariadb-1 uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
//! mariadb-1 seqno=42
//! mariadb-3 cluster_name=swarmvote
//! ...
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};

use crate::partners::check_name;

/// The state uuid of a node that never was in a cluster: no position.
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Longer input is refused: a `/state` body is about 500 bytes.
pub const MAX_INPUT: usize = 64 * 1024;
/// Longer lines are refused (the longest value, a node list, is short).
const MAX_LINE: usize = 1024;

/// How every node of the cluster is configured (its entrypoint's
/// environment); the same on every node, or the nodes cannot agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `GALERA_NODES`: every node, in the configured order (the order the
    /// WHY texts list them in).
    pub nodes: Vec<String>,
    /// `GALERA_CLUSTER_NAME`: a node configured for another name never counts.
    pub name: String,
    /// `GALERA_FIRST_NODE`: creates the cluster when every node is empty.
    pub first_node: String,
    /// `GALERA_MAJORITY_AFTER`: seconds of waiting after which a majority may
    /// bootstrap without the nodes it cannot hear; 0: never.
    pub majority_after_s: u64,
}

impl Cluster {
    /// Checks what the rule relies on: node names (host names, each once),
    /// the first node among them, a cluster name as the entrypoint allows.
    pub fn new(
        nodes: &str,
        name: &str,
        first_node: &str,
        majority_after_s: u64,
    ) -> anyhow::Result<Self> {
        let mut list: Vec<String> = Vec::new();
        for node in nodes.split(',') {
            check_name(node).with_context(|| format!("in the node list {nodes:?}"))?;
            if list.iter().any(|known| known == node) {
                bail!("{node} given twice in the node list");
            }
            list.push(node.to_owned());
        }
        if !list.iter().any(|n| n == first_node) {
            bail!("the first node {first_node:?} is not one of the nodes ({nodes})");
        }
        if name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            bail!("a cluster name is 1-32 letters, digits, '_', '.' or '-'");
        }
        Ok(Self {
            nodes: list,
            name: name.to_owned(),
            first_node: first_node.to_owned(),
            majority_after_s,
        })
    }
}

/// What one node's `/state` says, as far as the election reads it. A key
/// the body lacks reads as empty (the shell's `kv` did the same).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    /// `cluster_name`: the cluster its entrypoint is configured for.
    pub cluster_name: String,
    /// `phase`: `waiting` (deciding, its position published), `running`, or
    /// a step in between (recovering, joining, bootstrapping, ...).
    pub phase: String,
    /// `mysqld=running`: its position is live, and a tie goes to it (it
    /// already holds the state in memory).
    pub mysqld_running: bool,
    /// `primary=0`: its mysqld is outside any Primary component.
    pub non_primary: bool,
    /// `has_data=1`: its data directory is not empty.
    pub has_data: bool,
    /// `foreign` is set: its volume belongs to a cluster of another name.
    pub foreign: bool,
    /// `uuid`: the state uuid of its position, empty when unknown.
    pub uuid: String,
    /// `seqno`: the seqno of its position; `None` when empty or -1
    /// (undefined: a crash that `--wsrep-recover` could not undo).
    pub seqno: Option<u64>,
    /// `grastate_seqno=-1`: `grastate.dat` says mysqld did not stop cleanly
    /// (or runs).
    pub crashed: bool,
    /// `safe_to_bootstrap=1`: `grastate.dat` says it left the cluster last.
    pub safe_to_bootstrap: bool,
    /// `primary=1`: its mysqld is in a Primary component (whatever its
    /// entrypoint is doing).
    pub in_primary: bool,
    /// `candidate`: the node it nominated at its last look, empty if none.
    pub candidate: String,
    /// `local_state`: its `wsrep_local_state` (4: Synced), empty when its
    /// mysqld is down.
    pub local_state: String,
    /// `cluster_uuid`: the state uuid of the cluster its mysqld is in,
    /// empty when unknown.
    pub cluster_uuid: String,
    /// `left_out`: the nodes a bootstrap of its cluster went on without
    /// (each takes a full copy when it returns).
    pub left_out: Vec<String>,
}

impl Reported {
    /// Its state counts in the vote: its entrypoint is of this cluster and
    /// either waits with its position published or runs outside a Primary
    /// component (then it may hold the newest state).
    fn counts(&self, cluster: &str) -> bool {
        self.cluster_name == cluster
            && match self.phase.as_str() {
                "waiting" => true,
                "running" => self.mysqld_running && self.non_primary,
                _ => false,
            }
    }

    /// Holds data of this cluster (foreign data is moved aside, never used).
    fn holds_data(&self) -> bool {
        self.has_data && !self.foreign
    }

    /// Its data's position, when it has a usable one.
    fn position(&self) -> Option<(&str, u64)> {
        let usable = self.holds_data() && !self.uuid.is_empty() && self.uuid != ZERO_UUID;
        self.seqno
            .filter(|_| usable)
            .map(|seqno| (self.uuid.as_str(), seqno))
    }
}

/// The nodes that answered, by name.
pub type States = BTreeMap<String, Reported>;

/// The election's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nomination {
    /// The node that should bootstrap; `None`: nobody yet, wait.
    pub nominee: Option<String>,
    /// The nodes whose state counted, in configured order: the nominee
    /// bootstraps only once each of them nominates it too.
    pub basis: Vec<String>,
    /// The nodes a decision goes on without (after `majority_after_s`): a
    /// bootstrap records them, and each takes a full copy when it returns.
    pub left_out: Vec<String>,
    /// Why, for the log: operators read it.
    pub why: String,
}

/// The election, in order:
///  * every node must be heard; after `majority_after_s` of waiting a
///    majority may go on without the others, unless their own data shows
///    that a missing node outlived them (all of them stopped cleanly and none
///    was the last: `safe_to_bootstrap=0` everywhere);
///  * every node empty (or holding another cluster's data): the first node,
///    and only with every node heard;
///  * otherwise, among the nodes with a usable position of the most common
///    state uuid, the highest seqno; ties go to a running node (it already
///    holds the state in memory), then to the first name in sort order.
pub fn nominate(cluster: &Cluster, states: &States, waited_s: u64) -> Nomination {
    let mut heard: Vec<(&str, &Reported)> = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    for node in &cluster.nodes {
        match states.get(node).filter(|s| s.counts(&cluster.name)) {
            Some(s) => heard.push((node, s)),
            None => missing.push(node),
        }
    }
    let mut out = Nomination {
        nominee: None,
        basis: heard.iter().map(|&(n, _)| n.to_owned()).collect(),
        left_out: Vec::new(),
        why: String::new(),
    };

    if !missing.is_empty() {
        let silent = missing.join(" ");
        if cluster.majority_after_s == 0 || waited_s < cluster.majority_after_s {
            let why = format!("waiting to hear from {silent}");
            return Nomination { why, ..out };
        }
        if heard.len() * 2 <= cluster.nodes.len() {
            let who = match heard.len() {
                0 => "no node".to_owned(),
                _ => format!("only {}", out.basis.join(" ")),
            };
            let why = format!(
                "{who} can be heard: not a majority of {}",
                cluster.nodes.len()
            );
            return Nomination { why, ..out };
        }
        let holding: Vec<&Reported> = heard
            .iter()
            .map(|&(_, s)| s)
            .filter(|s| s.holds_data())
            .collect();
        if holding.is_empty() {
            let why = format!(
                "every reachable node is empty, but {silent} is missing: a new cluster is only created with every node present"
            );
            return Nomination { why, ..out };
        }
        // Only clean stops tell who left last: when every reachable node
        // stopped cleanly and none of them was the last, a missing one was.
        let witness = holding
            .iter()
            .any(|s| s.crashed || s.safe_to_bootstrap || s.mysqld_running);
        if !witness {
            let why = format!(
                "{silent} silent for over {}s, but every reachable node stopped cleanly before the end (safe_to_bootstrap=0): a missing node holds the newest state; refusing to bootstrap without it",
                cluster.majority_after_s
            );
            return Nomination { why, ..out };
        }
        out.left_out = missing.iter().map(|&n| n.to_owned()).collect();
        out.why = format!(
            "WARNING: deciding WITHOUT {silent} (silent for over GALERA_MAJORITY_AFTER={}s): transactions only the missing node had are lost when it rejoins",
            cluster.majority_after_s
        );
    }

    // (name, uuid, seqno, running) of each node with a usable position
    let positioned: Vec<(&str, &str, u64, bool)> = heard
        .iter()
        .filter_map(|&(n, s)| {
            s.position()
                .map(|(uuid, seqno)| (n, uuid, seqno, s.mysqld_running))
        })
        .collect();
    if positioned.is_empty() {
        if let Some(&(n, _)) = heard.iter().find(|(_, s)| s.holds_data()) {
            let why = format!(
                "no node has a usable position ({n} has data but none could be recovered): an operator must look"
            );
            return Nomination { why, ..out };
        }
        // Only reached with every node heard: without, a node held data.
        let why = format!(
            "every node is empty: {} creates the cluster",
            cluster.first_node
        );
        return Nomination {
            nominee: Some(cluster.first_node.clone()),
            why,
            ..out
        };
    }

    match newest(&positioned) {
        Ok((name, uuid, seqno)) => {
            let short: String = uuid.chars().take(8).collect();
            let newest = format!("{name} has the newest state ({short}:{seqno})");
            Nomination {
                nominee: Some(name.to_owned()),
                why: match out.why.as_str() {
                    "" => newest,
                    warning => format!("{warning}; {newest}"),
                },
                ..out
            }
        }
        Err(why) => Nomination { why, ..out },
    }
}

/// The gate: whether `me` bootstraps now. Only the nominee does, only while
/// no other node runs a Primary component (it joins that instead), and only
/// once every other node the nomination counted nominates it too: each
/// node saw the states at its own moment, and two bootstraps must never
/// come from two views. `Err`: why not, for the log (empty when `me` is
/// simply not the nominee).
pub fn may_bootstrap(me: &str, nomination: &Nomination, states: &States) -> Result<(), String> {
    if nomination.nominee.as_deref() != Some(me) {
        return Err(String::new());
    }
    let primaries: Vec<&str> = states
        .iter()
        .filter(|(name, s)| name.as_str() != me && s.in_primary)
        .map(|(name, _)| name.as_str())
        .collect();
    if !primaries.is_empty() {
        return Err(format!(
            "{} already in a Primary component: joining it instead",
            primaries.join(" and ")
        ));
    }
    for other in nomination.basis.iter().filter(|n| n.as_str() != me) {
        let theirs = states.get(other).map_or("", |s| s.candidate.as_str());
        if theirs != me {
            return Err(format!(
                "waiting for {other} to agree (it nominates '{theirs}')"
            ));
        }
    }
    Ok(())
}

/// Of the nodes with a usable position, (name, uuid, seqno, running), the
/// one to bootstrap, (name, uuid, seqno): of the most common state uuid, the
/// highest seqno; on a tie the running node, then the first name. `Err`:
/// why none.
fn newest<'a>(
    positioned: &[(&'a str, &'a str, u64, bool)],
) -> Result<(&'a str, &'a str, u64), String> {
    // per uuid: how many nodes hold it, and the best of them
    type Best<'a> = (u64, bool, Reverse<&'a str>);
    let mut uuids: BTreeMap<&str, (usize, Best)> = BTreeMap::new();
    for &(name, uuid, seqno, running) in positioned {
        let key = (seqno, running, Reverse(name));
        uuids
            .entry(uuid)
            .and_modify(|(count, best)| {
                *count += 1;
                *best = (*best).max(key);
            })
            .or_insert((1, key));
    }
    let most = uuids.values().map(|&(count, _)| count).max().unwrap_or(0);
    let top: Vec<(&str, Best)> = uuids
        .iter()
        .filter(|&(_, &(count, _))| count == most)
        .map(|(&uuid, &(_, best))| (uuid, best))
        .collect();
    match top[..] {
        [(uuid, (seqno, _, Reverse(name)))] => Ok((name, uuid, seqno)),
        _ => {
            let mut counted: Vec<(usize, &str)> = uuids
                .iter()
                .map(|(&uuid, &(count, _))| (count, uuid))
                .collect();
            counted.sort_by_key(|&(count, uuid)| (Reverse(count), uuid));
            let counted: Vec<String> = counted
                .iter()
                .map(|(count, uuid)| format!("{count} {uuid}"))
                .collect();
            Err(format!(
                "the nodes hold data of different clusters and none has a majority ({}): an operator must decide",
                counted.join(", ")
            ))
        }
    }
}

/// Each node's `/state` as the entrypoint passes them (see the module
/// header). Refused: a node not in `nodes`, a key given twice for one node,
/// a position that is not one (`uuid`, `seqno`), and input longer than any
/// `/state` bodies are.
pub fn parse(nodes: &[String], input: &str) -> anyhow::Result<States> {
    if input.len() > MAX_INPUT {
        bail!(
            "the states are {} bytes long, more than {MAX_INPUT}",
            input.len()
        );
    }
    let mut states = States::new();
    let mut given: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (n, line) in input.lines().enumerate() {
        let at = || {
            format!(
                "line {}: {:?}",
                n + 1,
                line.chars().take(80).collect::<String>()
            )
        };
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            bail!("{}: longer than {MAX_LINE} bytes", at());
        }
        let Some((name, (key, value))) = line
            .split_once(' ')
            .and_then(|(name, kv)| Some((name, kv.split_once('=')?)))
        else {
            bail!("{}: expected NAME KEY=VALUE", at());
        };
        check_name(name).with_context(at)?;
        if !nodes.iter().any(|known| known == name) {
            bail!(
                "{}: {name} is not one of the nodes ({})",
                at(),
                nodes.join(",")
            );
        }
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("{}: a key is lowercase letters, digits or '_'", at());
        }
        if !given.insert((name, key)) {
            bail!("{}: {name}'s {key} given twice", at());
        }
        let s = states.entry(name.to_owned()).or_default();
        match key {
            "cluster_name" => s.cluster_name = value.to_owned(),
            "phase" => s.phase = value.to_owned(),
            "mysqld" => s.mysqld_running = value == "running",
            "primary" => {
                s.non_primary = value == "0";
                s.in_primary = value == "1";
            }
            "candidate" => {
                if !value.is_empty() {
                    check_name(value).with_context(at)?;
                }
                s.candidate = value.to_owned();
            }
            "has_data" => s.has_data = value == "1",
            "local_state" => s.local_state = value.to_owned(),
            "cluster_uuid" => s.cluster_uuid = uuid(value).with_context(at)?,
            "left_out" => {
                s.left_out = Vec::new();
                for node in value.split(',').filter(|n| !n.is_empty()) {
                    check_name(node).with_context(at)?;
                    s.left_out.push(node.to_owned());
                }
            }
            "foreign" => s.foreign = !value.is_empty(),
            "uuid" => s.uuid = uuid(value).with_context(at)?,
            "seqno" => s.seqno = seqno(value).with_context(at)?,
            "grastate_seqno" => s.crashed = value == "-1",
            "safe_to_bootstrap" => s.safe_to_bootstrap = value == "1",
            _ => {} // the rest of /state is for its other readers
        }
    }
    Ok(states)
}

/// A state uuid as Galera writes it (8-4-4-4-12 hex digits), or empty.
fn uuid(value: &str) -> anyhow::Result<String> {
    let groups: Vec<&str> = value.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
    if !value.is_empty() && !shaped {
        bail!("uuid must be empty or a state uuid (8-4-4-4-12 hex digits)");
    }
    Ok(value.to_owned())
}

/// A seqno as Galera writes it: a number, -1 (undefined) or empty.
fn seqno(value: &str) -> anyhow::Result<Option<u64>> {
    match value {
        "" | "-1" => Ok(None),
        digits if digits.chars().all(|c| c.is_ascii_digit()) => match digits.parse::<i64>() {
            // Galera's seqno is an int64
            Ok(seqno) => Ok(u64::try_from(seqno).ok()),
            Err(_) => bail!("seqno {digits} is past the largest Galera writes"),
        },
        _ => bail!("seqno must be empty, -1 or a number"),
    }
}

#[cfg(test)]
#[path = "galera_tests.rs"]
mod tests;
