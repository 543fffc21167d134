//! Shared steps for the worker's tests (a module, not a test of its own).
#![allow(dead_code)]

use std::collections::HashMap;

use common::http::Readiness;
use common::queue;
use common::{Choice, VoterId};
use testkit::{Postgres, RedisServer};
use worker::metrics::WorkerMetrics;
use worker::{Config, Outcome, Worker};

pub fn config(redis: &RedisServer, pg: &Postgres, extra: &[(&str, &str)]) -> Config {
    let redis_port = redis.port.to_string();
    let pg_port = pg.port.to_string();
    let mut pairs = vec![
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", redis_port.as_str()),
        ("POSTGRESQL_HOST", "127.0.0.1"),
        ("POSTGRESQL_USERNAME", "postgres"),
        ("POSTGRESQL_PORT", pg_port.as_str()),
        ("POSTGRESQL_DATABASE", testkit::postgres::DATABASE),
        ("WORKER_BLOCK_MS", "20"),
    ];
    pairs.extend_from_slice(extra);
    let mut env = testkit::service::env(&pairs);
    let config = Config::from_env(&mut env);
    env.finish().expect("valid test configuration");
    config
}

pub fn worker(config: &Config) -> (Worker, WorkerMetrics) {
    let metrics = WorkerMetrics::new();
    let worker = Worker::new(
        config,
        metrics.clone(),
        Readiness::new(worker::DEPENDENCIES),
    );
    (worker, metrics)
}

/// Steps until a step finds nothing to do.
pub async fn drain(worker: &mut Worker) -> usize {
    let mut entries = 0;
    loop {
        match worker.step().await.expect("step") {
            Outcome::Batch { entries: n, .. } => entries += n,
            Outcome::Idle => return entries,
        }
    }
}

/// Queues a vote exactly as the vote service does.
pub fn push(redis: &RedisServer, voter: &VoterId, choice: Choice) {
    let _: String = redis
        .query(
            redis::cmd("XADD")
                .arg(queue::STREAM)
                .arg("*")
                .arg(&queue::encode(voter, choice)[..]),
        )
        .expect("XADD");
}

/// Queues `changes` votes for each of `voters` new voters, alternating
/// pseudo-randomly, and returns each voter's last choice.
pub fn push_load(redis: &RedisServer, voters: usize, changes: usize) -> HashMap<String, String> {
    let ids: Vec<VoterId> = (0..voters).map(|_| VoterId::generate()).collect();
    let mut expected = HashMap::new();
    let mut pipe = redis::pipe();
    for round in 0..changes {
        for (i, id) in ids.iter().enumerate() {
            let choice = if (i * 7 + round * 3) % 5 < 2 {
                Choice::A
            } else {
                Choice::B
            };
            pipe.cmd("XADD")
                .arg(queue::STREAM)
                .arg("*")
                .arg(&queue::encode(id, choice)[..])
                .ignore();
            expected.insert(id.as_str().to_owned(), choice.as_str().to_owned());
        }
    }
    let _: () = redis.query_pipe(&pipe).expect("pipeline of XADDs");
    expected
}

/// Every stored vote, by voter.
pub fn stored(pg: &Postgres) -> HashMap<String, String> {
    pg.psql("SELECT voter_id || ' ' || vote FROM votes")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(v, c)| (v.to_owned(), c.to_owned()))
        .collect()
}

/// The totals table, and the same counted from the votes themselves.
pub fn totals_and_recount(pg: &Postgres) -> (String, String) {
    (
        pg.psql("SELECT string_agg(vote || '=' || votes, ',' ORDER BY vote) FROM totals"),
        pg.psql(
            "SELECT string_agg(o || '=' || coalesce(n, 0), ',' ORDER BY o) FROM (VALUES ('a'), ('b')) AS t(o)
             LEFT JOIN (SELECT vote::text AS o, count(*) AS n FROM votes GROUP BY vote) c USING (o)",
        ),
    )
}

pub fn pending(redis: &RedisServer) -> i64 {
    let summary: (i64, Option<String>, Option<String>, redis::Value) = redis
        .query(redis::cmd("XPENDING").arg(queue::STREAM).arg(queue::GROUP))
        .expect("XPENDING");
    summary.0
}

pub fn stream_len(redis: &RedisServer, stream: &str) -> i64 {
    redis.query(redis::cmd("XLEN").arg(stream)).expect("XLEN")
}

/// True when every entry was delivered and acknowledged.
pub fn drained(redis: &RedisServer) -> bool {
    let groups: Vec<HashMap<String, redis::Value>> = redis
        .query(redis::cmd("XINFO").arg("GROUPS").arg(queue::STREAM))
        .unwrap_or_default();
    groups.iter().any(|g| {
        let int = |k: &str| match g.get(k) {
            Some(redis::Value::Int(n)) => Some(*n),
            _ => None,
        };
        int("lag") == Some(0) && int("pending") == Some(0)
    })
}

/// Names the voters whose stored vote is not the expected one.
pub fn assert_latest_votes(pg: &Postgres, expected: &HashMap<String, String>) {
    let got = stored(pg);
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(v, c)| got.get(*v) != Some(*c))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "{} stored for {} voters; wrong, for example: {wrong:?}",
        got.len(),
        expected.len()
    );
}
