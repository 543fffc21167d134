//! Each failure story of the PostgreSQL tier as a row: the nodes as they
//! were seen, and what the rule must decide.

use super::*;

const CLUSTER: u64 = 7_000_000_000_000_000_001;

fn lsn(text: &str) -> Lsn {
    text.parse().expect("a WAL position")
}

/// A node as the table writes it: "pg-2 standby tli 3 at 0/500 running".
fn node(text: &str) -> NodeState {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut n = NodeState {
        name: words[0].to_owned(),
        data: None,
        running: None,
    };
    let mut i = 1;
    while i < words.len() {
        match words[i] {
            "empty" => n.data = None,
            "primary" | "standby" => {
                n.data = Some(Data {
                    system_id: CLUSTER,
                    timeline: words[i + 2].parse().expect("timeline"),
                    end: lsn(words[i + 4]),
                    standby: words[i] == "standby",
                });
                i += 4;
            }
            "foreign" => {
                if let Some(d) = n.data.as_mut() {
                    d.system_id = CLUSTER + 1;
                }
            }
            "running-primary" => n.running = Some(Running::Primary),
            "running-standby" => n.running = Some(Running::Standby),
            other => panic!("unknown word {other:?} in {text:?}"),
        }
        i += 1;
    }
    n
}

fn nodes(list: &[&str]) -> Vec<NodeState> {
    list.iter().map(|t| node(t)).collect()
}

#[test]
fn the_primary_is_the_one_on_the_highest_timeline() {
    let rows: &[(&str, &[&str], Primary)] = &[
        (
            "no node runs as primary",
            &["pg-1 standby tli 1 at 0/9 running-standby", "pg-2 empty"],
            Primary::None,
        ),
        (
            "one primary",
            &[
                "pg-1 primary tli 1 at 0/9 running-primary",
                "pg-2 standby tli 1 at 0/9 running-standby",
            ],
            Primary::One("pg-1".into()),
        ),
        (
            "a thawed old primary beside the promoted one: the newer timeline wins",
            &[
                "pg-1 primary tli 3 at 0/F0 running-primary",
                "pg-2 primary tli 4 at 0/A0 running-primary",
            ],
            Primary::One("pg-2".into()),
        ),
        (
            "a stopped node's newer timeline does not make it primary",
            &[
                "pg-1 primary tli 3 at 0/F0 running-primary",
                "pg-2 primary tli 4 at 0/A0",
            ],
            Primary::One("pg-1".into()),
        ),
        (
            "two primaries on one timeline: neither",
            &[
                "pg-1 primary tli 2 at 0/F0 running-primary",
                "pg-3 primary tli 2 at 0/A0 running-primary",
            ],
            Primary::Ambiguous(vec!["pg-1".into(), "pg-3".into()]),
        ),
    ];
    for (story, seen, want) in rows {
        assert_eq!(&primary(&nodes(seen)), want, "{story}");
    }
}

/// A node on timeline 1 about to be rewound onto a primary on timeline 2
/// that forked at 0/3000110, its latest checkpoint before the fork.
fn rewinding(was_primary: bool) -> RewindSeen {
    RewindSeen {
        was_primary,
        mine: 1,
        theirs: Some(2),
        fork: Some(lsn("0/3000110")),
        fork_segment: true,
        checkpoint: Some(lsn("0/3000028")),
    }
}

// As pg_waldump 15 prints them from the fork point (shortened), with the
// error line it ends every listing with at the end of the WAL it has.
const INSERT: &str = "rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/03000110, prev 0/030000D8, desc: INSERT off 5 flags 0x00\n";
const COMMIT: &str = "rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/03000150, prev 0/03000110, desc: COMMIT 2026-12-01 19:20:01.123456 UTC\n";
const SHUTDOWN: &str = "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/03000178, prev 0/03000150, desc: CHECKPOINT_SHUTDOWN redo 0/3000178; tli 1; shutdown\n";
const END: &str = "pg_waldump: error: error in WAL record at 0/3000178: invalid record length at 0/30001F0: expected at least 24, got 0\n";

