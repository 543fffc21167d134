//! When a vote written to a Redis node is safe to acknowledge: the rule, as
//! a pure function of what the Sentinels and the node said.
//!
//! Sentinel is not a consensus system. `WAIT 1` on the primary proves that
//! *some* replica holds a vote, not that the replica the Sentinels promote
//! next holds it. Two ways to lose an acknowledged vote follow from that,
//! both seen or reasoned about in this project:
//!
//! - The primary freezes; the Sentinels promote one replica (R2). The
//!   primary thaws before the other replica (R3) is re-pointed. A vote then
//!   written to the old primary is confirmed by R3, and lost when R3 full-
//!   resyncs from R2, whose history forked before it.
//! - The Sentinels pick the replica to promote from an `INFO` that may be a
//!   second old; the replica that confirmed a vote may not be the one
//!   promoted.
//!
//! The rule that closes both: **wait for every replica that could be
//! promoted**, and only on the node a majority of the Sentinels names.
//! A replica that stopped replicating because it was promoted never
//! confirms, so the `WAIT` fails and the vote is refused; a vote confirmed
//! by every promotable replica survives whichever one is promoted. A
//! replica leaves the count only when it cannot be promoted or cannot
//! confirm anything any more:
//!
//! - a majority of all Sentinels report it down or disconnected (Sentinel
//!   never promotes such a replica), or
//! - the primary itself reports its link silent for longer than
//!   [`LINK_SILENT_S`] (a replica cut off from the primary alone: without
//!   this, one such cut would stop every vote until `repl-timeout`), or
//!   still copying the primary's data (a restarted replica: it holds less
//!   than the other one, and Sentinel promotes the replica with the most).
//!
//! A replica the primary does not list at all (it was just promoted, or is
//! restarting) stays counted: that is the failover window itself. And while
//! any Sentinel reports a failover under way, nothing is acknowledged.
//! Everything here concerns one fault at a time; see the README for what two
//! faults at once can still do.

use std::collections::{BTreeSet, HashMap};

/// A replica whose link the primary reports silent this long (seconds since
/// its last acknowledgement; replicas acknowledge every second) no longer
/// counts: it is cut off and cannot confirm anything.
pub const LINK_SILENT_S: u64 = 2;

/// What one Sentinel said about the monitored primary and its replicas
/// (`SENTINEL master NAME` and `SENTINEL replicas NAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentinelReport {
    /// The node this Sentinel names primary (its announced host name).
    pub primary: String,
    /// Its flags for the primary: `master`, `s_down`, `o_down`,
    /// `failover_in_progress`, …
    pub primary_flags: Vec<String>,
    /// Every replica it knows, with its flags.
    pub replicas: Vec<ReplicaReport>,
    /// The epoch of the failover that made this its primary (`config-epoch`):
    /// a Sentinel adopts another's view only from a higher one.
    pub config_epoch: u64,
    /// The primary's `run_id`, as the Sentinel last read it from the node's
    /// `INFO` (empty until it has: just after a failover).
    pub primary_run_id: String,
}

/// One replica as a Sentinel sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaReport {
    pub name: String,
    pub flags: Vec<String>,
    /// Its `run_id` (empty until the Sentinel has read it).
    pub run_id: String,
}

impl ReplicaReport {
    /// Down or unreachable in this Sentinel's eyes: never promoted by it.
    fn unreachable(&self) -> bool {
        self.flags
            .iter()
            .any(|f| matches!(f.as_str(), "s_down" | "o_down" | "disconnected"))
    }
}

/// What the node a vote was written to says of itself (`INFO replication`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Its announced name (`replica-announce-ip`), as [`name_of`] finds it
    /// from its `run_id`; empty when unknown.
    pub name: String,
    /// The `run_id` of its process (`INFO server`): how a client that
    /// reaches it through a proxy tells which node it is.
    pub run_id: String,
    /// `role:master`.
    pub is_primary: bool,
    /// Its replicas: name, seconds since each last acknowledged (`lag`),
    /// and whether it is `online` (not still copying the data).
    pub links: Vec<Link>,
}

