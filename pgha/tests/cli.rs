//! The `pgha` binary as the entrypoints run it: real PostgreSQL WAL read by
//! the real pg_waldump, the Galera election's answer as the MariaDB
//! entrypoint reads it, and wrong arguments refused with a clear error.

use std::io::Write;
use std::process::{Command, Stdio};

use pgha::Lsn;
use testkit::postgres::Postgres;

/// Runs pgha with `args` and `input` on stdin: (exit code, stdout, stderr).
fn pgha(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgha runs");
    // pgha may exit before reading (bad arguments): a closed pipe is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("pgha ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// pg_waldump's listing of the server's WAL from `from` on, and its errors
/// after it, as the entrypoint gives them to pgha (`2>&1`).
fn waldump(pg: &Postgres, from: &str) -> String {
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_waldump")
        .arg("-p")
        .arg(pg.data_dir().join("pg_wal"))
        .args(["-s", from])
        .output()
        .expect("pg_waldump runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `pgha before-rewind` for a node on timeline 1 whose latest checkpoint
/// is at 0/1, about to be rewound onto a primary on timeline 2 that
/// forked at `fork`.
fn before_rewind(was: &str, fork: &str, listing: &str) -> (i32, String, String) {
    pgha(
        &[
            "before-rewind",
            "--was",
            was,
            "--mine",
            "1",
            "--theirs",
            "2",
            "--fork",
            fork,
            "--fork-segment",
            "present",
            "--checkpoint",
            "0/1",
        ],
        listing,
    )
}

#[test]
fn commits_past_a_point_of_a_real_wal_are_counted() {
    let mut pg = Postgres::start();
    pg.psql("CREATE TABLE t (x int)");
    let fork = pg.psql("SELECT pg_current_wal_insert_lsn()");
    for x in 1..=3 {
        pg.psql(&format!("INSERT INTO t VALUES ({x})"));
    }
    let end = pg.psql("SELECT pg_current_wal_insert_lsn()");
    pg.stop();

    // pg_waldump ends every listing with an error at the end of the WAL:
    // that line is no failure.
    let listing = waldump(&pg, &fork);
    assert!(
        listing.contains("pg_waldump: error: error in WAL record at"),
        "{listing}"
    );
    let (code, answer, _) = before_rewind("primary", &fork, &listing);
    assert_eq!(code, 0);
    let fields: Vec<&str> = answer.split(' ').collect();
    assert_eq!(
        (fields[0], fields[2]),
        ("keep-aside", "3"),
        "a former primary's tail: {answer}\n{listing}"
    );

    let (_, answer, _) = before_rewind("standby", &fork, &listing);
    assert!(
        answer.starts_with("alarm ") && answer.ends_with(" 3"),
        "a standby's tail: {answer}"
    );

    // Past the last commit only the shutdown checkpoint remains.
    let tail = waldump(&pg, &end);
    let (_, answer, _) = before_rewind("standby", &end, &tail);
    assert_eq!(answer, "discards 1", "only the shutdown checkpoint");

    // A fork where this node's WAL ends (after its shutdown checkpoint, as
    // in a clean switchover): pg_waldump finds no record there, which is
    // no failure.
    let checkpoint = tail
        .lines()
        .find(|l| l.contains("CHECKPOINT_SHUTDOWN"))
        .expect("the shutdown checkpoint");
    let at: Lsn = checkpoint
        .split("lsn: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("its position")
        .parse()
        .expect("a WAL position");
    let total: u64 = checkpoint
        .split("len (rec/tot):")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|r| r.split('/').nth(1))
        .expect("its length")
        .trim()
        .parse()
        .expect("a length");
    let after = Lsn((at.0 + total).next_multiple_of(8)).to_string();
    let listing = waldump(&pg, &after);
    assert!(
        listing.contains("could not find a valid record after"),
        "{listing}"
    );
    let (_, answer, _) = before_rewind("primary", &after, &listing);
    assert_eq!(answer, "discards 0", "nothing past the end: {listing}");

    // A listing pg_waldump could not make (its start segment damaged)
    // keeps the whole directory aside.
    let segment = std::fs::read_dir(pg.data_dir().join("pg_wal"))
        .expect("pg_wal")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.len() == 24))
        .max()
        .expect("a WAL segment");
    std::fs::write(&segment, b"damaged").expect("damage the segment");
    let listing = waldump(&pg, &fork);
    let (_, answer, _) = before_rewind("standby", &fork, &listing);
    assert!(
        answer.starts_with("keep-whole pg_waldump could not list"),
        "a damaged segment: {answer}\n{listing}"
    );
}

/// `pgha before-rewind` with one argument wrong.
fn rewind_args(wrong: (&'static str, &'static str)) -> [&'static str; 13] {
    let mut args = [
        "before-rewind",
        "--was",
        "standby",
        "--mine",
        "1",
        "--theirs",
        "2",
        "--fork",
        "0/1",
        "--fork-segment",
        "present",
        "--checkpoint",
        "0/1",
    ];
    let at = args.iter().position(|a| *a == wrong.0).expect("an option");
    args[at + 1] = wrong.1;
    args
}

#[test]
fn wrong_arguments_and_input_get_a_clear_error() {
    let leader = rewind_args(("--was", "leader"));
    let bad_fork = rewind_args(("--fork", "0/xyz"));
    let bad_theirs = rewind_args(("--theirs", "two"));
    let bad_segment = rewind_args(("--fork-segment", "maybe"));
    let no_value = rewind_args(("--was", "standby"));
    let rows: &[(&[&str], &str, &str)] = &[
        (&[], "", "usage: pgha"),
        (
            &["rewind-everything"],
            "",
            "unknown command \"rewind-everything\"",
        ),
        (
            &["before-rewind", "--mine", "1"],
            "",
            "before-rewind needs --was",
        ),
        (&leader, "", "--was must be primary or standby"),
        (&no_value[..12], "", "--checkpoint needs a value"),
        (&bad_fork, "", "a WAL position looks like"),
        (&bad_theirs, "", "--theirs must be a timeline or unknown"),
        (&bad_segment, "", "--fork-segment must be present or gone"),
        (
            &["fork-point", "--timeline", "two"],
            "",
            "--timeline must be a number",
        ),
        (
            &["fork-point", "--timeline", "2"],
            "1\t0/3000158\treason\n",
            "does not pass through timeline 2",
        ),
        (
            &["fork-point", "--timeline", "1"],
            "1\tgarbage\n",
            "a WAL position looks like",
        ),
        (
            &["fork-point", "--timeline", "1"],
            &"9".repeat(100_000),
            "expected a timeline and a WAL position",
        ),
        (&["before-promote"], "", "no \"me LSN\" line"),
        (
            &["before-promote"],
            "me 0/1\npg-3 standby stopped\n",
            "line 2",
        ),
    ];
    for (args, input, want) in rows {
        let (code, out, err) = pgha(args, input);
        assert_eq!(code, 2, "{args:?}: exit code (stdout {out:?})");
        assert!(
            out.is_empty(),
            "{args:?}: no answer on a bad input, got {out:?}"
        );
        assert!(err.contains(want), "{args:?}: {err:?} should say {want:?}");
    }
    let (code, out, _) = pgha(
        &["fork-point", "--timeline", "1"],
        "1\t0/3000158\tno recovery target specified\n",
    );
    assert_eq!((code, out.as_str()), (0, "0/3000158"));
    let (code, out, _) = pgha(
        &["before-promote"],
        "me 0/5000100\npg-1 failed\npg-3 standby receiving 0/5000100\n",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "wait the WAL receiver of pg-3 still runs")
    );
}