#[test]
fn what_lies_past_the_fork_point_is_kept_aside_unless_nothing_was_committed() {
    let standby = rewinding(false);
    let primary = rewinding(true);
    let with = |f: &dyn Fn(&mut RewindSeen)| {
        let mut seen = rewinding(false);
        f(&mut seen);
        seen
    };
    let full = format!("{INSERT}{COMMIT}{SHUTDOWN}{END}");
    let rows: Vec<(&str, RewindSeen, String, &str)> = vec![
        (
            "a standby that stopped before the fork",
            standby.clone(),
            END.to_owned(),
            "discards 0",
        ),
        (
            // A clean switchover: the standby received the shutdown
            // checkpoint, and the fork is where this node's WAL ends.
            "a former primary with nothing at or after the fork",
            primary.clone(),
            "pg_waldump: error: could not find a valid record after 0/3000110\n".to_owned(),
            "discards 0",
        ),
        (
            "a former primary's shutdown checkpoint",
            primary.clone(),
            format!("{SHUTDOWN}{END}"),
            "discards 1",
        ),
        (
            "a standby's records without a commit",
            standby.clone(),
            format!("{INSERT}{SHUTDOWN}{END}"),
            "discards 2",
        ),
        (
            "a former primary's unconfirmed commits",
            primary.clone(),
            full.clone(),
            "keep-aside 3 1",
        ),
        (
            "a standby that streamed commits from a superseded primary",
            standby.clone(),
            full.clone(),
            "alarm 3 1",
        ),
        (
            "the primary did not say its timeline: the fork is unknown",
            with(&|s| s.theirs = None),
            full.clone(),
            "keep-whole the primary did not say its timeline, so the fork point is unknown",
        ),
        (
            "the primary is not on a newer timeline: nothing forked",
            with(&|s| s.theirs = Some(1)),
            full.clone(),
            "skip the primary writes on timeline 1, not newer than this node's 1",
        ),
        (
            "...nor on an older one",
            with(&|s| {
                s.mine = 3;
                s.theirs = Some(2)
            }),
            full.clone(),
            "skip the primary writes on timeline 2, not newer than this node's 3",
        ),
        (
            "the primary's history does not pass through this node's timeline",
            with(&|s| s.fork = None),
            full.clone(),
            "keep-whole the primary's history of timeline 2 does not show where timeline 1 ends",
        ),
        (
            "the fork's segment was recycled after this node passed the fork",
            with(&|s| {
                s.fork_segment = false;
                s.checkpoint = Some(lsn("0/4000028"))
            }),
            String::new(),
            "keep-whole the WAL segment of the fork point 0/3000110 is gone from pg_wal, and this node reached 0/4000028",
        ),
        (
            "...and pg_controldata did not say how far this node got",
            with(&|s| {
                s.fork_segment = false;
                s.checkpoint = None
            }),
            String::new(),
            "keep-whole the WAL segment of the fork point 0/3000110 is gone from pg_wal, and this node reached an unknown checkpoint",
        ),
        (
            "the fork's segment was never written: this node's WAL ends before it",
            with(&|s| s.fork_segment = false),
            "pg_waldump: error: could not find file \"000000010000000000000003\": No such file or directory\n".to_owned(),
            "discards 0",
        ),
        (
            "pg_waldump failed: what it did not list may hold commits",
            standby.clone(),
            format!("{INSERT}pg_waldump: error: could not read file \"000000010000000000000003\": Input/output error\n"),
            "keep-whole pg_waldump could not list the WAL past the fork: pg_waldump: error: could not read file \"000000010000000000000003\": Input/output error",
        ),
    ];
    for (story, seen, listing, want) in rows {
        assert_eq!(before_rewind(&seen, &listing).to_string(), want, "{story}");
    }
}

