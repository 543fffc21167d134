//! The set of voters from before signed ids: a worker copies every stored
//! and every queued voter id into Redis once, then marks it complete.

mod common_steps;

use std::collections::BTreeSet;

use common::queue;
use common::{Choice, VoterId};
use common_steps::*;
use testkit::{Postgres, RedisServer};

fn legacy_set(redis: &RedisServer) -> BTreeSet<String> {
    redis
        .query(redis::cmd("SMEMBERS").arg(queue::LEGACY_VOTERS))
        .unwrap_or_default()
}

#[tokio::test]
async fn every_stored_and_queued_voter_is_loaded_once() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let config = config(&redis, &pg, &[]);
    let (mut worker, _) = worker(&config);
    // 12,000 stored voters: more than two pages.
    let stored_voters = push_load(&redis, 12_000, 1);
    assert_eq!(drain(&mut worker).await, 12_000);
    let queued: Vec<VoterId> = (0..3).map(|_| VoterId::generate()).collect();
    for voter in &queued {
        push(&redis, voter, Choice::B);
    }
    // The worker's maintenance loaded the set already, at its first step:
    // start over, as after an upgrade with all of this in place.
    let _: () = redis
        .query(
            redis::cmd("DEL")
                .arg(queue::LEGACY_VOTERS)
                .arg(queue::LEGACY_VOTERS_LOADED),
        )
        .expect("DEL");
    let loaded = worker.load_legacy_voters().await.expect("loading");
    assert_eq!(loaded, Some(12_003));
    let mut expected: BTreeSet<String> = stored_voters.into_keys().collect();
    expected.extend(queued.iter().map(|v| v.as_str().to_owned()));
    assert_eq!(legacy_set(&redis), expected);
    let marked: Option<String> = redis
        .query(redis::cmd("GET").arg(queue::LEGACY_VOTERS_LOADED))
        .expect("GET");
    assert!(marked.is_some_and(|ms| ms.parse::<u64>().is_ok_and(|ms| ms > 0)));
    // Complete: nothing is loaded again, and later voters are not added.
    push(&redis, &VoterId::generate(), Choice::A);
    assert_eq!(drain(&mut worker).await, 4, "the 3 queued and the new one");
    assert_eq!(worker.load_legacy_voters().await.expect("check"), None);
    assert_eq!(legacy_set(&redis).len(), 12_003);
}

/// The worker's maintenance loads the set by itself, and again into a
/// Redis that lost its data (the mark with it).
#[tokio::test]
async fn a_redis_without_the_mark_is_loaded_again() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let config = config(&redis, &pg, &[]);
    let (mut worker, _) = worker(&config);
    push(&redis, &VoterId::generate(), Choice::A);
    assert_eq!(drain(&mut worker).await, 1);
    worker.maintain().await;
    assert_eq!(legacy_set(&redis).len(), 1, "loaded by the maintenance");
    assert_eq!(worker.load_legacy_voters().await.expect("first"), None);
    let _: () = redis.query(&redis::cmd("FLUSHALL")).expect("FLUSHALL");
    assert_eq!(worker.load_legacy_voters().await.expect("again"), Some(1));
    assert_eq!(legacy_set(&redis).len(), 1);
}