/// `command` with `defaults`, `changed` replacing the option of the same
/// name ("(left out)": the option is not given).
fn args_with<'a>(
    command: &'a str,
    defaults: &[(&'a str, &'a str)],
    changed: &[(&'a str, &'a str)],
) -> Vec<&'a str> {
    let mut args = vec![command];
    for &(name, value) in defaults {
        let value = changed
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(value, |&(_, v)| v);
        if value != "(left out)" {
            args.extend([name, value]);
        }
    }
    args
}

/// galera-nominate's arguments for the wordpress stack's three nodes.
fn galera_args<'a>(changed: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let defaults = [
        ("--nodes", "mariadb-1,mariadb-2,mariadb-3"),
        ("--waited", "0"),
        ("--majority-after", "600"),
        ("--first-node", "mariadb-1"),
        ("--cluster-name", "swarmvote"),
        ("--me", "mariadb-3"),
    ];
    args_with("galera-nominate", &defaults, changed)
}

/// Three nodes waiting after a clean stop, as the entrypoint passes them.
const GALERA_STATES: &str = "\
mariadb-1 cluster_name=swarmvote
mariadb-1 phase=waiting
mariadb-1 has_data=1
mariadb-1 uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
mariadb-1 seqno=41
mariadb-1 grastate_seqno=41
mariadb-1 safe_to_bootstrap=0
mariadb-3 cluster_name=swarmvote
mariadb-3 phase=waiting
mariadb-3 has_data=1
mariadb-3 uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
mariadb-3 seqno=42
mariadb-3 grastate_seqno=42
mariadb-3 safe_to_bootstrap=1
";