/// One replica as the primary lists it (`slaveN:` of `INFO replication`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub lag_s: u64,
    pub online: bool,
}

impl Link {
    /// It confirms nothing now: cut off, or still copying the data.
    fn useless(&self) -> bool {
        !self.online || self.lag_s > LINK_SILENT_S
    }
}

/// What to do with votes written to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledge after `WAIT replicas`.
    Wait { replicas: u32 },
    /// Acknowledge nothing; the reason is for logs and `/readyz`.
    Refuse(String),
}

/// The rule. `sentinels` holds one entry per configured Sentinel (`None`:
/// it did not answer); `node` is what the node written to said;
/// `min_replicas` is the floor (`VOTE_MIN_REPLICAS`).
pub fn decide(
    sentinels: &[Option<SentinelReport>],
    node: &NodeReport,
    min_replicas: u32,
) -> Verdict {
    let majority = sentinels.len() / 2 + 1;
    let answered: Vec<&SentinelReport> = sentinels.iter().flatten().collect();
    if let Some(s) = answered
        .iter()
        .find(|s| s.primary_flags.iter().any(|f| f == "failover_in_progress"))
    {
        return Verdict::Refuse(format!("a failover of {} is under way", s.primary));
    }
    let Some(primary) = named_by_majority(sentinels) else {
        return Verdict::Refuse(format!(
            "no majority of the {} Sentinels names one primary ({} answered)",
            sentinels.len(),
            answered.len()
        ));
    };
    if node.name != primary {
        return Verdict::Refuse(format!(
            "the vote went to {}, but the Sentinels name {primary}",
            if node.name.is_empty() {
                "an unknown node"
            } else {
                &node.name
            }
        ));
    }
    if !node.is_primary {
        return Verdict::Refuse(format!("{primary} does not say it is the primary"));
    }
    // Every replica any Sentinel naming this primary knows of.
    let electors: Vec<&&SentinelReport> =
        answered.iter().filter(|s| s.primary == primary).collect();
    let known: BTreeSet<&str> = electors
        .iter()
        .flat_map(|s| s.replicas.iter().map(|r| r.name.as_str()))
        .filter(|name| *name != primary)
        .collect();
    let counted = known
        .into_iter()
        .filter(|name| {
            let down = electors
                .iter()
                .filter(|s| {
                    s.replicas
                        .iter()
                        .any(|r| r.name == *name && r.unreachable())
                })
                .count();
            // A restarted replica can be listed twice until its old link
            // times out: it is useless only if no link of it is any good.
            let mut links = node.links.iter().filter(|l| l.name == *name).peekable();
            let useless = links.peek().is_some() && links.all(Link::useless);
            down < majority && !useless
        })
        .count();
    Verdict::Wait {
        replicas: u32::try_from(counted).unwrap_or(u32::MAX).max(min_replicas),
    }
}

/// The node a majority of all configured Sentinels (`None`: silent) names.
pub fn named_by_majority(sentinels: &[Option<SentinelReport>]) -> Option<&str> {
    let majority = sentinels.len() / 2 + 1;
    let mut naming: HashMap<&str, usize> = HashMap::new();
    for s in sentinels.iter().flatten() {
        *naming.entry(s.primary.as_str()).or_default() += 1;
    }
    naming
        .into_iter()
        .find(|(_, n)| *n >= majority)
        .map(|(name, _)| name)
}

/// What a Sentinel does about the primary it names (see [`follow_majority`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Follow {
    Stay,
    /// Monitor this node instead: a majority of the Sentinels names it.
    Adopt(String),
    /// Restart at once on this node: this Sentinel's own failover promoted
    /// it, the others already name it, and it died (see [`follow_majority`]).
    Finish(String),
}

