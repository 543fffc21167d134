//! Each check of a running node as a row: what it saw, in the lines the
//! entrypoint writes, and the answer line it reads back.

use super::*;

#[test]
fn a_superseded_primary_fences_itself() {
    // story, what the primary on timeline 3 saw, the answer
    let rows: &[(&str, &str, &str)] = &[
        (
            "its partners are standbys",
            "me 3\npartner pg-2 standby\npartner pg-3 standby\n",
            "stay",
        ),
        (
            "nobody answers",
            "me 3\npartner pg-2 silent\npartner pg-3 silent\n",
            "stay",
        ),
        (
            "a partner was promoted after it: newer timeline",
            "me 3\npartner pg-2 silent\npartner pg-3 primary 4\n",
            "fence pg-3 is the primary on a newer timeline (4 > 3): this node was superseded",
        ),
        (
            "...the first such partner is named",
            "me 3\npartner pg-2 primary 5\npartner pg-3 primary 4\n",
            "fence pg-2 is the primary on a newer timeline (5 > 3): this node was superseded",
        ),
        (
            // The proxies route to neither (rules::primary: ambiguous).
            "another primary on the same timeline: no rule can tell which is newer",
            "me 3\npartner pg-2 primary 3\npartner pg-3 standby\n",
            "stay",
        ),
        (
            "a stale primary on an older timeline: it is the one to fence itself",
            "me 3\npartner pg-2 primary 2\npartner pg-3 silent\n",
            "stay",
        ),
        ("no partners at all", "me 3\n", "stay"),
        (
            // break-new-primary: pg-3, promoted to timeline 4, was killed at
            // once; this node thawed. pg-2 had begun to follow pg-3.
            "a partner knows of a newer timeline, its primary gone",
            "me 3\npartner pg-2 knows 4\npartner pg-3 silent\n",
            "fence pg-2 knows of a newer timeline (4 > 3): another node was promoted after this one",
        ),
        (
            "partners that know this node's timeline, or an older one",
            "me 3\npartner pg-2 knows 3\npartner pg-3 knows 2\n",
            "stay",
        ),
    ];
    for (story, seen, want) in rows {
        let (mine, partners) = parse_fence(seen).expect(seen);
        assert_eq!(&fence(mine, &partners).to_string(), want, "{story}");
    }
}

#[test]
fn a_standby_that_does_not_stream_from_the_primary_restarts() {
    const WHY: &str = "restart this standby has not streamed from the primary pg-1 for 30s";
    // story, what the standby saw, the answer
    let rows: &[(&str, &str, String)] = &[
        (
            "it streams from the primary",
            "primary pg-1 3\nreceiver streaming pg-1\nstray-for none\nlimit 30\n",
            "ok".into(),
        ),
        (
            "...the clock stops even after a while stray",
            "primary pg-1 3\nreceiver streaming pg-1\nstray-for 100\nlimit 30\n",
            "ok".into(),
        ),
        (
            "no primary runs: nothing to follow",
            "primary none\nreceiver none\nstray-for 100\nlimit 30\n",
            "ok".into(),
        ),
        (
            "it streams from another node (an old primary): the clock starts",
            "primary pg-1 3\nreceiver streaming pg-3\nstray-for none\nlimit 30\n",
            "stray".into(),
        ),
        (
            "its receiver waits, not yet for the limit",
            "primary pg-1 3\nreceiver waiting pg-1\nstray-for 29\nlimit 30\n",
            "stray".into(),
        ),
        (
            "for the limit: restart",
            "primary pg-1 3\nreceiver waiting pg-1\nstray-for 30\nlimit 30\n",
            format!("{WHY} (wal receiver: 'waiting pg-1')"),
        ),
        (
            "no receiver runs, long past the limit",
            "primary pg-1 3\nreceiver none\nstray-for 95\nlimit 30\n",
            format!("{WHY} (wal receiver: 'none')"),
        ),
        (
            "a receiver that names no host",
            "primary pg-1 3\nreceiver starting\nstray-for 40\nlimit 30\n",
            format!("{WHY} (wal receiver: 'starting')"),
        ),
        (
            "an old primary not yet fenced beside the new one: the newer is the primary",
            "primary pg-3 4\nprimary pg-1 3\nreceiver streaming pg-1\nstray-for 40\nlimit 30\n",
            "restart this standby has not streamed from the primary pg-3 for 30s (wal receiver: 'streaming pg-1')".into(),
        ),
        (
            "...streaming from the newer one is ok",
            "primary pg-1 3\nprimary pg-3 4\nreceiver streaming pg-3\nstray-for none\nlimit 30\n",
            "ok".into(),
        ),
        (
            "two primaries on the newest timeline: no basis to judge",
            "primary pg-1 4\nprimary pg-3 4\nreceiver streaming pg-1\nstray-for 40\nlimit 30\n",
            "ok".into(),
        ),
        (
            "a limit of 0: at the first check",
            "primary pg-1 3\nreceiver none\nstray-for none\nlimit 0\n",
            "restart this standby has not streamed from the primary pg-1 for 0s (wal receiver: 'none')".into(),
        ),
    ];
    for (story, seen, want) in rows {
        let standby = parse_stray(seen).expect(seen);
        assert_eq!(&stray(&standby).to_string(), want, "{story}");
    }
}

