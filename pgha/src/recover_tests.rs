//! Each story of a failed start step as a row: what the entrypoint saw, and
//! the answer's first words.

use super::*;

/// The observation from a spelling: "STEP answers|silent LOCAL PRIMARY|-
/// TRIES", the primary being pg-2.
fn observed(text: &str) -> String {
    let w: Vec<&str> = text.split_whitespace().collect();
    let [step, answers, local, primary, tries] = w[..] else {
        panic!("bad spelling {text:?}");
    };
    let answers = match answers {
        "answers" => "yes",
        "silent" => "no",
        other => panic!("answers or silent, not {other:?}"),
    };
    format!(
        "primary pg-2\nfailed {step}\nanswers {answers}\nlocal-tli {local}\nprimary-tli {primary}\ntries {tries}\n"
    )
}

fn answer(text: &str) -> String {
    let o = parse(&observed(text)).expect("valid observation");
    let said = recover(&o).to_string();
    said.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_story() {
    let rows = [
        (
            "the new primary was killed before this standby could follow it: look again",
            "follow silent 4 5 1",
            "again following",
        ),
        (
            "...and the start rule's primary is gone at the start too",
            "start silent 4 5 1",
            "again starting",
        ),
        (
            "...and gone while rewinding onto it: no copy from a dead primary",
            "rejoin silent 4 5 1",
            "again rewinding",
        ),
        (
            "a rewind failed while the primary answers: a fresh copy",
            "rejoin answers 4 5 1",
            "clone pg-2",
        ),
        (
            "a standby that cannot start on a newer primary's history: rewind",
            "start answers 4 5 1",
            "rejoin pg-2",
        ),
        (
            "a standby that cannot follow a newer primary: rewind",
            "follow answers 4 5 1",
            "rejoin pg-2",
        ),
        (
            "a node on a newer timeline than the primary's forked off too",
            "follow answers 6 5 1",
            "rejoin pg-2",
        ),
        (
            "on the primary's own timeline a fork is not the cause: again",
            "start answers 5 5 1",
            "again starting",
        ),
        ("...and again", "follow answers 5 5 2", "again following"),
        (
            "...until the last try: then rewind",
            "follow answers 5 5 3",
            "rejoin pg-2",
        ),
        (
            "the primary's timeline unknown: again",
            "follow answers 5 - 1",
            "again following",
        ),
        (
            "...until the last try",
            "start answers 5 - 3",
            "rejoin pg-2",
        ),
    ];
    for (story, seen, want) in rows {
        assert_eq!(answer(seen), want, "{story}: {seen}");
    }
}

#[test]
fn the_answer_says_why() {
    let o = parse(&observed("follow answers 5 5 2")).expect("valid");
    assert_eq!(
        recover(&o).to_string(),
        "again following it failed on pg-2's own timeline 5, so not for a fork: trying again (try 2 of 3)"
    );
    let o = parse(&observed("start answers 4 5 1")).expect("valid");
    assert_eq!(
        recover(&o).to_string(),
        "rejoin pg-2 starting as its standby failed, and this node's timeline 4 is not pg-2's 5: its history forked off"
    );
}

#[test]
fn bad_observations_are_refused() {
    let good = observed("follow answers 5 5 1");
    let rows = [
        (
            good.replace("failed follow", "failed promote"),
            "expected failed",
        ),
        (good.replace("answers yes", "answers maybe"), "yes or no"),
        (good.replace("tries 1", "tries 0"), "at least 1"),
        (good.replace("tries 1", "tries -1"), "must be a number"),
        (
            good.replace("primary pg-2", "primary pg 2"),
            "expected primary NAME",
        ),
        (good.replace("primary pg-2", "primary pg;2"), "a node name"),
        (good.replace("local-tli 5\n", ""), "missing: local-tli"),
        (format!("{good}tries 2\n"), "tries given twice"),
        (format!("{good}color blue\n"), "unknown key"),
    ];
    for (input, error) in rows {
        let err = parse(&input).expect_err(&input).to_string();
        assert!(err.contains(error), "{input:?}: {err}");
    }
}
