//! The worker in-process against real Redis and PostgreSQL: batches, latest
//! vote wins, racing workers, out-of-order redelivery, malformed entries.

mod common_steps;

use common::queue::{self, EntryId, VoteEntry};
use common::{Choice, VoterId};
use common_steps::*;
use testkit::{Postgres, RedisServer};
use worker::store::Store;
use worker::Outcome;

#[tokio::test]
async fn drains_in_batches_and_the_latest_vote_of_each_voter_wins() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let expected = push_load(&redis, 1000, 3);
    let config = config(&redis, &pg, &[("WORKER_BATCH_SIZE", "256")]);
    let (mut worker, metrics) = worker(&config);
    assert_eq!(drain(&mut worker).await, 3000);
    assert_latest_votes(&pg, &expected);
    let (totals, recount) = totals_and_recount(&pg);
    assert_eq!(totals, recount);
    assert_eq!(pending(&redis), 0);
    assert!(
        metrics.batch_size.get_sample_count() >= 12,
        "3000 entries in batches of at most 256"
    );
    // Acknowledged entries are trimmed (in whole stream nodes of 100).
    worker.maintain().await;
    assert!(
        stream_len(&redis, queue::STREAM) <= 100,
        "{}",
        stream_len(&redis, queue::STREAM)
    );
}

