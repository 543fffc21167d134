use super::*;

/// The first word of the answer, and the node it names ("" for none).
fn short(a: &Action) -> (&'static str, String) {
    match a {
        Action::None { .. } => ("none", String::new()),
        Action::Detach { node, .. } => ("detach", node.clone()),
        Action::Attach { node, .. } => ("attach", node.clone()),
        Action::Promote { node, .. } => ("promote", node.clone()),
    }
}

#[test]
fn every_story_gets_its_action() {
    let rows: &[(&str, &str, (&str, &str))] = &[
        (
            "steady: Pgpool-II routes to the primary",
            "node pg-1 up primary primary 1\nnode pg-2 up standby streaming 0\nnode pg-3 up standby streaming 0\n",
            ("none", ""),
        ),
        (
            "primary frozen, nobody promoted yet: nothing to route to instead",
            "node pg-1 up primary down\nnode pg-2 up standby standby\nnode pg-3 up standby standby\n",
            ("none", ""),
        ),
        (
            "primary frozen, pg-2 promoted: the frozen one is detached at once",
            "node pg-1 up primary down\nnode pg-2 up standby primary 2\nnode pg-3 up standby standby\n",
            ("detach", "pg-1"),
        ),
        (
            "old primary thawed on an older timeline, still Pgpool-II's primary",
            "node pg-1 up primary primary 1\nnode pg-2 up standby primary 2\nnode pg-3 up standby streaming 0\n",
            ("detach", "pg-1"),
        ),
        (
            "old primary thawed, Pgpool-II already routes to the new one",
            "node pg-1 up standby primary 1\nnode pg-2 up primary primary 2\nnode pg-3 up standby streaming 0\n",
            ("none", ""),
        ),
        (
            "a promotion after search_primary_node_timeout: the primary is attached",
            "node pg-1 down standby down\nnode pg-2 up standby primary 2\nnode pg-3 up standby streaming 0\n",
            ("promote", "pg-2"),
        ),
        (
            "Pgpool-II still calls a detached node primary: it routes nothing there",
            "node pg-1 down primary down\nnode pg-2 up standby primary 2\nnode pg-3 up standby standby\n",
            ("promote", "pg-2"),
        ),
        (
            "a full restart: every node detached, pg-3 came back as the primary",
            "node pg-1 down standby standby\nnode pg-2 down standby down\nnode pg-3 down standby primary 3\n",
            ("attach", "pg-3"),
        ),
        (
            "Pgpool-II restarted during a failover: no primary anywhere yet",
            "node pg-1 up standby down\nnode pg-2 up standby standby\nnode pg-3 up standby standby\n",
            ("none", ""),
        ),
        (
            "the new primary killed after its promotion, the old one thawed",
            "node pg-1 up standby primary 1\nnode pg-2 up primary down\nnode pg-3 up standby standby\n",
            ("detach", "pg-2"),
        ),
        (
            "two primaries on one timeline: the primary is left as it is",
            "node pg-1 up primary primary 2\nnode pg-2 up standby primary 2\nnode pg-3 up standby streaming 0\n",
            ("none", ""),
        ),
        (
            "a standby streaming but detached for 3 s: not yet",
            "node pg-1 up primary primary 1\nnode pg-2 down standby streaming 3\nnode pg-3 up standby streaming 0\n",
            ("none", ""),
        ),
        (
            "a standby streaming but detached for 4 s: attached",
            "node pg-1 up primary primary 1\nnode pg-2 down standby streaming 4\nnode pg-3 up standby streaming 0\n",
            ("attach", "pg-2"),
        ),
        (
            "a detached standby that does not stream stays detached",
            "node pg-1 up primary primary 1\nnode pg-2 down standby standby\nnode pg-3 up standby streaming 0\n",
            ("none", ""),
        ),
        (
            "the primary comes first: a wrong route before a late standby",
            "node pg-1 up primary down\nnode pg-2 down standby streaming 40\nnode pg-3 up standby primary 2\n",
            ("detach", "pg-1"),
        ),
        (
            "two primaries on one timeline, a late standby is still attached",
            "node pg-1 up primary primary 2\nnode pg-2 up standby primary 2\nnode pg-3 down standby streaming 30\n",
            ("attach", "pg-3"),
        ),
        ("no backend at all", "", ("none", "")),
    ];
    for (story, input, (want, node)) in rows {
        let backends = parse(input).unwrap_or_else(|e| panic!("{story}: {e:#}"));
        let got = decide(&backends);
        assert_eq!(short(&got), (*want, (*node).to_owned()), "{story}: {got}");
    }
}

#[test]
fn the_answer_says_why_in_one_line() {
    let ambiguous = decide(
        &parse("node pg-1 up primary primary 2\nnode pg-2 up standby primary 2\n")
            .expect("valid input"),
    );
    assert_eq!(
        ambiguous.to_string(),
        "none pg-1 and pg-2 all run as primary on the newest timeline: no rule can choose; the primary is left as it is"
    );
    let detach = decide(
        &parse("node pg-1 up primary primary 1\nnode pg-2 up standby primary 2\nnode pg-3 up standby down\n").expect("valid input"),
    );
    assert_eq!(
        detach.to_string(),
        "detach pg-1 Pgpool-II routes writes to pg-1 but the primary is pg-2 (highest timeline; seen pg-1=primary/1,pg-2=primary/2,pg-3=down)"
    );
    assert_eq!(
        decide(&parse("node pg-1 up primary primary 1\n").expect("valid input")).to_string(),
        "none"
    );
    for action in [ambiguous, detach] {
        assert!(!action.to_string().contains('\n'));
    }
}

#[test]
fn wrong_or_hostile_input_is_refused_with_the_line() {
    let rows: &[(&str, &str)] = &[
        ("node pg-1 up\n", "expected node NAME STATUS ROLE SEEN"),
        ("node pg-1 up primary\n", "SEEN must be"),
        ("node pg-1 up primary primary\n", "SEEN must be"),
        (
            "node pg-1 up primary primary -1\n",
            "a timeline must be a number",
        ),
        ("node pg-1 up primary primary 99999999999\n", "too large"),
        ("node pg-1 up primary streaming 1e3\n", "must be a number"),
        ("node pg-1 sideways primary down\n", "STATUS must be"),
        ("node pg-1 up leader down\n", "ROLE must be"),
        ("node pg-1 up primary down extra\n", "SEEN must be"),
        ("backend pg-1 up primary down\n", "unknown key \"backend\""),
        (
            "node pg-1 up primary down\nnode pg-1 up standby down\n",
            "line 2",
        ),
        (
            "node pg-1 up primary down\nnode pg-1 up standby down\n",
            "pg-1 given twice",
        ),
        ("node `id` up primary down\n", "letters, digits"),
        ("node pg-1 up primary down\u{7}\n", "a control character"),
    ];
    for (input, want) in rows {
        let err = format!("{:#}", parse(input).expect_err(input));
        assert!(err.contains(want), "{input:?}: {err}");
    }
    let huge = "node pg-1 up primary down\n".repeat(1000);
    let err = format!("{:#}", parse(&huge).expect_err("huge"));
    assert!(err.contains("more than"), "{err}");
    let long = format!("node pg-1 up primary {}\n", "x".repeat(300));
    let err = format!("{:#}", parse(&long).expect_err("long"));
    assert!(err.contains("longer than"), "{err}");
}
