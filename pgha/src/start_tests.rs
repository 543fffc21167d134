//! Each start of a PostgreSQL node as a row: what its entrypoint observed,
//! in the lines it writes, and the answer line it reads back.

use super::*;

/// pg-2, a former primary on timeline 3, both partners up with data on
/// the same timeline, no primary running, just started.
const BASE: &str = "\
me pg-2
bootstrap-node pg-1
data primary
local-tli 3
local-sysid 7000000000000000001
primary none
elapsed 0
window 20
partner pg-1 reachable tli 3 data yes standby watching
partner pg-3 reachable tli 3 data yes standby watching
";

/// BASE with `changes` in place of its lines of the same keys (partner
/// lines, if any, replace all of BASE's).
fn with(changes: &str) -> String {
    let key = |line: &str| line.split_whitespace().next().unwrap_or("").to_owned();
    let changed: Vec<String> = changes.lines().map(key).collect();
    BASE.lines()
        .filter(|line| !changed.contains(&key(line)))
        .chain(changes.lines())
        .map(|line| format!("{line}\n"))
        .collect()
}

/// BASE with `changes`, through the parser.
fn observed(changes: &str) -> Observed {
    let text = with(changes);
    parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"))
}

const EMPTY: &str = "data empty\nlocal-tli 0\nlocal-sysid -\n";
const PRIMARY_PG_1: &str = "primary pg-1 3 7000000000000000001\n";
const PRIMARY_PG_2: &str = "primary pg-2 3 7000000000000000001\n";
const WINDOW: &str = "giving a failover under way 20s before starting as primary";