#[test]
fn a_standby_promotes_only_when_no_partner_can_confirm_for_the_old_primary() {
    enum Want {
        Go,
        Wait(&'static str),
        Refuse(&'static str),
    }
    use Want::*;
    // Each row: the story, what the promote step saw (as the shell writes
    // it for `pgha before-promote`), and the answer.
    let rows: &[(&str, &str, Want)] = &[
        (
            "the primary died; the sibling stopped streaming, behind us",
            "me 0/5000100\npg-1 failed\npg-3 standby stopped 0/50000D8",
            Go,
        ),
        (
            "the primary froze; the sibling stopped at the same place",
            "me 0/5000100\npg-1 failed\npg-3 standby stopped 0/5000100",
            Go,
        ),
        (
            "the sibling's receiver still streams from the frozen primary",
            "me 0/5000100\npg-1 failed\npg-3 standby receiving 0/5000100",
            Wait("pg-3 still runs"),
        ),
        (
            "the sibling confirmed WAL we never received: it must win",
            "me 0/5000100\npg-1 failed\npg-3 standby stopped 0/5000200",
            Refuse("pg-3 holds WAL up to 0/5000200"),
        ),
        (
            "ahead and still receiving: refused, not waited on",
            "me 0/5000100\npg-1 failed\npg-3 standby receiving 0/5000200",
            Refuse("must be promoted instead"),
        ),
        (
            "the new primary killed right after its promotion; the old one is still rejoining",
            "me 1/0\npg-2 failed\npg-1 down",
            Go,
        ),
        (
            "the old primary thawed and answers as a primary again",
            "me 0/5000100\npg-1 primary\npg-3 standby stopped 0/5000100",
            Refuse("pg-1 still runs as a primary"),
        ),
        (
            "the sibling does not answer: it may stream from the old primary",
            "me 0/5000100\npg-1 failed\npg-3 silent",
            Refuse("only 1 of 3 nodes"),
        ),
        (
            "five nodes, one failed, one silent: three of five stopped",
            "me 0/5000100\nn1 failed\nn3 silent\nn4 standby stopped 0/5000000\nn5 down",
            Go,
        ),
        (
            "five nodes, two silent: two of five cannot prove anything",
            "me 0/5000100\nn1 failed\nn3 silent\nn4 silent\nn5 down",
            Refuse("only 2 of 5 nodes"),
        ),
        (
            "a cluster of two: the only partner failed",
            "me 0/5000100\npg-1 failed",
            Refuse("only 1 of 2 nodes"),
        ),
    ];
    for (story, seen, want) in rows {
        let (mine, partners) = crate::partners::parse(seen).expect(story);
        let got = before_promote(mine, &partners);
        match (want, &got) {
            (Go, Promote::Go) => {}
            (Wait(why), Promote::Wait(said)) | (Refuse(why), Promote::Refuse(said))
                if said.contains(why) => {}
            _ => panic!("{story}: got {got:?}"),
        }
    }
}

#[test]
fn the_fork_point_comes_from_the_new_timelines_history() {
    // As PostgreSQL writes 00000003.history.
    let history = "1\t0/3000158\tno recovery target specified\n\n2\t0/5000060\tno recovery target specified\n";
    assert_eq!(
        fork_point(history, 1).expect("parses"),
        Some(lsn("0/3000158"))
    );
    assert_eq!(
        fork_point(history, 2).expect("parses"),
        Some(lsn("0/5000060"))
    );
    assert_eq!(
        fork_point(history, 3).expect("parses"),
        None,
        "not in its own history"
    );
    assert_eq!(fork_point("", 1).expect("parses"), None);
    for bad in [
        "1\n",
        "x\t0/1\treason\n",
        "1\tnot-an-lsn\treason\n",
        "-1\t0/1\n",
    ] {
        assert!(fork_point(bad, 1).is_err(), "{bad:?} accepted");
    }
}
