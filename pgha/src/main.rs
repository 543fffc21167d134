//! `pgha`: the PostgreSQL and MariaDB Galera nodes' entrypoints ask this
//! binary what to do, and do it. Each command reads its facts from
//! arguments and standard input and prints its answer (one line, but five
//! for galera-nominate); the rules are in [`pgha::rules`], [`pgha::start`],
//! [`pgha::supervise`] and [`pgha::galera`].
//!
//!   pgha fork-point --timeline N  < NEW.history
//!       where timeline N ends in the newer timeline's history
//!   pgha before-rewind --was primary|standby --mine TLI --theirs TLI|unknown
//!        --fork LSN|none --fork-segment present|gone --checkpoint LSN|unknown
//!                                         < pg_waldump listing, its errors too
//!       "skip WHY", "keep-whole WHY", "discards RECORDS",
//!       "keep-aside RECORDS COMMITS" or "alarm RECORDS COMMITS"
//!   pgha before-promote  < what the promote step saw (see pgha::partners)
//!       "go", "wait REASON" or "refuse REASON"
//!   pgha pool  < Pgpool-II's view of each backend and the node's own (see pgha::pool)
//!       "none [WHY]", "detach NAME WHY", "attach NAME WHY" or "promote NAME WHY"
//!   pgha start  < what a starting node observed (see pgha::start)
//!       "clone NAME", "init", "reclone NAME WHY", "follow NAME",
//!       "rejoin NAME", "start-primary WHY" or "wait WHY"
//!   pgha recover  < the start step that failed, and what follows (see pgha::recover)
//!       "again WHY", "rejoin NAME WHY" or "clone NAME WHY"
//!   pgha fence  < what a running primary saw of its partners (see pgha::supervise)
//!       "stay" or "fence WHY"
//!   pgha stray  < what a running standby saw (see pgha::supervise)
//!       "ok", "stray" or "restart WHY"
//!   pgha failover  < what a running standby's watcher saw (see pgha::failover)
//!       "ok", "wait WHY", "follow NAME WHY" or "promote WHY"
//!   pgha galera-nominate --nodes A,B,C --waited S --majority-after S
//!                        --first-node NAME --cluster-name NAME --me NAME
//!                        < each node's /state lines (see pgha::galera)
//!       which Galera node bootstraps: five lines, "KEY VALUE" (the key
//!       alone when the value is empty), rules in [`pgha::galera`]:
//!         nominee NAME      the node that should bootstrap (none: wait)
//!         basis A,B         the nodes whose state counted
//!         left_out C        the nodes a bootstrap would go on without
//!         why TEXT          the reason, for the log
//!         bootstrap yes|no  whether this node (--me) bootstraps now
//!   pgha galera-join --nodes A,B,C --first-node NAME --cluster-name NAME --me NAME
//!                    --position UUID:SEQNO|none --data empty|tables|leftovers
//!                    --foreign NAME|""  < each node's /state lines
//!       whether a starting Galera node joins partners, and what it keeps
//!       aside first (see pgha::galera_join): seven "KEY VALUE" lines,
//!       action join|wait|elect, primaries, aside_kind, aside_headline,
//!       aside_reason, left_out yes|no, why

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};
use pgha::galera::{self, Nomination};
use pgha::rules::{self, Promote};
use pgha::{failover, galera_join, lines, recover, start, supervise, Lsn};