#[test]
fn a_node_starts_by_the_start_rule() {
    let empty_with = |rest: &str| format!("{EMPTY}{rest}");
    let bootstrap = |partners: &str| format!("me pg-1\n{EMPTY}{partners}");
    // story, the lines changed from BASE, the answer
    let rows: &[(&str, String, &str)] = &[
        // ----------------------------------------------- an empty node --
        (
            "an empty node clones the primary",
            empty_with(PRIMARY_PG_1),
            "clone pg-1",
        ),
        (
            "...whatever cluster the primary holds, said or not",
            empty_with("primary pg-1 5 -\n"),
            "clone pg-1",
        ),
        (
            "the bootstrap node too clones a primary",
            bootstrap(&format!("{PRIMARY_PG_2}partner pg-2 reachable tli 3 data yes standby watching\npartner pg-3 silent no-answer\n")),
            "clone pg-2",
        ),
        (
            "an empty bootstrap node with no primary waits while a partner has data: never a second cluster",
            bootstrap("partner pg-2 reachable tli 3 data yes standby no\npartner pg-3 reachable tli - data no standby no\n"),
            "wait empty data dir, no primary, but partners have data (pg-2): waiting for a primary instead of initialising a second cluster",
        ),
        (
            "...both partners with data are named",
            bootstrap("partner pg-2 reachable tli 3 data yes standby watching\npartner pg-3 reachable tli 2 data yes standby watching\n"),
            "wait empty data dir, no primary, but partners have data (pg-2,pg-3): waiting for a primary instead of initialising a second cluster",
        ),
        (
            "an empty bootstrap node that hears nobody waits: a partner must confirm it has no data",
            bootstrap("partner pg-2 silent no-answer\npartner pg-3 silent unresolved\n"),
            "wait empty data dir, no partner reachable yet: waiting (a partner must confirm it has no data before initialising)",
        ),
        (
            "an empty bootstrap node whose partners answer empty creates the cluster",
            bootstrap("partner pg-2 reachable tli - data no standby no\npartner pg-3 reachable tli - data no standby no\n"),
            "init",
        ),
        (
            // As the shell had it: pg-3 may hold the cluster; when it comes
            // back it finds a primary of another cluster and is re-cloned.
            "...even when one is silent: one empty partner that answers is enough",
            bootstrap("partner pg-2 reachable tli - data no standby no\npartner pg-3 silent no-answer\n"),
            "init",
        ),
        (
            "an empty node that is not the bootstrap node waits for a primary",
            format!("{EMPTY}partner pg-1 reachable tli - data no standby no\npartner pg-3 reachable tli - data no standby no\n"),
            "wait empty data dir: waiting for a primary to clone from (pg-1 bootstraps the cluster)",
        ),
        (
            "...whatever the time",
            format!("{EMPTY}elapsed 9999\npartner pg-1 silent unresolved\npartner pg-3 silent unresolved\n"),
            "wait empty data dir: waiting for a primary to clone from (pg-1 bootstraps the cluster)",
        ),
        // -------------------------------------- data and a primary runs --
        (
            "a former standby follows the primary",
            format!("data standby\n{PRIMARY_PG_1}"),
            "follow pg-1",
        ),
        (
            "a former primary rejoins the primary (pg_rewind)",
            PRIMARY_PG_1.to_owned(),
            "rejoin pg-1",
        ),
        (
            // break-new-primary: this node was promoted to timeline 4 and
            // killed at once; pg-1, thawed, still runs on timeline 3, and
            // pg-3 followed this node (it knows timeline 4): pg-3 may have
            // confirmed commits on 4, so pg-1 is the stale one.
            "a former primary whose newer timeline a standby knows waits for the older primary to stop",
            format!("local-tli 4\n{PRIMARY_PG_1}partner pg-1 reachable tli 3 data yes standby watching\npartner pg-3 reachable tli 4 data yes standby watching\n"),
            "wait pg-1 runs as primary on timeline 3, older than this node's 4 (and pg-3 knows this node's timeline): it was superseded; waiting for it to stop",
        ),
        (
            // ...but killed before any standby followed it: nothing past the
            // fork was acknowledged, and pg-1 may have acknowledged commits
            // since, confirmed by pg-3, which stayed on timeline 3.
            "...no standby knows it: nothing on it was acknowledged, it rejoins the older primary",
            format!("local-tli 4\n{PRIMARY_PG_1}partner pg-1 reachable tli 3 data yes standby watching\npartner pg-3 reachable tli 3 data yes standby watching\n"),
            "rejoin pg-1",
        ),
        (
            "a former standby never follows a primary older than its data: it may have confirmed commits on the newer timeline",
            format!("data standby\nlocal-tli 4\n{PRIMARY_PG_1}"),
            "wait pg-1 runs as primary on timeline 3, older than this node's 4: it was superseded; waiting for it to stop",
        ),
        (
            "...one on the same timeline is followed",
            format!("data standby\nlocal-tli 3\n{PRIMARY_PG_1}"),
            "follow pg-1",
        ),
        (
            "a standby's data of another cluster is kept aside and re-cloned",
            "data standby\nprimary pg-1 3 7000000000000000002\n".to_owned(),
            "reclone pg-1 DATA DIRECTORY BELONGS TO ANOTHER CLUSTER: local system identifier 7000000000000000001, primary pg-1 has 7000000000000000002",
        ),
        (
            "...and a former primary's",
            "primary pg-1 3 7000000000000000002\n".to_owned(),
            "reclone pg-1 DATA DIRECTORY BELONGS TO ANOTHER CLUSTER: local system identifier 7000000000000000001, primary pg-1 has 7000000000000000002",
        ),
        (
            "data whose system identifier cannot be read is kept aside and re-cloned",
            format!("data standby\nlocal-sysid -\n{PRIMARY_PG_1}"),
            "reclone pg-1 DATA DIRECTORY BELONGS TO ANOTHER CLUSTER: local system identifier unknown, primary pg-1 has 7000000000000000001",
        ),
        (
            "a primary that does not say its system identifier is followed",
            "data standby\nprimary pg-1 3 -\n".to_owned(),
            "follow pg-1",
        ),
        (
            "a system identifier from 2038 on: SQL's negative bigint is pg_controldata's number",
            "data standby\nlocal-sysid 9223372036854775809\nprimary pg-1 3 -9223372036854775807\n".to_owned(),
            "follow pg-1",
        ),
        // --------------------------------- a former standby, no primary --
        (
            "a former standby with no primary waits: it never promotes itself at start",
            "data standby\n".to_owned(),
            "wait this node was a STANDBY and no primary is reachable among pg-1 pg-3: not starting (a standby never makes itself a writable primary at start); waiting for a primary",
        ),
        (
            "...even after the window with every partner waiting and behind it",
            "data standby\nlocal-tli 5\nelapsed 600\npartner pg-1 reachable tli 4 data yes standby no\npartner pg-3 reachable tli 4 data yes standby no\n".to_owned(),
            "wait this node was a STANDBY and no primary is reachable among pg-1 pg-3: not starting (a standby never makes itself a writable primary at start); waiting for a primary",
        ),
        // --------------------------------- a former primary, no primary --
        (
            "a former primary that hears nobody waits: it may be stale",
            "elapsed 600\npartner pg-1 silent no-answer\npartner pg-3 silent unresolved\n".to_owned(),
            "wait this node was a primary but no partner answers (pg-1: no answer, pg-3: name does not resolve): refusing to start as a lone primary (it may be stale); waiting",
        ),
        (
            "a former primary waits while a partner is on a newer timeline: one was promoted after it",
            "elapsed 600\npartner pg-1 silent no-answer\npartner pg-3 reachable tli 4 data yes standby no\n".to_owned(),
            "wait this node was a primary (timeline 3) but partners have a newer timeline: pg-3(tli 4) - it is stale; waiting for the new primary to come up, then it will rejoin",
        ),
        (
            "...each of them named",
            "partner pg-1 reachable tli 5 data yes standby watching\npartner pg-3 reachable tli 4 data yes standby no\n".to_owned(),
            "wait this node was a primary (timeline 3) but partners have a newer timeline: pg-1(tli 5),pg-3(tli 4) - it is stale; waiting for the new primary to come up, then it will rejoin",
        ),
        (
            "within the failover window, with both partners running standbys (their watchers may promote one): wait",
            "elapsed 19\n".to_owned(),
            &format!("wait this node was the primary and no other primary runs: {WINDOW} (pg-1 and pg-3 may take part in one)"),
        ),
        (
            "...but a silent partner (it may be a standby) beside one waiting at start has none to confirm with: at once",
            "elapsed 19\npartner pg-1 silent no-answer\npartner pg-3 reachable tli 3 data yes standby no\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 3)",
        ),
        (
            "once the window has passed: start as primary",
            "elapsed 20\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 3)",
        ),
        (
            "within the window when every partner waits at start (nothing can promote): start as primary at once",
            "partner pg-1 reachable tli 2 data yes standby no\npartner pg-3 reachable tli 3 data yes standby no\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 3)",
        ),
        (
            // break-new-primary: pg-2, promoted and killed at once, is back;
            // the old primary pg-1 still runs on its older timeline, and
            // pg-3 streamed pg-2's. No promotion can be under way: pg-3's
            // watcher has no second standby to confirm with.
            "within the window, one partner a running standby and the other a primary on an older timeline: at once",
            "local-tli 4\nprimary none\npartner pg-1 reachable tli 3 data yes standby no\npartner pg-3 reachable tli 4 data yes standby watching\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 4, partners max 4)",
        ),
        (
            "...or waiting at start: at once",
            "partner pg-1 reachable tli 3 data yes standby watching\npartner pg-3 reachable tli 3 data yes standby no\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 3)",
        ),
        (
            "...but not while that standby is being promoted",
            "partner pg-1 reachable tli 3 data yes standby no\npartner pg-3 reachable tli 3 data yes standby promoting\n".to_owned(),
            "wait this node was the primary and pg-3 is being promoted: giving that failover 20s before starting as primary",
        ),
        (
            "...nor when the other partner is silent (it may be a running standby)",
            "partner pg-1 silent no-answer\npartner pg-3 reachable tli 3 data yes standby watching\n".to_owned(),
            &format!("wait this node was the primary and no other primary runs: {WINDOW} (pg-1 and pg-3 may take part in one)"),
        ),
        (
            "...and once the window has passed, even a promoting partner is not waited for",
            "elapsed 20\npartner pg-1 reachable tli 3 data yes standby no\npartner pg-3 reachable tli 3 data yes standby promoting\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 3)",
        ),
        (
            "a window of 0: at once",
            "window 0\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 3)",
        ),
        (
            // As the shell had it: an answer without a timeline shows no
            // newer one, though a node that has no data proves nothing.
            "after the window, one silent partner and one empty: start as primary",
            "elapsed 20\npartner pg-1 silent no-answer\npartner pg-3 reachable tli - data no standby watching\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 0)",
        ),
        (
            "partners behind it: start, the highest of theirs logged",
            "elapsed 20\npartner pg-1 reachable tli 1 data yes standby watching\npartner pg-3 reachable tli 2 data yes standby watching\n".to_owned(),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 3, partners max 2)",
        ),
        // ------------------------------- two partners answer as primary --
        (
            // Two standbys promoted from one timeline both write on the
            // next: which one acknowledged the commits is unknowable here.
            "two primaries on the newest timeline: no basis to choose",
            "primary pg-1 4 7000000000000000001\nprimary pg-3 4 7000000000000000001\n".to_owned(),
            "wait pg-1 and pg-3 all answer as primary on timeline 4: no rule can tell which holds the acknowledged commits; waiting for the fence rule to stop the superseded one",
        ),
        (
            "...an empty node clones neither",
            empty_with("primary pg-3 4 -\nprimary pg-1 4 -\n"),
            "wait pg-1 and pg-3 all answer as primary on timeline 4: no rule can tell which holds the acknowledged commits; waiting for the fence rule to stop the superseded one",
        ),
        (
            "an old primary not yet fenced beside the new one: the newer timeline",
            "primary pg-1 3 7000000000000000001\nprimary pg-3 4 7000000000000000001\n".to_owned(),
            "rejoin pg-3",
        ),
        (
            "...whichever order they are seen in",
            empty_with("primary pg-3 4 -\nprimary pg-1 5 -\n"),
            "clone pg-1",
        ),
    ];
    for (story, changes, want) in rows {
        assert_eq!(&decide(&observed(changes)).to_string(), want, "{story}");
    }
}