/// After a batch that was not full, the next read waits WORKER_LINGER_MS, so
/// votes that trickle in meanwhile make one batch, not one each.
#[tokio::test]
async fn votes_that_trickle_in_after_a_small_batch_gather_into_one() {
    use std::time::{Duration, Instant};
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let config = config(&redis, &pg, &[("WORKER_LINGER_MS", "600")]);
    let (mut worker, _) = worker(&config);
    push(&redis, &VoterId::generate(), Choice::A);
    let first = Instant::now();
    let outcome = worker.step().await.expect("step");
    assert!(
        matches!(outcome, Outcome::Batch { entries: 1, .. }),
        "{outcome:?}"
    );
    // Two votes 100 ms apart while the worker takes its next step: without
    // the linger it would read the first one alone.
    let (outcome, ()) = tokio::join!(worker.step(), async {
        push(&redis, &VoterId::generate(), Choice::A);
        tokio::time::sleep(Duration::from_millis(100)).await;
        push(&redis, &VoterId::generate(), Choice::B);
    });
    let outcome = outcome.expect("step");
    assert!(
        first.elapsed() < Duration::from_millis(1500),
        "the steps took too long for this test to mean anything"
    );
    assert!(
        matches!(outcome, Outcome::Batch { entries: 2, .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn two_racing_workers_agree_on_the_latest_vote() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let expected = push_load(&redis, 150, 20);
    let config = config(&redis, &pg, &[("WORKER_BATCH_SIZE", "7")]);
    let (mut one, _) = worker(&config);
    let mut config_two = config.clone();
    config_two.consumer.push_str("-two");
    let (mut two, _) = worker(&config_two);
    let (a, b) = tokio::join!(drain(&mut one), drain(&mut two));
    // One may stop early while the other still works: finish both.
    let rest = drain(&mut one).await + drain(&mut two).await;
    assert_eq!(a + b + rest, 3000);
    assert!(a > 0 && b > 0, "both workers took part: {a} and {b}");
    assert_latest_votes(&pg, &expected);
    let (totals, recount) = totals_and_recount(&pg);
    assert_eq!(totals, recount);
}

#[tokio::test]
async fn an_older_or_repeated_batch_never_undoes_a_newer_vote() {
    let pg = Postgres::start();
    let mut store = Store::new(pg.config());
    let voter = VoterId::generate();
    let other = VoterId::generate();
    let entry = |ms, seq, voter: &VoterId, choice| VoteEntry {
        id: EntryId { ms, seq },
        voter: voter.clone(),
        choice,
    };
    let newer = vec![
        entry(200, 0, &voter, Choice::B),
        entry(200, 1, &other, Choice::A),
    ];
    let older = vec![
        entry(100, 5, &voter, Choice::A),
        entry(100, 6, &other, Choice::B),
    ];
    assert_eq!(store.commit(&newer).await.expect("commit"), 2);
    assert_eq!(
        store.commit(&older).await.expect("commit"),
        0,
        "older entries change nothing"
    );
    assert_eq!(
        store.commit(&newer).await.expect("commit"),
        0,
        "a redelivery changes nothing"
    );
    // Within one batch, the later entry of a voter wins whatever the order.
    let mixed = vec![
        entry(300, 1, &voter, Choice::A),
        entry(300, 0, &voter, Choice::B),
    ];
    assert_eq!(store.commit(&mixed).await.expect("commit"), 1);
    let votes = stored(&pg);
    assert_eq!(votes[voter.as_str()], "a");
    assert_eq!(votes[other.as_str()], "a");
    let (totals, recount) = totals_and_recount(&pg);
    assert_eq!(totals, "a=2,b=0");
    assert_eq!(totals, recount);
}

#[tokio::test]
async fn malformed_entries_go_to_the_dead_letter_stream_and_the_rest_is_stored() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let good = VoterId::generate();
    push(&redis, &good, Choice::A);
    let hostile = "x".repeat(100_000);
    let bad_entries: Vec<Vec<(&str, &str)>> = vec![
        vec![("voter_id", good.as_str()), ("vote", "c")],
        vec![("voter_id", "'; DROP TABLE votes; --"), ("vote", "a")],
        vec![("voter_id", good.as_str())],
        vec![("voter_id", good.as_str()), ("vote", "a"), ("extra", "1")],
        vec![("vote", hostile.as_str()), ("voter_id", hostile.as_str())],
        vec![("garbage", "\u{0}\u{1}")],
    ];
    for fields in &bad_entries {
        let _: String = redis
            .query(
                redis::cmd("XADD")
                    .arg(queue::STREAM)
                    .arg("*")
                    .arg(&fields[..]),
            )
            .expect("XADD");
    }
    let later = VoterId::generate();
    push(&redis, &later, Choice::B);
    let config = config(&redis, &pg, &[]);
    let (mut worker, metrics) = worker(&config);
    drain(&mut worker).await;
    let votes = stored(&pg);
    assert_eq!(votes.len(), 2, "{votes:?}");
    assert_eq!(votes[good.as_str()], "a");
    assert_eq!(votes[later.as_str()], "b");
    assert_eq!(stream_len(&redis, queue::DEAD_LETTER_STREAM), 6);
    assert_eq!(
        pending(&redis),
        0,
        "dead letters are acknowledged, not retried forever"
    );
    let dead: u64 = ["vote", "voter_id", "fields"]
        .iter()
        .map(|r| metrics.dead_lettered.with_label_values(&[r]).get())
        .sum();
    assert_eq!(dead, 6);
    let first: Vec<(String, Vec<(String, String)>)> = redis
        .query(
            redis::cmd("XRANGE")
                .arg(queue::DEAD_LETTER_STREAM)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1),
        )
        .expect("XRANGE");
    let fields = &first[0].1;
    assert!(
        fields.contains(&("reason".into(), "vote".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("field:vote".into(), "c".into())),
        "the original is kept: {fields:?}"
    );
}

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    let pg = Postgres::start();
    let config = pg.config();
    let runs = (0..8).map(|_| {
        let config = config.clone();
        async move {
            let mut client = config.connect("test").await?;
            common::schema::migrate(&mut client).await
        }
    });
    for result in futures_util::future::join_all(runs).await {
        result.expect("migration");
    }
    assert_eq!(pg.psql("SELECT count(*) FROM schema_migrations"), "1");
    assert_eq!(pg.psql("SELECT count(*) FROM totals"), "2");
}
