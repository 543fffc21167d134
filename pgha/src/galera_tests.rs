//! Each story of the Galera bootstrap election as a row: the nodes' `/state`
//! as the entrypoint passes them, and the nomination every node computes.

use super::*;

const A: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
const B: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

/// One node's `/state` body as galera-endpoint.sh publishes it, prefixed
/// with its name as the entrypoint passes it, from a spelling such as
/// "mariadb-2 clean A:12 last":
///   silent       does not answer (no line)
///   empty        waiting, empty data directory
///   clean U:Q    waiting after a clean stop at U:Q (grastate.dat)
///   crashed U:Q  waiting after a crash; mysqld --wsrep-recover found U:Q
///   crashed      ... and found nothing
///   running U:Q  mysqld runs outside a Primary component, at U:Q
///   foreign      its volume belongs to a cluster of another name
/// then: `last` (safe_to_bootstrap=1), `primary` (in a Primary component),
/// `phase P`, `cluster C` (configured for cluster C), `nominates N` (its
/// candidate). U is A, B or 0 (the
/// zero uuid).
fn state(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let name = words[0];
    let mut kv: BTreeMap<&str, String> = [
        ("node", name),
        ("cluster_name", "swarmvote"),
        ("phase", "waiting"),
        ("has_data", "1"),
        ("foreign", ""),
        ("mysqld", "down"),
        ("uuid", ""),
        ("seqno", ""),
        ("primary", "0"),
        ("safe_to_bootstrap", "0"),
        ("grastate_seqno", ""),
        ("candidate", ""),
        ("basis", ""),
        ("sst_auth", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    // "U:Q" as (uuid, seqno)
    let position = |at: &str| -> (&'static str, String) {
        let (u, q) = at.split_once(':').expect("U:Q");
        let uuid = match u {
            "A" => A,
            "B" => B,
            "0" => ZERO_UUID,
            other => panic!("unknown uuid {other:?} in {text:?}"),
        };
        (uuid, q.to_owned())
    };
    let mut set = |k, v: &str| kv.insert(k, v.to_owned());
    let mut i = 1;
    while i < words.len() {
        match words[i] {
            "silent" => return String::new(),
            "empty" => {
                set("has_data", "0");
                set("safe_to_bootstrap", "");
            }
            "clean" => {
                let (uuid, seqno) = position(words[i + 1]);
                set("uuid", uuid);
                set("seqno", &seqno);
                set("grastate_seqno", &seqno);
                i += 1;
            }
            "crashed" => {
                set("grastate_seqno", "-1");
                match words.get(i + 1).filter(|w| w.contains(':')) {
                    Some(at) => {
                        let (uuid, seqno) = position(at);
                        set("uuid", uuid);
                        set("seqno", &seqno);
                        i += 1;
                    }
                    None => {
                        set("seqno", "-1");
                    }
                }
            }
            "running" => {
                let (uuid, seqno) = position(words[i + 1]);
                set("uuid", uuid);
                set("seqno", &seqno);
                set("phase", "running");
                set("mysqld", "running");
                set("grastate_seqno", "-1");
                i += 1;
            }
            "foreign" => {
                set("foreign", "cluster name blog");
                set("grastate_seqno", "7");
            }
            "last" => {
                set("safe_to_bootstrap", "1");
            }
            "primary" => {
                set("primary", "1");
            }
            "phase" => {
                set("phase", words[i + 1]);
                i += 1;
            }
            "cluster" => {
                set("cluster_name", words[i + 1]);
                i += 1;
            }
            "nominates" => {
                set("candidate", words[i + 1]);
                i += 1;
            }
            other => panic!("unknown word {other:?} in {text:?}"),
        }
        i += 1;
    }
    kv.iter()
        .map(|(k, v)| format!("{name} {k}={v}\n"))
        .collect()
}

/// The cluster of three, as the wordpress stack configures it, changed by
/// "majority-after S" or "first NODE".
fn cluster(settings: &str) -> Cluster {
    let mut c = Cluster::new(
        "mariadb-1,mariadb-2,mariadb-3",
        "swarmvote",
        "mariadb-1",
        600,
    )
    .expect("valid settings");
    match settings.split_whitespace().collect::<Vec<_>>()[..] {
        [] => {}
        ["majority-after", s] => c.majority_after_s = s.parse().expect("seconds"),
        ["first", node] => c.first_node = node.to_owned(),
        _ => panic!("unknown settings {settings:?}"),
    }
    c
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The nomination from the spelled nodes, through the parser.
fn run(settings: &str, spelled: &[&str], waited_s: u64) -> Nomination {
    let c = cluster(settings);
    let input: String = spelled.iter().map(|t| state(t)).collect();
    let states = parse(&c.nodes, &input).expect("the states parse");
    nominate(&c, &states, waited_s)
}

#[test]
fn the_node_with_the_newest_state_is_nominated() {
    const ALL: &str = "mariadb-1,mariadb-2,mariadb-3";
    const WITHOUT_3: &str = "WARNING: deciding WITHOUT mariadb-3 (silent for over GALERA_MAJORITY_AFTER=600s): transactions only the missing node had are lost when it rejoins";
    // story, settings, the nodes, seconds waited; nominee, basis, left out, why
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        u64,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
    );
    let rows: &[Row] = &[
        (
            "every node heard after a clean stop: the highest seqno",
            "",
            &["mariadb-1 clean A:10", "mariadb-2 clean A:12 last", "mariadb-3 clean A:11"],
            0,
            Some("mariadb-2"),
            ALL,
            "",
            "mariadb-2 has the newest state (aaaaaaaa:12)",
        ),
        (
            "one node silent: the others wait for it",
            "",
            &["mariadb-1 crashed A:12", "mariadb-2 crashed A:11", "mariadb-3 silent"],
            599,
            None,
            "mariadb-1,mariadb-2",
            "",
            "waiting to hear from mariadb-3",
        ),
        (
            "...after GALERA_MAJORITY_AFTER a majority with a crash witness goes on without it, loudly",
            "",
            &["mariadb-1 crashed A:12", "mariadb-2 crashed A:11", "mariadb-3 silent"],
            600,
            Some("mariadb-1"),
            "mariadb-1,mariadb-2",
            "mariadb-3",
            &format!("{WITHOUT_3}; mariadb-1 has the newest state (aaaaaaaa:12)"),
        ),
        (
            "GALERA_MAJORITY_AFTER=0: every node, however long it takes",
            "majority-after 0",
            &["mariadb-1 crashed A:12", "mariadb-2 crashed A:11", "mariadb-3 silent"],
            86_400,
            None,
            "mariadb-1,mariadb-2",
            "",
            "waiting to hear from mariadb-3",
        ),
        (
            "a minority never decides",
            "",
            &["mariadb-1 crashed A:12", "mariadb-2 silent", "mariadb-3 silent"],
            900,
            None,
            "mariadb-1",
            "",
            "only mariadb-1 can be heard: not a majority of 3",
        ),
        (
            "nobody answers, not even this node's own endpoint",
            "",
            &["mariadb-1 silent", "mariadb-2 silent", "mariadb-3 silent"],
            900,
            None,
            "",
            "",
            "no node can be heard: not a majority of 3",
        ),
        (
            "every reachable node stopped cleanly and none left last: the silent one did, with the newest state",
            "",
            &["mariadb-1 clean A:12", "mariadb-2 clean A:12", "mariadb-3 silent"],
            900,
            None,
            "mariadb-1,mariadb-2",
            "",
            "mariadb-3 silent for over 600s, but every reachable node stopped cleanly before the end (safe_to_bootstrap=0): a missing node holds the newest state; refusing to bootstrap without it",
        ),
        (
            "...a reachable node that left last is the witness",
            "",
            &["mariadb-1 clean A:11", "mariadb-2 clean A:12 last", "mariadb-3 silent"],
            900,
            Some("mariadb-2"),
            "mariadb-1,mariadb-2",
            "mariadb-3",
            &format!("{WITHOUT_3}; mariadb-2 has the newest state (aaaaaaaa:12)"),
        ),
        (
            "...so is a node still running outside a Primary component",
            "",
            &["mariadb-1 clean A:12", "mariadb-2 running A:12", "mariadb-3 silent"],
            900,
            Some("mariadb-2"),
            "mariadb-1,mariadb-2",
            "mariadb-3",
            &format!("{WITHOUT_3}; mariadb-2 has the newest state (aaaaaaaa:12)"),
        ),
        (
            "every node empty: the first node creates the cluster",
            "",
            &["mariadb-1 empty", "mariadb-2 empty", "mariadb-3 empty"],
            0,
            Some("mariadb-1"),
            ALL,
            "",
            "every node is empty: mariadb-1 creates the cluster",
        ),
        (
            "...GALERA_FIRST_NODE names which",
            "first mariadb-3",
            &["mariadb-1 empty", "mariadb-2 empty", "mariadb-3 empty"],
            0,
            Some("mariadb-3"),
            ALL,
            "",
            "every node is empty: mariadb-3 creates the cluster",
        ),
        (
            "empty, one node silent: wait for it",
            "",
            &["mariadb-1 empty", "mariadb-2 empty", "mariadb-3 silent"],
            599,
            None,
            "mariadb-1,mariadb-2",
            "",
            "waiting to hear from mariadb-3",
        ),
        (
            "...and never create a cluster without it, however long",
            "",
            &["mariadb-1 empty", "mariadb-2 empty", "mariadb-3 silent"],
            900,
            None,
            "mariadb-1,mariadb-2",
            "",
            "every reachable node is empty, but mariadb-3 is missing: a new cluster is only created with every node present",
        ),
        (
            "a volume of another cluster name counts as empty",
            "",
            &["mariadb-1 empty", "mariadb-2 foreign", "mariadb-3 empty"],
            0,
            Some("mariadb-1"),
            ALL,
            "",
            "every node is empty: mariadb-1 creates the cluster",
        ),
        (
            "data whose position could not be recovered: an operator must look",
            "",
            &["mariadb-1 empty", "mariadb-2 crashed", "mariadb-3 empty"],
            0,
            None,
            ALL,
            "",
            "no node has a usable position (mariadb-2 has data but none could be recovered): an operator must look",
        ),
        (
            "...beside nodes with a position it is not counted (as the shell rule did)",
            "",
            &["mariadb-1 crashed", "mariadb-2 clean A:5", "mariadb-3 clean A:4 last"],
            0,
            Some("mariadb-2"),
            ALL,
            "",
            "mariadb-2 has the newest state (aaaaaaaa:5)",
        ),
        (
            "two state uuids, neither a majority: an operator decides",
            "",
            &["mariadb-1 clean A:5 last", "mariadb-2 clean B:9 last", "mariadb-3 empty"],
            0,
            None,
            ALL,
            "",
            "the nodes hold data of different clusters and none has a majority (1 aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa, 1 bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb): an operator must decide",
        ),
        (
            "the majority's uuid wins over a higher seqno of another",
            "",
            &["mariadb-1 clean A:5", "mariadb-2 clean A:4", "mariadb-3 clean B:99 last"],
            0,
            Some("mariadb-1"),
            ALL,
            "",
            "mariadb-1 has the newest state (aaaaaaaa:5)",
        ),
        (
            "equal seqnos: the running node, which holds the state in memory",
            "",
            &["mariadb-1 clean A:7", "mariadb-2 clean A:7", "mariadb-3 running A:7"],
            0,
            Some("mariadb-3"),
            ALL,
            "",
            "mariadb-3 has the newest state (aaaaaaaa:7)",
        ),
        (
            "equal seqnos, none running: the first name in sort order",
            "",
            &["mariadb-3 clean A:7", "mariadb-2 clean A:7", "mariadb-1 clean A:6"],
            0,
            Some("mariadb-2"),
            ALL,
            "",
            "mariadb-2 has the newest state (aaaaaaaa:7)",
        ),
        (
            "the zero uuid is no position, whatever its seqno",
            "",
            &["mariadb-1 clean 0:9", "mariadb-2 clean A:3", "mariadb-3 clean A:2"],
            0,
            Some("mariadb-2"),
            ALL,
            "",
            "mariadb-2 has the newest state (aaaaaaaa:3)",
        ),
        (
            "...alone it is data without a position",
            "",
            &["mariadb-1 clean 0:9", "mariadb-2 empty", "mariadb-3 empty"],
            0,
            None,
            ALL,
            "",
            "no node has a usable position (mariadb-1 has data but none could be recovered): an operator must look",
        ),
        (
            "a node configured for another cluster name is not heard",
            "",
            &["mariadb-1 clean A:5", "mariadb-2 clean A:5", "mariadb-3 clean A:9 last cluster blog"],
            0,
            None,
            "mariadb-1,mariadb-2",
            "",
            "waiting to hear from mariadb-3",
        ),
        (
            "nodes in a Primary component or between phases are not heard",
            "",
            &["mariadb-1 clean A:5 last", "mariadb-2 running A:5 primary", "mariadb-3 crashed A:9 phase recovering"],
            0,
            None,
            "mariadb-1",
            "",
            "waiting to hear from mariadb-2 mariadb-3",
        ),
    ];
    for (story, settings, spelled, waited, nominee, basis, left_out, why) in rows {
        let want = Nomination {
            nominee: nominee.map(str::to_owned),
            basis: names(basis),
            left_out: names(left_out),
            why: (*why).to_owned(),
        };
        assert_eq!(run(settings, spelled, *waited), want, "{story}");
    }
}

#[test]
fn a_nominee_is_a_counted_node_and_holds_the_newest_data() {
    // Every way three nodes can stand, before and after the majority wait:
    // the nominee is always a node whose state counted, holds a position
    // (unless every node is empty), and a decision without a node says so.
    let kinds = [
        "silent",
        "empty",
        "foreign",
        "crashed",
        "clean A:1",
        "clean A:2 last",
        "crashed A:2",
        "running A:2",
        "clean B:3",
        "clean 0:4",
    ];
    for a in kinds {
        for b in kinds {
            for c in kinds {
                let spelled = [
                    format!("mariadb-1 {a}"),
                    format!("mariadb-2 {b}"),
                    format!("mariadb-3 {c}"),
                ];
                let spelled: Vec<&str> = spelled.iter().map(String::as_str).collect();
                for waited in [0, 600] {
                    let got = run("", &spelled, waited);
                    let Some(nominee) = &got.nominee else {
                        continue;
                    };
                    assert!(got.basis.contains(nominee), "{spelled:?}: {got:?}");
                    let at = spelled.iter().find(|t| t.starts_with(nominee.as_str()));
                    let holds = at.is_some_and(|t| t.contains(":") && !t.contains(" 0:"));
                    let all_empty = [a, b, c].iter().all(|k| matches!(*k, "empty" | "foreign"));
                    assert!(holds || all_empty, "{spelled:?}: {got:?}");
                    assert_eq!(
                        got.left_out.is_empty(),
                        got.basis.len() == 3,
                        "{spelled:?}: {got:?}"
                    );
                    assert_eq!(
                        got.left_out.is_empty(),
                        !got.why.starts_with("WARNING"),
                        "{got:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn only_the_nominee_bootstraps_once_every_counted_node_agrees_and_none_is_primary() {
    // story, mariadb-1's partners as spelled, whether mariadb-1 may
    // bootstrap ("yes") or why not. mariadb-1 has the newest state in
    // every row but the one that says otherwise.
    let me = "mariadb-1 clean A:9 last nominates mariadb-1";
    let rows: &[(&str, [&str; 3], u64, &str)] = &[
        (
            "every node heard nominates mariadb-1",
            [
                me,
                "mariadb-2 clean A:5 nominates mariadb-1",
                "mariadb-3 clean A:5 nominates mariadb-1",
            ],
            0,
            "yes",
        ),
        (
            "a partner has not looked yet",
            [
                me,
                "mariadb-2 clean A:5",
                "mariadb-3 clean A:5 nominates mariadb-1",
            ],
            0,
            "waiting for mariadb-2 to agree (it nominates '')",
        ),
        (
            "a partner saw another nominee",
            [
                me,
                "mariadb-2 clean A:5 nominates mariadb-1",
                "mariadb-3 clean A:5 nominates mariadb-3",
            ],
            0,
            "waiting for mariadb-3 to agree (it nominates 'mariadb-3')",
        ),
        (
            // A node in a Primary component does not count: past the
            // majority wait the others would decide without it, but it
            // runs the cluster, and the nominee joins it instead.
            "a partner is already in a Primary component",
            [
                me,
                "mariadb-2 clean A:5 nominates mariadb-1",
                "mariadb-3 running A:5 primary nominates mariadb-1",
            ],
            600,
            "mariadb-3 already in a Primary component: joining it instead",
        ),
        (
            "mariadb-1 is not the nominee: no reason is given, it waits",
            [
                "mariadb-1 clean A:5 nominates mariadb-3",
                "mariadb-2 clean A:5 nominates mariadb-3",
                "mariadb-3 clean A:9 last nominates mariadb-3",
            ],
            0,
            "",
        ),
    ];
    for (story, spelled, waited, want) in rows {
        let c = cluster("");
        let input: String = spelled.iter().map(|t| state(t)).collect();
        let states = parse(&c.nodes, &input).expect("the states parse");
        let nomination = nominate(&c, &states, *waited);
        let got = match may_bootstrap("mariadb-1", &nomination, &states) {
            Ok(()) => "yes".to_owned(),
            Err(why) => why,
        };
        assert_eq!(&got, want, "{story}: {nomination:?}");
    }
}

#[test]
fn reads_what_the_endpoint_publishes() {
    let nodes = names("mariadb-1,mariadb-2,mariadb-3");
    // mariadb-1 running, as galera-endpoint.sh writes it; mariadb-2 silent;
    // mariadb-3 waiting after a crash whose recovery found nothing
    let input = format!(
        "mariadb-1 node=mariadb-1\nmariadb-1 cluster_name=swarmvote\nmariadb-1 phase=running\n\
         mariadb-1 has_data=1\nmariadb-1 foreign=\nmariadb-1 mysqld=running\nmariadb-1 uuid={A}\n\
         mariadb-1 seqno=1234\nmariadb-1 cluster_uuid={A}\nmariadb-1 cluster_status=non-Primary\n\
         mariadb-1 local_state=0\nmariadb-1 cluster_size=1\nmariadb-1 primary=0\n\
         mariadb-1 left_out=mariadb-2,mariadb-3\nmariadb-1 safe_to_bootstrap=0\n\
         mariadb-1 grastate_seqno=-1\nmariadb-1 candidate=\nmariadb-1 basis=mariadb-1,mariadb-3\n\
         mariadb-1 sst_auth=ok\n\n\
         mariadb-3 cluster_name=swarmvote\nmariadb-3 phase=waiting\nmariadb-3 has_data=1\n\
         mariadb-3 foreign=cluster name blog\nmariadb-3 uuid=\nmariadb-3 seqno=-1\n"
    );
    let states = parse(&nodes, &input).expect("well formed");
    let want: States = [
        (
            "mariadb-1".to_owned(),
            Reported {
                cluster_name: "swarmvote".into(),
                phase: "running".into(),
                mysqld_running: true,
                non_primary: true,
                has_data: true,
                foreign: false,
                uuid: A.into(),
                seqno: Some(1234),
                crashed: true,
                safe_to_bootstrap: false,
                in_primary: false,
                candidate: String::new(),
                local_state: "0".into(),
                cluster_uuid: A.into(),
                left_out: vec!["mariadb-2".into(), "mariadb-3".into()],
            },
        ),
        (
            "mariadb-3".to_owned(),
            Reported {
                cluster_name: "swarmvote".into(),
                phase: "waiting".into(),
                has_data: true,
                foreign: true,
                ..Reported::default()
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(states, want);
}

#[test]
fn wrong_or_hostile_states_are_refused_with_the_line() {
    let nodes = names("mariadb-1,mariadb-2,mariadb-3");
    let long_line = format!("mariadb-1 foreign={}\n", "x".repeat(2000));
    let huge = "mariadb-1 x=\n".repeat(10_000);
    let rows: &[(&str, &str)] = &[
        (
            "mariadb-9 phase=waiting\n",
            "mariadb-9 is not one of the nodes",
        ),
        (
            "mariadb-1 phase=waiting\nmariadb-1 phase=running\n",
            "line 2",
        ),
        (
            "mariadb-1 phase=waiting\nmariadb-1 phase=running\n",
            "mariadb-1's phase given twice",
        ),
        ("mariadb-1\n", "expected NAME KEY=VALUE"),
        ("mariadb-1 phase\n", "expected NAME KEY=VALUE"),
        ("$(reboot) phase=waiting\n", "letters, digits"),
        ("mariadb-1;id phase=waiting\n", "letters, digits"),
        ("mariadb-1 Phase=waiting\n", "a key is lowercase"),
        ("mariadb-1 =waiting\n", "a key is lowercase"),
        ("mariadb-1  phase=waiting\n", "a key is lowercase"),
        (
            "mariadb-1 seqno=12abc\n",
            "seqno must be empty, -1 or a number",
        ),
        (
            "mariadb-1 seqno=+5\n",
            "seqno must be empty, -1 or a number",
        ),
        (
            "mariadb-1 seqno=-5\n",
            "seqno must be empty, -1 or a number",
        ),
        (
            "mariadb-1 seqno=1 2\n",
            "seqno must be empty, -1 or a number",
        ),
        ("mariadb-1 seqno=99999999999999999999\n", "past the largest"),
        (
            "mariadb-1 uuid=not-a-uuid\n",
            "uuid must be empty or a state uuid",
        ),
        (
            "mariadb-1 uuid=aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa;\n",
            "uuid must be",
        ),
        ("mariadb-1 candidate=$(reboot)\n", "letters, digits"),
        (&long_line, "longer than 1024 bytes"),
        (&huge, "more than 65536"),
    ];
    for (input, want) in rows {
        let err = format!("{:#}", parse(&nodes, input).expect_err(input));
        assert!(err.contains(want), "{input:.60?}: {err}");
    }
}

#[test]
fn the_settings_are_checked() {
    let rows: &[(&str, &str, &str, &str)] = &[
        (
            "a,b,c",
            "swarmvote",
            "d",
            "the first node \"d\" is not one of the nodes",
        ),
        ("a,,c", "swarmvote", "a", "letters, digits"),
        ("", "swarmvote", "a", "letters, digits"),
        ("a b,c", "swarmvote", "c", "letters, digits"),
        ("a,b,a", "swarmvote", "a", "a given twice"),
        ("a,b,c", "", "a", "a cluster name is"),
        ("a,b,c", "swarm vote", "a", "a cluster name is"),
        ("a,b,c", &"x".repeat(33), "a", "a cluster name is"),
    ];
    for (nodes, name, first, want) in rows {
        let err = format!(
            "{:#}",
            Cluster::new(nodes, name, first, 600).expect_err(nodes)
        );
        assert!(err.contains(want), "{nodes:?} {name:?} {first:?}: {err}");
    }
}