/// Every way a partner can be seen, as `partner NAME ...` ends.
const SEEN: &[&str] = &[
    "silent no-answer",
    "silent unresolved",
    "reachable tli - data no standby watching",
    "reachable tli - data no standby no",
    "reachable tli 2 data yes standby watching",
    "reachable tli 3 data yes standby no",
    "reachable tli 4 data yes standby watching",
    "reachable tli 4 data yes standby no",
];

/// Every observation of pg-1 (with `changes`) with no primary running:
/// each way of seeing pg-2 and pg-3, at 0 and 600 seconds.
fn every_observation(changes: &str) -> Vec<Observed> {
    let mut all = Vec::new();
    for two in SEEN {
        for three in SEEN {
            for elapsed in [0, 600] {
                all.push(observed(&format!(
                    "me pg-1\n{changes}elapsed {elapsed}\npartner pg-2 {two}\npartner pg-3 {three}\n"
                )));
            }
        }
    }
    all
}

#[test]
fn a_standby_never_starts_as_primary_and_nobody_but_a_former_primary_does() {
    for changes in ["data standby\n", EMPTY] {
        for o in every_observation(changes) {
            let answer = decide(&o);
            assert!(
                matches!(answer, Start::Wait { .. } | Start::Init),
                "{o:?}: {answer}"
            );
        }
    }
}

