//! The `pgha` binary as the entrypoint runs it: real PostgreSQL WAL read by
//! the real pg_waldump, and wrong arguments refused with a clear error.

use std::io::Write;
use std::process::{Command, Stdio};

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

/// pg_waldump's listing of the server's WAL from `from` on.
fn waldump(pg: &Postgres, from: &str) -> String {
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_waldump")
        .arg("-p")
        .arg(pg.data_dir().join("pg_wal"))
        .args(["-s", from])
        .output()
        .expect("pg_waldump runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
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

    let listing = waldump(&pg, &fork);
    let (code, answer, _) = pgha(
        &["before-rewind", "--was", "primary", "--from", &fork],
        &listing,
    );
    assert_eq!(code, 0);
    let fields: Vec<&str> = answer.split(' ').collect();
    assert_eq!(
        (fields[0], fields[2]),
        ("keep-aside", "3"),
        "a former primary's tail: {answer}\n{listing}"
    );

    let (_, answer, _) = pgha(
        &["before-rewind", "--was", "standby", "--from", &fork],
        &listing,
    );
    assert!(
        answer.starts_with("alarm ") && answer.ends_with(" 3"),
        "a standby's tail: {answer}"
    );

    // Past the last commit only the shutdown checkpoint remains.
    let (_, answer, _) = pgha(
        &["before-rewind", "--was", "standby", "--from", &end],
        &waldump(&pg, &end),
    );
    assert_eq!(answer, "discards 1", "only the shutdown checkpoint");
}

#[test]
fn wrong_arguments_and_input_get_a_clear_error() {
    let rows: &[(&[&str], &str, &str)] = &[
        (&[], "", "usage: pgha"),
        (
            &["rewind-everything"],
            "",
            "unknown command \"rewind-everything\"",
        ),
        (
            &["before-rewind", "--from", "0/1"],
            "",
            "before-rewind needs --was",
        ),
        (
            &["before-rewind", "--was", "leader", "--from", "0/1"],
            "",
            "--was must be primary or standby",
        ),
        (
            &["before-rewind", "--was", "primary", "--from"],
            "",
            "--from needs a value",
        ),
        (
            &["before-rewind", "--was", "primary", "--from", "0/xyz"],
            "",
            "a WAL position looks like",
        ),
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