const USAGE: &str = "usage: pgha fork-point --timeline N < HISTORY\n       pgha before-rewind --was primary|standby --mine TLI --theirs TLI|unknown --fork LSN|none --fork-segment present|gone --checkpoint LSN|unknown < WALDUMP\n       pgha before-promote < PARTNERS\n       pgha pool < BACKENDS\n       pgha start < OBSERVED\n       pgha recover < FAILED\n       pgha fence < PARTNERS\n       pgha stray < OBSERVED\n       pgha failover < OBSERVED\n       pgha galera-nominate --nodes A,B,C --waited S --majority-after S --first-node NAME --cluster-name NAME --me NAME < STATES\n       pgha galera-join --nodes A,B,C --first-node NAME --cluster-name NAME --me NAME --position UUID:SEQNO|none --data empty|tables|leftovers --foreign NAME < STATES";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgha: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<String> {
    let (command, options) = args.split_first().context(USAGE)?;
    let option = |name: &str| -> anyhow::Result<&str> {
        let at = options
            .iter()
            .position(|a| a == name)
            .with_context(|| format!("{command} needs {name}\n{USAGE}"))?;
        options
            .get(at + 1)
            .map(String::as_str)
            .with_context(|| format!("{name} needs a value"))
    };
    let mut input = String::new();
    match command.as_str() {
        "fork-point" => {
            let timeline: u32 = option("--timeline")?
                .parse()
                .context("--timeline must be a number")?;
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the history file")?;
            match rules::fork_point(&input, timeline)? {
                Some(lsn) => Ok(lsn.to_string()),
                None => bail!("the history does not pass through timeline {timeline}"),
            }
        }
        "before-rewind" => {
            let known = |name: &str, unknown: &str| -> anyhow::Result<Option<&str>> {
                let value = option(name)?;
                Ok((value != unknown).then_some(value))
            };
            let seen = rules::RewindSeen {
                was_primary: match option("--was")? {
                    "primary" => true,
                    "standby" => false,
                    other => bail!("--was must be primary or standby, got {other:?}"),
                },
                mine: option("--mine")?
                    .parse()
                    .context("--mine must be a timeline")?,
                theirs: known("--theirs", "unknown")?
                    .map(|t| t.parse().context("--theirs must be a timeline or unknown"))
                    .transpose()?,
                fork: known("--fork", "none")?
                    .map(|f| f.parse::<Lsn>())
                    .transpose()?,
                fork_segment: match option("--fork-segment")? {
                    "present" => true,
                    "gone" => false,
                    other => bail!("--fork-segment must be present or gone, got {other:?}"),
                },
                checkpoint: known("--checkpoint", "unknown")?
                    .map(|c| c.parse::<Lsn>())
                    .transpose()?,
            };
            // Unbounded: pg_waldump's own listing of what this node wrote
            // past the fork, however long.
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the WAL listing")?;
            Ok(rules::before_rewind(&seen, &input).to_string())
        }
        "before-promote" => {
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading what the promote step saw")?;
            let (mine, partners) = pgha::partners::parse(&input)?;
            Ok(match rules::before_promote(mine, &partners) {
                Promote::Go => "go".to_owned(),
                Promote::Wait(why) => format!("wait {why}"),
                Promote::Refuse(why) => format!("refuse {why}"),
            })
        }
        "pool" => {
            let backends = pgha::pool::parse(&observations("the backends")?)?;
            Ok(pgha::pool::decide(&backends).to_string())
        }
        "start" => {
            let observed = start::parse(&observations("what the node observed")?)?;
            Ok(start::decide(&observed).to_string())
        }
        "fence" => {
            let (mine, partners) = supervise::parse_fence(&observations("the partners' roles")?)?;
            Ok(supervise::fence(mine, &partners).to_string())
        }
        "stray" => {
            let seen = supervise::parse_stray(&observations("what the standby saw")?)?;
            Ok(supervise::stray(&seen).to_string())
        }
        "failover" => {
            let seen = failover::parse(&observations("what the standby's watcher saw")?)?;
            Ok(failover::decide(&seen).to_string())
        }
        "galera-nominate" => {
            let seconds = |name: &str| -> anyhow::Result<u64> {
                option(name)?
                    .parse()
                    .with_context(|| format!("{name} must be a number of seconds"))
            };
            let cluster = galera::Cluster::new(
                option("--nodes")?,
                option("--cluster-name")?,
                option("--first-node")?,
                seconds("--majority-after")?,
            )?;
            let waited = seconds("--waited")?;
            let states = galera_states(&cluster)?;
            let me = galera_me(&cluster, option("--me")?)?;
            let mut nomination = galera::nominate(&cluster, &states, waited);
            let bootstrap = match galera::may_bootstrap(me, &nomination, &states) {
                Ok(()) => "yes",
                Err(why) => {
                    if !why.is_empty() {
                        nomination.why = format!("{}; {why}", nomination.why);
                    }
                    "no"
                }
            };
            Ok(format!(
                "{}\nbootstrap {bootstrap}",
                nomination_lines(&nomination)
            ))
        }
        "recover" => {
            let observed = recover::parse(&observations("the failed step")?)?;
            Ok(recover::recover(&observed).to_string())
        }
        "galera-join" => {
            // The election's settings that the join does not read.
            let cluster = galera::Cluster::new(
                option("--nodes")?,
                option("--cluster-name")?,
                option("--first-node")?,
                0,
            )?;
            let local = galera_join::Local::parse(
                option("--position")?,
                option("--data")?,
                option("--foreign")?,
            )?;
            let states = galera_states(&cluster)?;
            let me = galera_me(&cluster, option("--me")?)?;
            Ok(galera_join::decide(&cluster, me, &local, &states).to_string())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// The nodes' `/state` lines on standard input (see [`galera::parse`]).
fn galera_states(cluster: &galera::Cluster) -> anyhow::Result<galera::States> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(galera::MAX_INPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .context("reading the nodes' states")?;
    if bytes.len() > galera::MAX_INPUT {
        bail!("the states are longer than {} bytes", galera::MAX_INPUT);
    }
    let input = String::from_utf8(bytes).context("the nodes' states are not UTF-8")?;
    galera::parse(&cluster.nodes, &input)
}

/// `--me`, one of the nodes.
fn galera_me<'a>(cluster: &galera::Cluster, me: &'a str) -> anyhow::Result<&'a str> {
    if !cluster.nodes.iter().any(|n| n == me) {
        bail!("--me {me:?} is not one of the nodes");
    }
    Ok(me)
}

/// Standard input, at most [`lines::MAX_INPUT`] bytes of UTF-8: `what`
/// it holds, for an error.
fn observations(what: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(lines::MAX_INPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() > lines::MAX_INPUT {
        bail!("{what}: longer than {} bytes", lines::MAX_INPUT);
    }
    String::from_utf8(bytes).with_context(|| format!("{what}: not UTF-8"))
}

/// The nomination as "KEY VALUE" lines, the key alone when the value is
/// empty: the shell reads them with `read -r key value`, no prose parsed.
fn nomination_lines(n: &Nomination) -> String {
    [
        ("nominee", n.nominee.clone().unwrap_or_default()),
        ("basis", n.basis.join(",")),
        ("left_out", n.left_out.join(",")),
        ("why", n.why.clone()),
    ]
    .iter()
    .map(|(key, value)| match value.as_str() {
        "" => (*key).to_owned(),
        value => format!("{key} {value}"),
    })
    .collect::<Vec<_>>()
    .join("\n")
}
