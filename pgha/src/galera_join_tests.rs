//! Each story of a Galera node starting next to running partners, as a row:
//! what the partners' `/state` say, what the node knows of its own data,
//! and the decision.

use super::*;
use crate::galera;

const A: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
const B: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

fn uuid(letter: &str) -> &'static str {
    match letter {
        "A" => A,
        "B" => B,
        other => panic!("unknown uuid {other:?}"),
    }
}

/// A partner's `/state` lines from a spelling such as "mariadb-2 synced
/// A:40 left-out mariadb-1":
///   silent        does not answer (no line)
///   waiting       its entrypoint decides, mysqld down
///   synced U:Q    in a Primary component of cluster U, Synced, at seqno Q
///   donor U:Q     the same, but a donor (wsrep_local_state 2)
///   joining U:Q   in a Primary component, still joining (state 1, phase joining)
/// then: `left-out N,M` (its cluster's bootstrap went on without them),
/// `cluster NAME` (configured for cluster NAME).
fn partner(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let name = words[0];
    let mut kv: Vec<(&str, String)> = vec![("cluster_name", "swarmvote".into())];
    let mut i = 1;
    while i < words.len() {
        let mut in_cluster = |phase: &str, state: &str, at: &str| {
            let (u, q) = at.split_once(':').expect("U:Q");
            kv.extend([
                ("phase", phase.into()),
                ("mysqld", "running".into()),
                ("primary", "1".into()),
                ("local_state", state.into()),
                ("uuid", uuid(u).into()),
                ("cluster_uuid", uuid(u).into()),
                ("seqno", q.into()),
            ]);
        };
        match words[i] {
            "silent" => return String::new(),
            "waiting" => kv.extend([("phase", "waiting".into()), ("primary", "0".into())]),
            "synced" => in_cluster("running", "4", words[i + 1]),
            "donor" => in_cluster("running", "2", words[i + 1]),
            "joining" => in_cluster("joining", "1", words[i + 1]),
            "left-out" => kv.push(("left_out", words[i + 1].into())),
            "cluster" => kv[0].1 = words[i + 1].into(),
            other => panic!("unknown word {other:?} in {text:?}"),
        }
        if matches!(
            words[i],
            "synced" | "donor" | "joining" | "left-out" | "cluster"
        ) {
            i += 1;
        }
        i += 1;
    }
    kv.iter()
        .map(|(k, v)| format!("{name} {k}={v}\n"))
        .collect()
}

/// mariadb-1's own data from a spelling: "empty", "tables", "leftovers",
/// "tables U:Q", "foreign NAME".
fn local(text: &str) -> Local {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (position, data, foreign) = match words[..] {
        ["empty"] => ("none".to_owned(), "empty", ""),
        ["tables"] => ("none".to_owned(), "tables", ""),
        ["leftovers"] => ("none".to_owned(), "leftovers", ""),
        ["tables", at] => {
            let (u, q) = at.split_once(':').expect("U:Q");
            (format!("{}:{q}", uuid(u)), "tables", "")
        }
        ["foreign", name] => ("none".to_owned(), "tables", name),
        _ => panic!("unknown local data {text:?}"),
    };
    Local::parse(&position, data, foreign).expect("valid local data")
}

fn cluster() -> Cluster {
    Cluster::new(
        "mariadb-1,mariadb-2,mariadb-3",
        "swarmvote",
        "mariadb-1",
        600,
    )
    .expect("valid settings")
}

/// The decision as one line: "elect", "wait", or "join P1 P2 [aside
/// HEADLINE (KIND)] [left-out]".
fn summary(join: &Join) -> String {
    match join {
        Join::Elect => "elect".into(),
        Join::Wait { .. } => "wait".into(),
        Join::Join {
            primaries,
            aside,
            left_out,
            ..
        } => {
            let mut s = format!("join {}", primaries.join(" "));
            if let Some(a) = aside {
                s += &format!(" aside {} ({})", a.headline, a.kind.unwrap_or("kept"));
            }
            if *left_out {
                s += " left-out";
            }
            s
        }
    }
}

fn decide_for(me_data: &str, partners: &[&str]) -> Join {
    let input: String = partners.iter().map(|p| partner(p)).collect();
    let states = galera::parse(&cluster().nodes, &input).expect("valid states");
    decide(&cluster(), "mariadb-1", &local(me_data), &states)
}

