//! The harness itself: real servers start, answer, restart and keep data.

use testkit::{Postgres, RedisServer};

#[test]
fn redis_keeps_data_across_a_restart() {
    let mut redis = RedisServer::start();
    let _: () = redis
        .query(redis::cmd("SET").arg("k").arg("v"))
        .expect("SET");
    redis.restart();
    let value: String = redis.query(redis::cmd("GET").arg("k")).expect("GET");
    assert_eq!(value, "v");
}

#[test]
fn postgres_keeps_data_across_a_restart() {
    let mut pg = Postgres::start();
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)");
    pg.restart();
    assert_eq!(pg.psql("SELECT x FROM t"), "42");
}

#[tokio::test]
async fn healthcheck_passes_against_a_live_service_and_fails_otherwise() {
    let redis = RedisServer::start();
    let port = redis.port.to_string();
    let mut env = testkit::service::env(&[("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", &port)]);
    let config = vote::Config::from_env(&mut env);
    env.finish().expect("valid");
    let vote = testkit::service::spawn(|l, s| vote::run(config, l, s)).await;
    let addr = vote.addr;
    let check = move || common::service::healthcheck(addr);
    tokio::task::spawn_blocking(check)
        .await
        .expect("join")
        .expect("healthy");
    vote.stop().await.expect("stops");
    let refused = tokio::task::spawn_blocking(check).await.expect("join");
    assert!(refused.is_err(), "a stopped service is unhealthy");
    // Something that answers, but not 200, is unhealthy too.
    let pg = Postgres::start();
    let wrong = format!("127.0.0.1:{}", pg.port).parse().expect("addr");
    let answer = tokio::task::spawn_blocking(move || common::service::healthcheck(wrong))
        .await
        .expect("join");
    assert!(answer.is_err());
}