#[test]
fn galera_nominate_answers_in_lines_and_refuses_bad_input() {
    // mariadb-2 silent: wait for it, then go on without it
    let (code, out, err) = pgha(&galera_args(&[]), GALERA_STATES);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            "nominee\nbasis mariadb-1,mariadb-3\nleft_out\nwhy waiting to hear from mariadb-2\nbootstrap no",
            ""
        )
    );
    let (code, out, _) = pgha(&galera_args(&[("--waited", "600")]), GALERA_STATES);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "nominee mariadb-3",
            "basis mariadb-1,mariadb-3",
            "left_out mariadb-2",
            "why WARNING: deciding WITHOUT mariadb-2 (silent for over GALERA_MAJORITY_AFTER=600s): \
             transactions only the missing node had are lost when it rejoins; \
             mariadb-3 has the newest state (6a1f0c2e:42); \
             waiting for mariadb-1 to agree (it nominates '')",
            "bootstrap no",
        ]
    );
    // ...and once mariadb-1 nominates it too, mariadb-3 bootstraps.
    let agreed = format!("{GALERA_STATES}mariadb-1 candidate=mariadb-3\n");
    let (code, out, _) = pgha(&galera_args(&[("--waited", "600")]), &agreed);
    assert_eq!(
        (code, out.lines().last()),
        (0, Some("bootstrap yes")),
        "{out}"
    );

    let hostile = format!(
        "{GALERA_STATES}mariadb-2 phase=waiting\n{}",
        "x".repeat(70_000)
    );
    // options changed, the states, what the error says
    type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let rows: &[Row] = &[
        (
            &[("--nodes", "(left out)")],
            GALERA_STATES,
            "galera-nominate needs --nodes",
        ),
        (
            &[("--me", "(left out)")],
            GALERA_STATES,
            "galera-nominate needs --me",
        ),
        (
            &[("--me", "mariadb-9")],
            GALERA_STATES,
            "--me \"mariadb-9\" is not one of the nodes",
        ),
        (
            &[("--waited", "(left out)")],
            GALERA_STATES,
            "needs --waited",
        ),
        (
            &[("--waited", "-1")],
            GALERA_STATES,
            "--waited must be a number of seconds",
        ),
        (
            &[("--majority-after", "10m")],
            GALERA_STATES,
            "--majority-after must be a number of seconds",
        ),
        (
            &[("--first-node", "mariadb-4")],
            GALERA_STATES,
            "the first node \"mariadb-4\" is not one of the nodes",
        ),
        (
            &[("--nodes", "mariadb-1,mariadb-1")],
            GALERA_STATES,
            "mariadb-1 given twice",
        ),
        (
            &[("--nodes", "mariadb-1;reboot")],
            GALERA_STATES,
            "letters, digits",
        ),
        (
            &[("--cluster-name", "a b")],
            GALERA_STATES,
            "a cluster name is",
        ),
        (
            &[],
            "mariadb-4 phase=waiting\n",
            "line 1: \"mariadb-4 phase=waiting\": mariadb-4 is not one of the nodes",
        ),
        (
            &[],
            "mariadb-1 phase=waiting\nmariadb-1 phase=running\n",
            "line 2",
        ),
        (
            &[],
            "mariadb-1 seqno=$(reboot)\n",
            "seqno must be empty, -1 or a number",
        ),
        (&[], "not a state line\n", "expected NAME KEY=VALUE"),
        (&[], "`reboot` phase=waiting\n", "letters, digits"),
        (&[], "mariadb-1 phase\n", "expected NAME KEY=VALUE"),
        (&[], &hostile, "longer than 65536 bytes"),
    ];
    for (changed, input, want) in rows {
        let (code, out, err) = pgha(&galera_args(changed), input);
        assert_eq!(
            code, 2,
            "{changed:?} {input:.40?}: exit code (stdout {out:?})"
        );
        assert!(
            out.is_empty(),
            "{changed:?}: no answer on a bad input, got {out:?}"
        );
        assert!(
            err.contains(want),
            "{changed:?} {input:.40?}: {err:?} should say {want:?}"
        );
    }
    // bytes that are not UTF-8
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(galera_args(&[]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgha runs");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"mariadb-1 phase=\xff\n");
    let out = child.wait_with_output().expect("pgha ends");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

/// What a former primary's entrypoint writes for `pgha start`, after `elapsed`.
fn start_observed(elapsed: u32) -> String {
    format!(
        "me pg-1\nbootstrap-node pg-1\ndata primary\nlocal-tli 2\nlocal-sysid 7345017843026710561\n\
         primary none\nelapsed {elapsed}\nwindow 20\n\
         partner pg-2 reachable tli 2 data yes standby watching\npartner pg-3 silent no-answer\n"
    )
}

#[test]
fn start_fence_and_stray_answer_one_line_and_refuse_bad_input() {
    let rows: &[(&str, String, &str)] = &[
        (
            "start",
            start_observed(5),
            "wait this node was the primary and no other primary runs: giving a failover under way 20s before starting as primary (pg-2 and pg-3 may take part in one)",
        ),
        (
            "start",
            start_observed(20),
            "start-primary this node was the primary, no other primary is running and no partner has a newer timeline (local 2, partners max 2)",
        ),
        (
            "start",
            start_observed(0).replace("primary none", "primary pg-2 3 7345017843026710561"),
            "rejoin pg-2",
        ),
        (
            "fence",
            "me 2\npartner pg-2 primary 3\npartner pg-3 silent\n".into(),
            "fence pg-2 is the primary on a newer timeline (3 > 2): this node was superseded",
        ),
        ("fence", "me 2\npartner pg-2 standby\n".into(), "stay"),
        (
            "stray",
            "primary pg-2 3\nreceiver streaming pg-2\nstray-for none\nlimit 30\n".into(),
            "ok",
        ),
        (
            "stray",
            "primary pg-2 3\nreceiver none\nstray-for 30\nlimit 30\n".into(),
            "restart this standby has not streamed from the primary pg-2 for 30s (wal receiver: 'none')",
        ),
    ];
    for (command, input, want) in rows {
        let (code, out, err) = pgha(&[command], input);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, *want, ""),
            "{command} {input:?}"
        );
    }

    let huge = format!("{}{}", start_observed(0), "window 20\n".repeat(2000));
    let bad: &[(&str, String, &str)] = &[
        ("start", String::new(), "missing: me, bootstrap-node"),
        (
            "start",
            start_observed(0).replace("data primary", "data $(reboot)"),
            "expected data empty|standby|primary",
        ),
        (
            "start",
            start_observed(0).replace(
                "partner pg-3 silent no-answer",
                "partner pg-3;id silent no-answer",
            ),
            "letters, digits",
        ),
        ("start", huge, "longer than 16384 bytes"),
        ("fence", "partner pg-2 primary 3\n".into(), "missing: me"),
        (
            "fence",
            "me 2\npartner pg-2 primary three\n".into(),
            "line 2",
        ),
        (
            "stray",
            "primary pg-2 3\n".into(),
            "missing: receiver, stray-for, limit",
        ),
    ];
    for (command, input, want) in bad {
        let (code, out, err) = pgha(&[command], input);
        assert_eq!(
            code, 2,
            "{command} {input:.60?}: exit code (stdout {out:?})"
        );
        assert!(
            out.is_empty(),
            "{command}: no answer on a bad input, got {out:?}"
        );
        assert!(
            err.contains(want),
            "{command} {input:.60?}: {err:?} should say {want:?}"
        );
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha"))
        .arg("stray")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgha runs");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"primary pg-\xff\n");
    let out = child.wait_with_output().expect("pgha ends");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

/// galera-join's arguments for mariadb-1 of the wordpress stack.
fn join_args<'a>(changed: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let defaults = [
        ("--nodes", "mariadb-1,mariadb-2,mariadb-3"),
        ("--first-node", "mariadb-1"),
        ("--cluster-name", "swarmvote"),
        ("--me", "mariadb-1"),
        ("--position", "6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f:50"),
        ("--data", "tables"),
        ("--foreign", ""),
    ];
    args_with("galera-join", &defaults, changed)
}