#[test]
fn every_story() {
    let rows: &[(&str, &str, &[&str], &str)] = &[
        (
            "nobody runs a Primary component: the election decides",
            "tables A:40",
            &["mariadb-2 waiting", "mariadb-3 silent"],
            "elect",
        ),
        (
            "a Primary component still joining is not joined yet",
            "empty",
            &["mariadb-2 joining A:40", "mariadb-3 waiting"],
            "elect",
        ),
        (
            "a Primary component of another cluster name is not joined",
            "empty",
            &["mariadb-2 synced A:40 cluster blog", "mariadb-3 waiting"],
            "elect",
        ),
        (
            "an empty node joins the one Synced partner",
            "empty",
            &["mariadb-2 synced A:40", "mariadb-3 silent"],
            "join mariadb-2",
        ),
        (
            "both Synced partners are named, in configured order",
            "tables A:40",
            &["mariadb-3 synced A:41", "mariadb-2 synced A:41"],
            "join mariadb-2 mariadb-3",
        ),
        (
            "a donor is not offered to join; the Synced partner is",
            "tables A:40",
            &["mariadb-2 donor A:41", "mariadb-3 synced A:41"],
            "join mariadb-3",
        ),
        (
            "partners in two different clusters are no basis to join",
            "empty",
            &["mariadb-2 synced A:40", "mariadb-3 synced B:7"],
            "wait",
        ),
        (
            "a volume of another cluster name is kept aside, never pruned",
            "foreign blog",
            &["mariadb-2 synced A:40"],
            "join mariadb-2 aside DATA OF ANOTHER CLUSTER (kept)",
        ),
        (
            "a position of another cluster (state uuid) is kept aside",
            "tables B:90",
            &["mariadb-2 synced A:40", "mariadb-3 synced A:40"],
            "join mariadb-2 mariadb-3 aside DATA OF ANOTHER CLUSTER (kept)",
        ),
        (
            "behind the newest partner: no reason to keep anything",
            "tables A:50",
            &["mariadb-2 synced A:40", "mariadb-3 synced A:60"],
            "join mariadb-2 mariadb-3",
        ),
        (
            "ahead of every partner: its last transactions are kept aside",
            "tables A:70",
            &["mariadb-2 synced A:40", "mariadb-3 synced A:60"],
            "join mariadb-2 mariadb-3 aside WARNING: THIS NODE IS AHEAD of the running cluster (kept)",
        ),
        (
            "another cluster's uuid with no usable seqno is still another cluster's",
            "tables B:-1",
            &["mariadb-2 synced A:40"],
            "join mariadb-2 aside DATA OF ANOTHER CLUSTER (kept)",
        ),
        (
            "this cluster's uuid with no usable seqno: the full copy replaces it",
            "tables A:-1",
            &["mariadb-2 synced A:40"],
            "join mariadb-2",
        ),
        (
            "tables without a position are kept aside, as a bounded kind",
            "tables",
            &["mariadb-2 synced A:40"],
            "join mariadb-2 aside NO USABLE POSITION (noposition)",
        ),
        (
            "a failed join's leftovers (no tables) are simply replaced",
            "leftovers",
            &["mariadb-2 synced A:40"],
            "join mariadb-2",
        ),
        (
            "left out of a bootstrap, with data: kept aside",
            "tables A:30",
            &["mariadb-2 synced A:40", "mariadb-3 synced A:40 left-out mariadb-1"],
            "join mariadb-2 mariadb-3 aside LEFT OUT OF A BOOTSTRAP (kept) left-out",
        ),
        (
            "left out of a bootstrap, empty: nothing to keep, the record cleared after",
            "empty",
            &["mariadb-2 synced A:40 left-out mariadb-1,mariadb-3"],
            "join mariadb-2 left-out",
        ),
        (
            "another node left out is none of this node's business",
            "tables A:30",
            &["mariadb-2 synced A:40 left-out mariadb-3"],
            "join mariadb-2",
        ),
    ];
    for (story, me, partners, want) in rows {
        let got = decide_for(me, partners);
        assert_eq!(summary(&got), *want, "{story}: {got:?}");
    }
}

#[test]
fn the_reasons_name_what_was_compared() {
    let ahead = decide_for(
        "tables A:70",
        &["mariadb-2 synced A:40", "mariadb-3 synced A:60"],
    );
    let Join::Join { aside: Some(a), .. } = &ahead else {
        panic!("{ahead:?}")
    };
    assert_eq!(
        a.reason,
        "position 70 > 60 on mariadb-3, the newest of mariadb-2 mariadb-3: its last 10 transactions are not in the cluster"
    );
    let leftovers = decide_for("leftovers", &["mariadb-2 synced A:40"]);
    let Join::Join { why, .. } = &leftovers else {
        panic!("{leftovers:?}")
    };
    assert!(
        why.starts_with("mariadb-2 runs a Primary component (cluster aaaaaaaa): joining it; "),
        "{why}"
    );
    assert!(why.contains("failed join's leftovers"), "{why}");
}

#[test]
fn the_answer_is_key_value_lines() {
    let join = decide_for("tables", &["mariadb-2 synced A:40"]);
    assert_eq!(
        join.to_string(),
        "action join\nprimaries mariadb-2\naside_kind noposition\naside_headline NO USABLE POSITION\n\
         aside_reason the data directory has no position to join the cluster from\nleft_out no\n\
         why mariadb-2 runs a Primary component (cluster aaaaaaaa): joining it"
    );
    assert_eq!(
        Join::Elect.to_string(),
        "action elect\nprimaries\naside_kind\naside_headline\naside_reason\nleft_out no\nwhy"
    );
}

#[test]
fn bad_local_facts_are_refused() {
    for (position, data, foreign) in [
        ("A:40", "tables", ""),
        ("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "tables", ""),
        ("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:x", "tables", ""),
        ("none", "full", ""),
        ("none", "tables", "a\nb"),
    ] {
        assert!(
            Local::parse(position, data, foreign).is_err(),
            "{position:?} {data:?} {foreign:?}"
        );
    }
    let crashed = Local::parse(&format!("{A}:-1"), "tables", "").expect("valid");
    assert_eq!(
        (crashed.uuid.as_deref(), crashed.seqno),
        (Some(A), None),
        "seqno -1: the uuid alone"
    );
    let zero = Local::parse(&format!("{ZERO_UUID}:5"), "tables", "").expect("valid");
    assert_eq!(
        (zero.uuid, zero.seqno),
        (None, None),
        "the zero uuid is no position"
    );
}

#[test]
fn bad_partner_lines_are_refused() {
    let nodes = cluster().nodes;
    for line in [
        "mariadb-2 cluster_uuid=not-a-uuid",
        "mariadb-2 left_out=mariadb 1",
        "mariadb-2 left_out=a;b",
    ] {
        assert!(galera::parse(&nodes, line).is_err(), "{line}");
    }
}
