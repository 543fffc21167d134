//! Each failover story as a row: what a running standby's watcher saw, in
//! the lines the entrypoint writes, and the answer line it reads back.

use super::*;

/// pg-2's view: the header lines, then the partners.
fn seen(lsn: &str, upstream: &str, unseen: u64, partners: &str) -> String {
    format!("me pg-2 1 {lsn}\nupstream {upstream} unseen {unseen}\npointed {upstream} {upstream}\ndetect 6\nstale 10\n{partners}")
}

fn answer(input: &str) -> String {
    decide(&parse(input).expect(input)).to_string()
}

#[test]
fn a_standby_promotes_only_with_a_partner_that_lost_the_primary_too() {
    // story, what pg-2 saw, the answer
    let rows: &[(&str, String, &str)] = &[
        (
            "the primary answers",
            seen("0/5000100", "pg-1", 0, "partner pg-1 primary 1\npartner pg-3 standby 1 0/5000100 pg-1 0 running 1 running\n"),
            "ok",
        ),
        (
            "a stall shorter than detect never promotes",
            seen("0/5000100", "pg-1", 5, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 5 running 1 running\n"),
            "ok",
        ),
        (
            "lost, and pg-3 lost it too; pg-2 received more",
            seen("0/5000100", "pg-1", 6, "partner pg-1 silent\npartner pg-3 standby 1 0/50000D8 pg-1 4 running 1 running\n"),
            "promote pg-1 unreachable for 6s, also for pg-3; this node received the most WAL (timeline 1, 0/5000100)",
        ),
        (
            "...pg-3 received more: it is the one",
            seen("0/5000100", "pg-1", 9, "partner pg-1 silent\npartner pg-3 standby 1 0/6000000 pg-1 8 running 1 running\n"),
            "wait pg-1 unreachable for 9s; pg-3 received the most WAL (timeline 1, 0/6000000) and is to be promoted",
        ),
        (
            "...a tie goes to the first name (pg-2 before pg-3)",
            seen("0/5000100", "pg-1", 6, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 6 running 1 running\n"),
            "promote pg-1 unreachable for 6s, also for pg-3; this node received the most WAL (timeline 1, 0/5000100)",
        ),
        (
            "the other standby still reaches the primary: this node may be the one cut off",
            seen("0/5000100", "pg-1", 20, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 0 running 1 running\n"),
            "wait pg-1 unreachable for 20s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "...it lost the primary for under half of detect",
            seen("0/5000100", "pg-1", 8, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 2 running 1 running\n"),
            "wait pg-1 unreachable for 8s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "nobody answers: this node is cut off, or alone",
            seen("0/5000100", "pg-1", 30, "partner pg-1 silent\npartner pg-3 silent\n"),
            "wait pg-1 unreachable for 30s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "a partner still starting is no quorum and no candidate",
            seen("0/5000100", "pg-1", 30, "partner pg-1 silent\npartner pg-3 standby 1 0/9000000 pg-1 30 other 1 running\n"),
            "wait pg-1 unreachable for 30s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "a partner that follows another upstream does not confirm this one lost",
            seen("0/5000100", "pg-1", 30, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-9 30 running 1 running\n"),
            "wait pg-1 unreachable for 30s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "a newer timeline beats more WAL: pg-3 already switched to it",
            seen("0/9000000", "pg-1", 9, "partner pg-1 silent\npartner pg-3 standby 2 0/5000100 pg-1 8 running 1 running\n"),
            "wait pg-1 unreachable for 9s; pg-3 received the most WAL (timeline 2, 0/5000100) and is to be promoted",
        ),
        (
            "a partner whose watcher has not published for over stale neither vouches nor is a candidate",
            seen("0/5000100", "pg-1", 9, "partner pg-1 silent\npartner pg-3 standby 1 0/9000000 pg-1 9 running 11 running\n"),
            "wait pg-1 unreachable for 9s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "...one that published stale seconds ago still counts",
            seen("0/5000100", "pg-1", 9, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 9 running 10 running\n"),
            "promote pg-1 unreachable for 9s, also for pg-3; this node received the most WAL (timeline 1, 0/5000100)",
        ),
        (
            "a partner whose entrypoint is not running (rejoining) neither vouches nor is a candidate",
            seen("0/5000100", "pg-1", 9, "partner pg-1 silent\npartner pg-3 standby 1 0/9000000 pg-1 9 running 1 rejoining\n"),
            "wait pg-1 unreachable for 9s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "a promoting partner whose watcher went stale is not waited for",
            seen("0/5000100", "pg-1", 9, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 9 promoting 30 running\n"),
            "wait pg-1 unreachable for 9s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "a partner being promoted: wait for it, whatever the positions",
            seen("0/9000000", "pg-1", 8, "partner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 8 promoting 1 running\n"),
            "wait pg-3 is being promoted",
        ),
        (
            "no primary known yet (just started, nothing followed)",
            seen("0/5000100", "none", 0, "partner pg-1 silent\npartner pg-3 silent\n"),
            "wait no primary known yet",
        ),
    ];
    for (story, input, want) in rows {
        assert_eq!(&answer(input), want, "{story}");
    }
}

#[test]
fn a_node_pointed_elsewhere_during_its_round_looks_again() {
    // What pg-2 saw would promote it: pg-1 lost by both standbys, pg-2
    // with the most WAL. Only the round's primary_conninfo differs.
    let lost = |pointed: &str| {
        format!("me pg-2 1 0/9000000\nupstream pg-1 unseen 9\n{pointed}\ndetect 6\nstale 10\npartner pg-1 silent\npartner pg-3 standby 1 0/5000100 pg-1 9 running 1 running\n")
    };
    let rows: &[(&str, String, &str)] = &[
        (
            "the same primary_conninfo all round: the rule goes on",
            lost("pointed pg-1 pg-1"),
            "promote pg-1 unreachable for 9s, also for pg-3; this node received the most WAL (timeline 1, 0/9000000)",
        ),
        (
            // A promoter that finished pointed pg-2 at itself while pg-2's
            // round was under way: pg-2's timeline and WAL are pg-3's now.
            "re-pointed at a new primary during the round",
            lost("pointed pg-1 pg-3"),
            "wait this node was pointed from pg-1 to pg-3 during the round: looking again",
        ),
        (
            "its WAL receiver stopped by a promoter during the round",
            lost("pointed pg-1 none"),
            "wait this node was pointed from pg-1 to none during the round: looking again",
        ),
        (
            // The promoter died after it stopped pg-2's WAL receiver and
            // before it gave it back: pg-2 still knows whom it followed.
            "stopped before the round, and still stopped: the rule goes on",
            lost("pointed none none"),
            "promote pg-1 unreachable for 9s, also for pg-3; this node received the most WAL (timeline 1, 0/9000000)",
        ),
        (
            "re-pointed while the new primary is in sight: it looks again first",
            "me pg-2 1 0/5000100\nupstream pg-1 unseen 0\npointed pg-1 pg-3\ndetect 6\nstale 10\npartner pg-1 silent\npartner pg-3 primary 2\n".into(),
            "wait this node was pointed from pg-1 to pg-3 during the round: looking again",
        ),
    ];
    for (story, input, want) in rows {
        assert_eq!(&answer(input), want, "{story}");
    }
}

#[test]
fn a_standby_follows_the_primary_on_the_newest_timeline() {
    let rows: &[(&str, String, &str)] = &[
        (
            "pg-3 was promoted: follow it",
            seen(
                "0/5000100",
                "pg-1",
                9,
                "partner pg-1 silent\npartner pg-3 primary 2\n",
            ),
            "follow pg-3 pg-3 is the primary (timeline 2), this node followed pg-1",
        ),
        (
            "the old primary thawed, still a primary on timeline 1: the newer one wins",
            seen(
                "0/5000100",
                "pg-1",
                0,
                "partner pg-1 primary 1\npartner pg-3 primary 2\n",
            ),
            "follow pg-3 pg-3 is the primary (timeline 2), this node followed pg-1",
        ),
        (
            "already following the newest",
            seen(
                "0/5000100",
                "pg-3",
                0,
                "partner pg-1 primary 1\npartner pg-3 primary 2\n",
            ),
            "ok",
        ),
        (
            "detached by a promoter that has finished: follow it",
            seen(
                "0/5000100",
                "pg-1",
                12,
                "partner pg-1 silent\npartner pg-3 primary 2\n",
            ),
            "follow pg-3 pg-3 is the primary (timeline 2), this node followed pg-1",
        ),
        (
            // break-new-primary: pg-3 (timeline 2) was killed right after its
            // promotion and pg-1 thawed, still a primary on timeline 1.
            "a primary on a timeline older than this node's is never followed",
            "me pg-2 2 0/6000000\nupstream pg-3 unseen 9\npointed pg-3 pg-3\ndetect 6\nstale 10\npartner pg-1 primary 1\npartner pg-3 silent\n".into(),
            "wait pg-3 unreachable for 9s, but no partner confirms it (this node may be the one cut off)",
        ),
        (
            "...not even when it is the primary this node followed",
            "me pg-2 2 0/6000000\nupstream pg-1 unseen 0\npointed pg-1 pg-1\ndetect 6\nstale 10\npartner pg-1 primary 1\npartner pg-3 silent\n".into(),
            "wait pg-1 runs as primary on timeline 1, older than timeline 2 this node knows of: it was superseded, and is not followed",
        ),
        (
            "...one on this node's timeline is",
            "me pg-2 2 0/6000000\nupstream pg-1 unseen 9\npointed pg-1 pg-1\ndetect 6\nstale 10\npartner pg-1 primary 1\npartner pg-3 primary 2\n".into(),
            "follow pg-3 pg-3 is the primary (timeline 2), this node followed pg-1",
        ),
        (
            "two primaries on one timeline: no basis to choose",
            seen(
                "0/5000100",
                "pg-1",
                0,
                "partner pg-1 primary 2\npartner pg-3 primary 2\n",
            ),
            "wait pg-1 and pg-3 all run as primary on timeline 2: no rule can tell which to follow",
        ),
        (
            "a primary appears while nothing was followed",
            seen(
                "0/5000100",
                "none",
                0,
                "partner pg-1 primary 1\npartner pg-3 silent\n",
            ),
            "follow pg-1 pg-1 is the primary (timeline 1), this node followed none",
        ),
    ];
    for (story, input, want) in rows {
        assert_eq!(&answer(input), want, "{story}");
    }
}

#[test]
fn wrong_and_hostile_input_is_refused() {
    // story, input, a word of the error
    let rows: &[(&str, String, &str)] = &[
        (
            "empty",
            String::new(),
            "missing: me, upstream, pointed, detect, stale",
        ),
        (
            "no detect",
            "me pg-2 1 0/1\nupstream pg-1 unseen 0\npointed pg-1 pg-1\n".into(),
            "missing: detect, stale",
        ),
        (
            "an entrypoint state with a space",
            seen(
                "0/1",
                "pg-1",
                0,
                "partner pg-3 standby 1 0/1 pg-1 3 running 1 waiting:\n",
            ),
            "an entrypoint state is lowercase",
        ),
        (
            "a negative age",
            seen(
                "0/1",
                "pg-1",
                0,
                "partner pg-3 standby 1 0/1 pg-1 3 running -1 running\n",
            ),
            "must be a number",
        ),
        (
            "detect 0",
            "me pg-2 1 0/1\nupstream pg-1 unseen 0\npointed pg-1 pg-1\ndetect 0\nstale 10\n".into(),
            "at least 1",
        ),
        (
            "me twice",
            seen("0/1", "pg-1", 0, "me pg-2 1 0/1\n"),
            "given twice",
        ),
        (
            "a partner twice",
            seen(
                "0/1",
                "pg-1",
                0,
                "partner pg-3 silent\npartner pg-3 silent\n",
            ),
            "given twice",
        ),
        (
            "this node as a partner",
            seen("0/1", "pg-1", 0, "partner pg-2 silent\n"),
            "not a partner",
        ),
        ("a bad LSN", seen("0/zz", "pg-1", 0, ""), "line 1"),
        (
            "a negative unseen",
            seen(
                "0/1",
                "pg-1",
                0,
                "partner pg-3 standby 1 0/1 pg-1 -3 running 1 running\n",
            ),
            "must be a number",
        ),
        (
            "an unknown watcher",
            seen(
                "0/1",
                "pg-1",
                0,
                "partner pg-3 standby 1 0/1 pg-1 3 dancing 1 running\n",
            ),
            "running, promoting or other",
        ),
        (
            "a name with a quote",
            seen("0/1", "pg-1", 0, "partner pg'3 silent\n"),
            "a node name",
        ),
        (
            "a huge timeline",
            seen("0/1", "pg-1", 0, "partner pg-3 primary 99999999999\n"),
            "too large",
        ),
        (
            "an unknown key",
            seen("0/1", "pg-1", 0, "leader pg-3\n"),
            "unknown key",
        ),
        (
            "a control character",
            seen("0/1", "pg-1", 0, "partner pg-3\u{7} silent\n"),
            "control character",
        ),
        (
            "huge input",
            "partner pg-3 silent\n".repeat(2000),
            "more than 16384",
        ),
        (
            "me without a timeline",
            "me pg-2 0/1\nupstream pg-1 unseen 0\npointed pg-1 pg-1\ndetect 6\nstale 10\n".into(),
            "expected me NAME TLI LSN",
        ),
        (
            "pointed with one name",
            "me pg-2 1 0/1\nupstream pg-1 unseen 0\npointed pg-1\ndetect 6\nstale 10\n".into(),
            "expected pointed FROM|none TO|none",
        ),
        (
            "pointed at a hostile name",
            "me pg-2 1 0/1\nupstream pg-1 unseen 0\npointed pg-1 pg;1\ndetect 6\nstale 10\n".into(),
            "a node name",
        ),
        (
            "a partner line cut short",
            seen("0/1", "pg-1", 0, "partner pg-3 standby 1 0/1\n"),
            "expected partner",
        ),
    ];
    for (story, input, want) in rows {
        let err = format!("{:#}", parse(input).expect_err(story));
        assert!(err.contains(want), "{story}: {err}");
    }
}