#[test]
fn wrong_or_hostile_lines_are_refused_with_the_line() {
    let fence_rows: &[(&str, &str)] = &[
        ("", "missing: me"),
        ("partner pg-2 standby\n", "missing: me"),
        ("me 3\nme 4\n", "line 2: \"me 4\": me given twice"),
        ("me three\n", "a timeline must be a number"),
        ("me 3 4\n", "expected me TLI"),
        (
            "me 3\npartner pg-2 primary\n",
            "expected partner NAME primary TLI",
        ),
        (
            "me 3\npartner pg-2 primary -4\n",
            "a timeline must be a number",
        ),
        ("me 3\npartner pg-2 leader\n", "expected partner NAME"),
        ("me 3\npartner pg-2 knows\n", "expected partner NAME"),
        (
            "me 3\npartner pg-2 knows 4x\n",
            "a timeline must be a number",
        ),
        (
            "me 3\npartner pg-2 silent\npartner pg-2 standby\n",
            "partner pg-2 given twice",
        ),
        ("me 3\npartner $(reboot) silent\n", "letters, digits"),
        ("me 3\npg-2 silent\n", "unknown key \"pg-2\""),
    ];
    for (input, want) in fence_rows {
        let err = format!("{:#}", parse_fence(input).expect_err(input));
        assert!(err.contains(want), "{input:?}: {err}");
    }
    let ok = "primary pg-1 3\nreceiver streaming pg-1\nstray-for none\nlimit 30\n";
    let stray_rows: &[(String, &str)] = &[
        (String::new(), "missing: receiver, stray-for, limit"),
        (ok.replace("primary pg-1 3\n", ""), "missing: primary"),
        (
            ok.replace("primary pg-1 3", "primary none\nprimary pg-1 3"),
            "primary none is given alone, once",
        ),
        (
            ok.replace("primary pg-1 3", "primary pg-1 3\nprimary pg-1 4"),
            "primary pg-1 given twice",
        ),
        (ok.replace("limit 30\n", ""), "missing: limit"),
        (format!("{ok}limit 30\n"), "limit given twice"),
        (
            ok.replace("primary pg-1 3", "primary pg-1 pg-2"),
            "a timeline must be a number",
        ),
        (
            ok.replace("primary pg-1 3", "primary pg-1"),
            "expected primary none, or a primary NAME TLI line",
        ),
        (
            ok.replace("primary pg-1 3", "primary ../etc 3"),
            "letters, digits",
        ),
        (
            ok.replace("streaming pg-1", "streaming pg-1 extra"),
            "expected receiver STATUS [HOST]",
        ),
        (
            ok.replace("streaming pg-1", "Streaming pg-1"),
            "a receiver status is lowercase letters",
        ),
        (
            ok.replace("streaming pg-1", "streaming pg-1\u{e9}"),
            "a receiver host is printable ASCII",
        ),
        (
            ok.replace("stray-for none", "stray-for -5"),
            "stray-for must be a number",
        ),
        (
            ok.replace("limit 30", "limit 30s"),
            "limit must be a number",
        ),
        (
            ok.replace("limit 30", "limit 99999999999999999999"),
            "too large",
        ),
        (format!("{ok}status stray\n"), "unknown key \"status\""),
    ];
    for (input, want) in stray_rows {
        let err = format!("{:#}", parse_stray(input).expect_err(input));
        assert!(err.contains(want), "{input:?}: {err}");
    }
}