/// mariadb-2 and mariadb-3 Synced in the cluster, as the entrypoint passes
/// their /state (the keys the join reads among the rest).
const SYNCED: &str = "\
mariadb-2 cluster_name=swarmvote
mariadb-2 phase=running
mariadb-2 mysqld=running
mariadb-2 primary=1
mariadb-2 local_state=4
mariadb-2 uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
mariadb-2 cluster_uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
mariadb-2 seqno=48
mariadb-2 left_out=
mariadb-3 cluster_name=swarmvote
mariadb-3 phase=running
mariadb-3 mysqld=running
mariadb-3 primary=1
mariadb-3 local_state=4
mariadb-3 uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
mariadb-3 cluster_uuid=6a1f0c2e-0b51-11ef-9a3c-6f3b1c1d2e4f
mariadb-3 seqno=52
mariadb-3 left_out=
";

#[test]
fn galera_join_answers_in_lines_and_refuses_bad_input() {
    let (code, out, err) = pgha(&join_args(&[]), SYNCED);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            "action join\nprimaries mariadb-2 mariadb-3\naside_kind\naside_headline\naside_reason\nleft_out no\n\
             why mariadb-2 mariadb-3 run a Primary component (cluster 6a1f0c2e): joining it",
            ""
        )
    );
    let (code, out, _) = pgha(&join_args(&[("--position", "none")]), SYNCED);
    assert_eq!(code, 0);
    assert!(
        out.contains("\naside_kind noposition\naside_headline NO USABLE POSITION\n"),
        "{out}"
    );
    let (code, out, _) = pgha(&join_args(&[]), "");
    assert_eq!((code, out.lines().next()), (0, Some("action elect")));

    for (changed, error) in [
        (
            &[("--position", "(left out)")][..],
            "galera-join needs --position",
        ),
        (
            &[("--data", "lots")],
            "--data is empty, tables or leftovers",
        ),
        (&[("--position", "x:1")], "is not a state uuid"),
        (&[("--me", "mariadb-7")], "is not one of the nodes"),
    ] {
        let (code, _, err) = pgha(&join_args(changed), SYNCED);
        assert_eq!(code, 2, "{changed:?}");
        assert!(err.contains(error), "{changed:?}: {err}");
    }
    let (code, _, err) = pgha(&join_args(&[]), "mariadb-2 cluster_uuid=zzz\n");
    assert_eq!(code, 2);
    assert!(err.contains("uuid must be empty or a state uuid"), "{err}");
}

#[test]
fn recover_answers_one_line_and_refuses_bad_input() {
    let seen = "primary pg-2\nfailed follow\nanswers no\nlocal-tli 3\nprimary-tli -\ntries 1\n";
    let (code, out, err) = pgha(&["recover"], seen);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            "again following it failed and pg-2 does not answer: looking again for the primary (it may have failed over)",
            ""
        )
    );
    let (code, out, err) = pgha(&["recover"], &seen.replace("tries 1\n", ""));
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("missing: tries"), "{err}");
}
