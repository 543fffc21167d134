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