/// Sentinel adopts another Sentinel's primary only from a higher config
/// epoch. A Sentinel that led a failover whose new primary died at once can
/// end that failover (by timeout) after the others already failed over
/// again, on the same epoch it learnt from them: it then names a primary
/// nobody else does, for good (seen here, and redis/redis#7145). Each
/// Sentinel therefore checks itself against the majority: `me` is what it
/// says, `others` what every other configured Sentinel says (`None`:
/// silent). It adopts the majority's primary only when
///   - a majority of all Sentinels, itself counted, names another node;
///   - none of them, itself included, reports a failover under way;
///   - each of those it would follow is on an epoch at least as new as its
///     own (a newer view of its own would spread to them by itself).
///
/// The caller acts only when the answer lasts (several hello periods),
/// since a Sentinel that just switched is a moment ahead of the others.
///
/// One case cannot wait: the leader of a failover keeps naming the old
/// primary until its failover ends, and it ends only once the node it
/// promoted answers. If that node dies right after its promotion, the
/// leader can neither vote for its replacement (it is asked about a node it
/// does not monitor) nor lead one, and the two others split their votes:
/// measured here, three tries 10 s apart, all split, until Swarm restarted
/// the dead node 28 s later. So a Sentinel with a failover under way
/// restarts at once on node X ([`Follow::Finish`]) when X is another node
/// than it names, and enough others (with it, a majority of all) name X on
/// an epoch at least as new as its own and report X down. Its saved
/// configuration already names X (Sentinel writes the promoted replica as
/// the primary), and a restarted Sentinel votes and leads at once.
pub fn follow_majority(me: &SentinelReport, others: &[Option<SentinelReport>]) -> Follow {
    let in_failover =
        |s: &SentinelReport| s.primary_flags.iter().any(|f| f == "failover_in_progress");
    if in_failover(me) {
        return finish_failover(me, others);
    }
    if others.iter().flatten().any(in_failover) {
        return Follow::Stay;
    }
    let mut all = vec![Some(me.clone())];
    all.extend(others.iter().cloned());
    let Some(named) = named_by_majority(&all) else {
        return Follow::Stay;
    };
    if named == me.primary {
        return Follow::Stay;
    }
    let behind = others
        .iter()
        .flatten()
        .filter(|s| s.primary == named)
        .any(|s| s.config_epoch < me.config_epoch);
    if behind {
        Follow::Stay
    } else {
        Follow::Adopt(named.to_owned())
    }
}

/// The leader's case of [`follow_majority`]: its successor died and the
/// others already name it.
fn finish_failover(me: &SentinelReport, others: &[Option<SentinelReport>]) -> Follow {
    let all = others.len() + 1;
    let majority = all / 2 + 1;
    let down = |s: &SentinelReport| {
        s.primary_flags
            .iter()
            .any(|f| f == "s_down" || f == "o_down")
    };
    let mut naming: HashMap<&str, usize> = HashMap::new();
    for s in others.iter().flatten() {
        if s.primary != me.primary && s.config_epoch >= me.config_epoch && down(s) {
            *naming.entry(s.primary.as_str()).or_default() += 1;
        }
    }
    let mut enough = naming.into_iter().filter(|(_, n)| n + 1 >= majority);
    match (enough.next(), enough.next()) {
        (Some((node, _)), None) => Follow::Finish(node.to_owned()),
        // None, or the others name two different nodes: nothing to follow.
        _ => Follow::Stay,
    }
}

/// Reads a Sentinel's answers: `master` is `SENTINEL master NAME` as
/// field/value pairs, `replicas` is `SENTINEL replicas NAME`.
pub fn sentinel_report(
    master: &HashMap<String, String>,
    replicas: &[HashMap<String, String>],
) -> Option<SentinelReport> {
    let flags = |m: &HashMap<String, String>| -> Vec<String> {
        m.get("flags")
            .map(|f| f.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    Some(SentinelReport {
        primary: master.get("ip")?.clone(),
        primary_flags: flags(master),
        config_epoch: master
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        primary_run_id: master.get("runid").cloned().unwrap_or_default(),
        replicas: replicas
            .iter()
            .filter_map(|r| {
                Some(ReplicaReport {
                    name: r.get("ip")?.clone(),
                    flags: flags(r),
                    run_id: r.get("runid").cloned().unwrap_or_default(),
                })
            })
            .collect(),
    })
}

/// The `run_id` in a node's `INFO server`.
pub fn run_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("run_id:"))
        .filter(|id| !id.is_empty())
}