#[test]
fn a_cluster_is_created_only_by_the_bootstrap_node_and_never_beside_data() {
    for me_bootstrap in [true, false] {
        let bootstrap = if me_bootstrap { "pg-1" } else { "pg-2" };
        for o in every_observation(&format!("bootstrap-node {bootstrap}\n{EMPTY}")) {
            if decide(&o) != Start::Init {
                continue;
            }
            let answered: Vec<bool> = reachable(&o).map(|(_, _, data, _)| data).collect();
            assert!(me_bootstrap, "{o:?}: not the bootstrap node");
            assert!(!answered.is_empty(), "{o:?}: nobody confirmed");
            assert!(!answered.contains(&true), "{o:?}: a partner has data");
        }
    }
}

#[test]
fn a_former_primary_starts_only_heard_and_never_behind() {
    for o in every_observation("") {
        if !matches!(decide(&o), Start::StartPrimary { .. }) {
            continue;
        }
        let timelines: Vec<Option<u32>> = reachable(&o).map(|(_, tli, ..)| tli).collect();
        assert!(!timelines.is_empty(), "{o:?}: heard nobody");
        assert!(
            timelines.iter().all(|tli| tli.unwrap_or(0) <= 3),
            "{o:?}: a partner is on a newer timeline"
        );
    }
}

#[test]
fn reads_what_the_entrypoint_writes() {
    let o = parse(
        "me pg-1\nbootstrap-node pg-1\ndata standby\nlocal-tli 3\nlocal-sysid 7345017843026710561\n\
         primary pg-3 4 -1\nelapsed 12\nwindow 20\n\n\
         partner pg-2 reachable tli - data no standby no\npartner pg-3 silent unresolved\n",
    )
    .expect("well formed");
    assert_eq!(
        o,
        Observed {
            me: "pg-1".into(),
            bootstrap_node: "pg-1".into(),
            data: DataDir::Standby,
            local_timeline: 3,
            local_system_id: Some(7_345_017_843_026_710_561),
            primaries: vec![Found {
                name: "pg-3".into(),
                timeline: 4,
                system_id: Some(u64::MAX),
            }],
            elapsed_s: 12,
            window_s: 20,
            partners: vec![
                (
                    "pg-2".into(),
                    Seen::Reachable {
                        timeline: None,
                        data: false,
                        standby: Standby::No
                    }
                ),
                ("pg-3".into(), Seen::Silent(Silence::Unresolved)),
            ],
        }
    );
    let lowest = observed("primary pg-1 3 -9223372036854775808\n");
    assert_eq!(lowest.primaries[0].system_id, Some(1 << 63));
}