/// The name of the node whose process has `run_id`, as the answering
/// Sentinels know it (as the primary or a replica). `None` when no Sentinel
/// has read that `run_id` yet (a node just promoted or restarted), or when
/// two names claim it.
///
/// A `run_id` is drawn at random when a process starts, and a Sentinel
/// learns it from the `INFO` of the node it reaches by that name, so a
/// match is that node: this is how vote tells which node its connection
/// through HAProxy reached without the right to read the node's
/// configuration, and without a route to the node itself.
pub fn name_of<'a>(sentinels: &'a [Option<SentinelReport>], run_id: &str) -> Option<&'a str> {
    if run_id.is_empty() {
        return None;
    }
    let names: BTreeSet<&str> = sentinels
        .iter()
        .flatten()
        .flat_map(|s| {
            let primary = (s.primary_run_id == run_id).then_some(s.primary.as_str());
            let replicas = s
                .replicas
                .iter()
                .filter(|r| r.run_id == run_id)
                .map(|r| r.name.as_str());
            primary.into_iter().chain(replicas)
        })
        .collect();
    let mut names = names.into_iter();
    match (names.next(), names.next()) {
        (Some(name), None) => Some(name),
        _ => None,
    }
}

/// Whether the process with `run_id` is known not to be the primary a
/// majority names: the Sentinels naming it have read its `run_id` and it
/// is another, or they know `run_id` under another name. Votes written
/// there can never be acknowledged, so they are refused at once instead of
/// waiting for a newer word. Unknown is not elsewhere: just after a
/// failover the Sentinels have not read the new primary's `run_id` yet.
pub fn elsewhere(sentinels: &[Option<SentinelReport>], run_id: &str) -> bool {
    let Some(named) = named_by_majority(sentinels) else {
        return false;
    };
    let named_ids: BTreeSet<&str> = sentinels
        .iter()
        .flatten()
        .filter(|s| s.primary == named && !s.primary_run_id.is_empty())
        .map(|s| s.primary_run_id.as_str())
        .collect();
    if named_ids.len() == 1 {
        return !named_ids.contains(run_id);
    }
    name_of(sentinels, run_id).is_some_and(|name| name != named)
}