#[test]
fn wrong_or_hostile_lines_are_refused_with_the_line() {
    let long_name = with(&format!("me {}\n", "x".repeat(64)));
    let long_line = with(&format!("me {}\n", "x".repeat(300)));
    let huge = format!("{BASE}{}", "window 20\n".repeat(2000));
    let rows: &[(String, &str)] = &[
        (
            String::new(),
            "missing: me, bootstrap-node, data, local-tli, local-sysid, elapsed, window",
        ),
        (BASE.replace("primary none\n", ""), "missing: primary"),
        (
            with("primary none\nprimary pg-1 3 -\n"),
            "primary none is given alone, once",
        ),
        (
            with("primary pg-1 3 -\nprimary none\n"),
            "primary none is given alone, once",
        ),
        (
            with("primary none\nprimary none\n"),
            "primary none is given alone, once",
        ),
        (
            with("primary pg-1 3 -\nprimary pg-1 4 -\n"),
            "primary pg-1 given twice",
        ),
        (BASE.replace("elapsed 0\n", ""), "missing: elapsed"),
        (
            format!("{BASE}me pg-3\n"),
            "line 11: \"me pg-3\": me given twice",
        ),
        (format!("{BASE}leader pg-1\n"), "unknown key \"leader\""),
        (with("data maybe\n"), "expected data empty|standby|primary"),
        (with("data\n"), "expected data empty|standby|primary"),
        (with("local-tli three\n"), "a timeline must be a number"),
        (with("local-tli +3\n"), "a timeline must be a number"),
        (with("local-tli -3\n"), "a timeline must be a number"),
        (
            with("local-tli 4294967296\n"),
            "a timeline 4294967296 is too large",
        ),
        (
            with("local-sysid 12ab\n"),
            "a system identifier must be a number",
        ),
        (with("local-sysid 18446744073709551616\n"), "too large"),
        (with("local-sysid -9223372036854775809\n"), "past a bigint"),
        (
            with("primary pg-1\n"),
            "expected primary none, or a primary NAME TLI ID|- line",
        ),
        (with("primary pg-1 3 - extra\n"), "expected primary none"),
        (
            with("primary pg-9 3 -\n"),
            "the primary pg-9 is not one of the partners",
        ),
        (with("elapsed -1\n"), "elapsed must be a number"),
        (with("window 20s\n"), "window must be a number"),
        (
            format!("{BASE}partner pg-1 silent no-answer\n"),
            "partner pg-1 given twice",
        ),
        (
            format!("{BASE}partner pg-2 silent no-answer\n"),
            "partner pg-2 is this node",
        ),
        (
            with("partner pg-1 reachable tli 3 data yes\n"),
            "expected partner NAME reachable",
        ),
        (
            with("partner pg-1 reachable tli 3 data 1 standby watching\n"),
            "data must be yes or no",
        ),
        (
            with("partner pg-1 reachable tli 3 data yes standby maybe\n"),
            "standby is no, watching or promoting",
        ),
        (
            with("partner pg-1 silent asleep\n"),
            "expected partner NAME",
        ),
        (with("partner\n"), "expected partner NAME"),
        (
            with("partner $(reboot) silent no-answer\n"),
            "letters, digits",
        ),
        (
            with("partner pg-1;id silent no-answer\n"),
            "letters, digits",
        ),
        (with("me `id`\n"), "letters, digits"),
        (long_name, "at most 63"),
        (long_line, "longer than 256 bytes"),
        (with("me pg-2\u{1b}[2J\n"), "a control character"),
        (with("me pg-2\rpg-3\n"), "a control character"),
        (huge, "more than 16384"),
    ];
    for (input, want) in rows {
        let err = format!("{:#}", parse(input).expect_err(input));
        assert!(err.contains(want), "{input:.80?}: {err}");
    }
}