/// Reads `INFO server` (for the `run_id`) and `INFO replication` of the
/// node called `name`.
pub fn node_report(name: &str, info: &str) -> NodeReport {
    let mut report = NodeReport {
        name: name.to_owned(),
        run_id: run_id(info).unwrap_or_default().to_owned(),
        ..NodeReport::default()
    };
    for line in info.lines().map(str::trim) {
        if line == "role:master" {
            report.is_primary = true;
        }
        // slave0:ip=redis-2,port=6379,state=online,offset=123,lag=0
        if let Some((key, fields)) = line.split_once(':') {
            if !key.starts_with("slave") || !key[5..].bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let field = |want: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(want)?.strip_prefix('='))
            };
            if let (Some(ip), Some(lag)) = (field("ip"), field("lag")) {
                report.links.push(Link {
                    name: ip.to_owned(),
                    lag_s: lag.parse().unwrap_or(u64::MAX),
                    online: field("state") == Some("online"),
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(primary: &str, flags: &str, replicas: &[(&str, &str)]) -> Option<SentinelReport> {
        Some(SentinelReport {
            primary: primary.to_owned(),
            primary_flags: flags.split(',').map(str::to_owned).collect(),
            config_epoch: 1,
            primary_run_id: format!("id-{primary}"),
            replicas: replicas
                .iter()
                .map(|(n, f)| ReplicaReport {
                    name: (*n).to_owned(),
                    flags: f.split(',').map(str::to_owned).collect(),
                    run_id: format!("id-{n}"),
                })
                .collect(),
        })
    }

    fn node(name: &str, links: &[(&str, u64)]) -> NodeReport {
        NodeReport {
            name: name.to_owned(),
            run_id: format!("id-{name}"),
            is_primary: true,
            links: links
                .iter()
                .map(|(n, l)| Link {
                    name: (*n).to_owned(),
                    lag_s: *l,
                    online: true,
                })
                .collect(),
        }
    }

    const HEALTHY: &[(&str, &str)] = &[("redis-2", "slave"), ("redis-3", "slave")];

    fn all(primary: &str, flags: &str, replicas: &[(&str, &str)]) -> Vec<Option<SentinelReport>> {
        vec![sentinel(primary, flags, replicas); 3]
    }

    fn waits(v: &Verdict) -> Option<u32> {
        match v {
            Verdict::Wait { replicas } => Some(*replicas),
            Verdict::Refuse(_) => None,
        }
    }

    /// One row: what happens, what the Sentinels say, what the node says,
    /// and the replicas to wait for (`None`: refuse).
    type Row = (
        &'static str,
        Vec<Option<SentinelReport>>,
        NodeReport,
        Option<u32>,
    );

    #[test]
    fn table() {
        let full = node("redis-1", &[("redis-2", 0), ("redis-3", 0)]);
        let rows: Vec<Row> =
            vec![
            (
                "all healthy: wait for both replicas",
                all("redis-1", "master", HEALTHY),
                full.clone(),
                Some(2),
            ),
            (
                "one Sentinel silent: the other two still decide",
                vec![
                    None,
                    sentinel("redis-1", "master", HEALTHY),
                    sentinel("redis-1", "master", HEALTHY),
                ],
                full.clone(),
                Some(2),
            ),
            (
                "two Sentinels silent: no majority",
                vec![None, None, sentinel("redis-1", "master", HEALTHY)],
                full.clone(),
                None,
            ),
            (
                "the Sentinels disagree (a switch spreading): no majority, no vote",
                vec![
                    sentinel("redis-1", "master", HEALTHY),
                    sentinel("redis-2", "master", HEALTHY),
                    None,
                ],
                full.clone(),
                None,
            ),
            (
                "the vote reached a node the Sentinels do not name (an old primary, thawed)",
                all(
                    "redis-2",
                    "master",
                    &[("redis-1", "slave"), ("redis-3", "slave")],
                ),
                full.clone(),
                None,
            ),
            (
                "a failover under way, seen by its leader only",
                vec![
                    sentinel(
                        "redis-1",
                        "master,s_down,o_down,failover_in_progress",
                        HEALTHY,
                    ),
                    sentinel("redis-1", "master", HEALTHY),
                    sentinel("redis-1", "master", HEALTHY),
                ],
                full.clone(),
                None,
            ),
            (
                "a replica just promoted left the primary's list: it still counts, so WAIT fails",
                all("redis-1", "master", HEALTHY),
                node("redis-1", &[("redis-3", 0)]),
                Some(2),
            ),
            (
                "a replica down for a majority of Sentinels no longer counts",
                all(
                    "redis-1",
                    "master",
                    &[("redis-2", "slave,s_down"), ("redis-3", "slave")],
                ),
                node("redis-1", &[("redis-3", 0)]),
                Some(1),
            ),
            (
                "a replica down for one Sentinel only (that Sentinel is cut off) still counts",
                vec![
                    sentinel(
                        "redis-1",
                        "master",
                        &[("redis-2", "slave,s_down"), ("redis-3", "slave,s_down")],
                    ),
                    sentinel("redis-1", "master", HEALTHY),
                    sentinel("redis-1", "master", HEALTHY),
                ],
                full.clone(),
                Some(2),
            ),
            (
                "a replica disconnected from a majority no longer counts",
                all(
                    "redis-1",
                    "master",
                    &[("redis-2", "slave,disconnected"), ("redis-3", "slave")],
                ),
                full.clone(),
                Some(1),
            ),
            (
                "a replica cut off from the primary alone: silent link, not counted",
                all("redis-1", "master", HEALTHY),
                node("redis-1", &[("redis-2", 3), ("redis-3", 0)]),
                Some(1),
            ),
            (
                "a replica still copying the data (restarted): not counted",
                all("redis-1", "master", HEALTHY),
                NodeReport {
                    links: vec![
                        Link { name: "redis-2".into(), lag_s: 0, online: false },
                        Link { name: "redis-3".into(), lag_s: 0, online: true },
                    ],
                    ..full.clone()
                },
                Some(1),
            ),
            (
                "a restarted replica listed twice, its old link silent: it counts",
                all("redis-1", "master", HEALTHY),
                node("redis-1", &[("redis-2", 30), ("redis-2", 0), ("redis-3", 0)]),
                Some(2),
            ),
            (
                "a link silent for exactly the limit still counts",
                all("redis-1", "master", HEALTHY),
                node("redis-1", &[("redis-2", LINK_SILENT_S), ("redis-3", 0)]),
                Some(2),
            ),
            (
                "both replicas gone: the floor of one still applies (min-replicas-to-write)",
                all(
                    "redis-1",
                    "master",
                    &[("redis-2", "slave,s_down"), ("redis-3", "slave,s_down")],
                ),
                node("redis-1", &[]),
                Some(1),
            ),
            (
                "after a failover the old primary is a known replica: counted until it is down",
                all(
                    "redis-2",
                    "master",
                    &[("redis-1", "slave"), ("redis-3", "slave")],
                ),
                node("redis-2", &[("redis-1", 0), ("redis-3", 0)]),
                Some(2),
            ),
            (
                "a replica only one Sentinel knows still counts",
                vec![
                    sentinel("redis-1", "master", HEALTHY),
                    sentinel("redis-1", "master", &[("redis-2", "slave")]),
                    sentinel("redis-1", "master", &[("redis-2", "slave")]),
                ],
                full.clone(),
                Some(2),
            ),
            (
                "the Sentinels list the primary among replicas (stale entry): not counted",
                all(
                    "redis-1",
                    "master",
                    &[
                        ("redis-1", "slave"),
                        ("redis-2", "slave"),
                        ("redis-3", "slave"),
                    ],
                ),
                full.clone(),
                Some(2),
            ),
            (
                "a node that says it is a replica",
                all("redis-1", "master", HEALTHY),
                NodeReport {
                    is_primary: false,
                    links: vec![],
                    ..full.clone()
                },
                None,
            ),
            (
                "a node whose name is unknown",
                all("redis-1", "master", HEALTHY),
                NodeReport::default(),
                None,
            ),
            ("no Sentinel at all", vec![], full.clone(), None),
        ];
        for (what, sentinels, node, expected) in rows {
            let verdict = decide(&sentinels, &node, 1);
            assert_eq!(waits(&verdict), expected, "{what}: {verdict:?}");
        }
    }

    #[test]
    fn a_sentinel_alone_with_its_primary_adopts_the_majoritys() {
        let at = |primary: &str, flags: &str, epoch: u64| {
            let mut s = sentinel(primary, flags, HEALTHY).expect("a report");
            s.config_epoch = epoch;
            s
        };
        let adopt = |n: &str| Follow::Adopt(n.to_owned());
        // story, this Sentinel, the others, what it does
        let rows: Vec<(&str, SentinelReport, Vec<Option<SentinelReport>>, Follow)> = vec![
            (
                "all agree",
                at("redis-1", "master", 3),
                vec![Some(at("redis-1", "master", 3)); 2],
                Follow::Stay,
            ),
            (
                "ended its own failover on the epoch the others used for another primary",
                at("redis-3", "s_down,master", 4),
                vec![Some(at("redis-2", "master", 4)); 2],
                adopt("redis-2"),
            ),
            (
                "the others are on a newer epoch",
                at("redis-3", "master", 3),
                vec![Some(at("redis-2", "master", 4)); 2],
                adopt("redis-2"),
            ),
            (
                "its own view is newer: it spreads by itself",
                at("redis-3", "master", 5),
                vec![Some(at("redis-2", "master", 4)); 2],
                Follow::Stay,
            ),
            (
                "one of the two it would follow is behind it",
                at("redis-3", "master", 4),
                vec![
                    Some(at("redis-2", "master", 4)),
                    Some(at("redis-2", "master", 3)),
                ],
                Follow::Stay,
            ),
            (
                "it is leading a failover",
                at("redis-3", "master,failover_in_progress", 4),
                vec![Some(at("redis-2", "master", 4)); 2],
                Follow::Stay,
            ),
            (
                "its successor died: the others name it and find it down",
                at("redis-3", "master,failover_in_progress", 6),
                vec![
                    Some(at(
                        "redis-1",
                        "master,s_down,o_down,failover_in_progress",
                        6,
                    )),
                    Some(at("redis-1", "master,s_down,o_down", 6)),
                ],
                Follow::Finish("redis-1".into()),
            ),
            (
                "its successor died, one other silent: with it, still a majority",
                at("redis-3", "master,failover_in_progress", 6),
                vec![None, Some(at("redis-1", "master,s_down", 6))],
                Follow::Finish("redis-1".into()),
            ),
            (
                "its successor is up: the failover ends by itself",
                at("redis-3", "master,failover_in_progress", 6),
                vec![Some(at("redis-1", "master", 6)); 2],
                Follow::Stay,
            ),
            (
                "the others find a node down on an older epoch",
                at("redis-3", "master,failover_in_progress", 6),
                vec![Some(at("redis-1", "master,s_down", 5)); 2],
                Follow::Stay,
            ),
            (
                "it is itself failing over the node the others find down",
                at("redis-1", "master,s_down,failover_in_progress", 6),
                vec![Some(at("redis-1", "master,s_down,o_down", 6)); 2],
                Follow::Stay,
            ),
            (
                "the others name two different dead nodes: nothing to follow",
                at("redis-3", "master,failover_in_progress", 6),
                vec![
                    Some(at("redis-1", "master,s_down", 6)),
                    Some(at("redis-2", "master,s_down", 6)),
                ],
                Follow::Stay,
            ),
            (
                "it leads a failover and the others are silent",
                at("redis-3", "master,failover_in_progress", 6),
                vec![None, None],
                Follow::Stay,
            ),
            (
                "another is leading a failover",
                at("redis-3", "master", 4),
                vec![
                    Some(at("redis-2", "master,failover_in_progress", 4)),
                    Some(at("redis-2", "master", 4)),
                ],
                Follow::Stay,
            ),
            (
                "one other silent, the other disagrees: no majority",
                at("redis-3", "master", 4),
                vec![None, Some(at("redis-2", "master", 4))],
                Follow::Stay,
            ),
            (
                "three views: no majority",
                at("redis-3", "master", 4),
                vec![
                    Some(at("redis-1", "master", 4)),
                    Some(at("redis-2", "master", 4)),
                ],
                Follow::Stay,
            ),
            (
                "it is in the majority, one other is stale",
                at("redis-2", "master", 4),
                vec![
                    Some(at("redis-2", "master", 4)),
                    Some(at("redis-3", "master", 4)),
                ],
                Follow::Stay,
            ),
        ];
        for (story, me, others, want) in rows {
            assert_eq!(follow_majority(&me, &others), want, "{story}");
        }
    }

    #[test]
    fn refusals_say_why() {
        let v = decide(&all("redis-2", "master", HEALTHY), &node("redis-1", &[]), 1);
        assert_eq!(
            v,
            Verdict::Refuse("the vote went to redis-1, but the Sentinels name redis-2".into())
        );
    }

    #[test]
    fn a_run_id_names_its_node() {
        let seen = all("redis-1", "master", HEALTHY);
        let rows: &[(&str, Option<&str>)] = &[
            ("id-redis-1", Some("redis-1")),
            ("id-redis-3", Some("redis-3")),
            ("id-unheard", None),
            ("", None),
        ];
        for (id, want) in rows {
            assert_eq!(name_of(&seen, id), *want, "{id}");
        }
        // Known to one Sentinel only (the others have not read it yet).
        let mut one = all("redis-1", "master", HEALTHY);
        for s in one.iter_mut().skip(1).flatten() {
            s.primary_run_id.clear();
        }
        assert_eq!(name_of(&one, "id-redis-1"), Some("redis-1"));
        // Claimed by two names: trusted for neither.
        let mut twice = all("redis-1", "master", HEALTHY);
        if let Some(s) = twice[2].as_mut() {
            s.replicas[0].run_id = "id-redis-1".into();
        }
        assert_eq!(name_of(&twice, "id-redis-1"), None);
        assert_eq!(name_of(&[None, None, None], "id-redis-1"), None);
    }

    #[test]
    fn a_run_id_is_elsewhere_only_when_known_to_be() {
        let seen = all(
            "redis-2",
            "master",
            &[("redis-1", "slave"), ("redis-3", "slave")],
        );
        // (what the connection reached, the named primary's id as the
        // Sentinels read it, elsewhere?)
        let rows: &[(&str, &str, bool)] = &[
            ("id-redis-2", "id-redis-2", false),
            ("the old primary, known as a replica", "id-redis-2", true),
            ("id-redis-1", "id-redis-2", true),
            ("a process nobody has read", "id-redis-2", true),
            // Just promoted: its id not read yet; only a known other name
            // is elsewhere.
            ("id-redis-1", "", true),
            ("a process nobody has read", "", false),
            ("id-redis-2", "", false),
        ];
        for (reached, named_id, want) in rows {
            let mut seen = seen.clone();
            for s in seen.iter_mut().flatten() {
                s.primary_run_id = (*named_id).to_owned();
            }
            let reached = match *reached {
                "the old primary, known as a replica" => "id-redis-1",
                other => other,
            };
            assert_eq!(elsewhere(&seen, reached), *want, "{reached} / {named_id:?}");
        }
        // No majority names anyone: nothing is known to be elsewhere.
        let split = vec![
            sentinel("redis-1", "master", HEALTHY),
            sentinel("redis-2", "master", HEALTHY),
            None,
        ];
        assert!(!elsewhere(&split, "id-redis-3"));
    }

    #[test]
    fn reads_sentinel_answers() {
        let pairs = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let master = pairs(&[
            ("name", "swarmvote"),
            ("ip", "redis-1"),
            ("flags", "master,s_down"),
            ("config-epoch", "4"),
            ("runid", "abc1"),
        ]);
        let replicas = vec![
            pairs(&[("ip", "redis-2"), ("flags", "slave"), ("runid", "abc2")]),
            pairs(&[("name", "no ip field")]),
        ];
        let report = sentinel_report(&master, &replicas).expect("has an ip");
        assert_eq!(report.primary, "redis-1");
        assert_eq!(report.primary_flags, ["master", "s_down"]);
        assert_eq!(report.replicas.len(), 1);
        assert_eq!(report.replicas[0].run_id, "abc2");
        assert_eq!(report.primary_run_id, "abc1");
        assert_eq!(report.config_epoch, 4);
        assert!(sentinel_report(&pairs(&[("flags", "master")]), &[]).is_none());
    }

    #[test]
    fn reads_info_replication() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:f00d\r\n\r\n\
                    # Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=redis-2,port=6379,state=online,offset=10,lag=0\r\n\
                    slave1:ip=redis-3,port=6379,state=send_bulk,offset=9,lag=7\r\n\
                    slave_read_only:1\r\nmaster_replid:abc\r\n";
        let r = node_report("redis-1", info);
        assert!(r.is_primary);
        assert_eq!(r.run_id, "f00d");
        assert_eq!(run_id(info), Some("f00d"));
        assert_eq!(run_id("run_id:\r\n"), None);
        let links: Vec<_> = r
            .links
            .iter()
            .map(|l| (l.name.as_str(), l.lag_s, l.online))
            .collect();
        assert_eq!(links, [("redis-2", 0, true), ("redis-3", 7, false)]);
        let replica = node_report("redis-2", "role:slave\r\nmaster_host:redis-1\r\n");
        assert!(!replica.is_primary);
        assert!(replica.links.is_empty());
    }
}
