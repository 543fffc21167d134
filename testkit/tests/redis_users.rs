//! vote and worker as the Redis users the redis stack gives them (the `user`
//! lines of redis/redis.conf, as deployed): queueing a vote, looking up a
//! voter from before ids were signed, consuming, dead-lettering and
//! trimming all work, and Redis refuses them nothing. Redis logs every
//! refusal (`ACL LOG`); it must stay empty, so a rule the services outgrow
//! fails here rather than in a deployment.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use testkit::service::{env, spawn, Running};
use testkit::{eventually, Postgres, RedisServer};

/// The deployed node configuration: its `user` lines are what is tested.
const REDIS_CONF: &str = include_str!("../../redis/redis.conf");

/// `redis-server` arguments defining each user of redis.conf with the
/// password `NAME-pw` in place of its hash.
fn users() -> Vec<String> {
    let mut args = Vec::new();
    for line in REDIS_CONF.lines().filter(|l| l.starts_with("user ")) {
        let mut words = line.split_whitespace().skip(1);
        let name = words.next().expect("a user name");
        args.extend(["--user".to_owned(), name.to_owned()]);
        args.extend(words.map(|w| {
            if w.starts_with("#@") {
                format!(">{name}-pw")
            } else {
                w.to_owned()
            }
        }));
    }
    assert!(
        args.iter().filter(|a| *a == "--user").count() >= 5,
        "redis.conf defines the users"
    );
    args
}

/// vote and worker, each as its own Redis user.
async fn start(redis: &RedisServer, pg: &Postgres) -> (Running, Running) {
    let redis_port = redis.port.to_string();
    let pg_port = pg.port.to_string();
    let config = |user: &'static str, password: &str| {
        let mut e = env(&[
            ("REDIS_HOST", "127.0.0.1"),
            ("REDIS_PORT", redis_port.as_str()),
            ("REDIS_USERNAME", user),
            ("REDIS_PASSWORD", password),
            ("POSTGRESQL_HOST", "127.0.0.1"),
            ("POSTGRESQL_USERNAME", "postgres"),
            ("POSTGRESQL_PORT", pg_port.as_str()),
            ("POSTGRESQL_DATABASE", testkit::postgres::DATABASE),
            ("OPTION_A", "Cats"),
            ("OPTION_B", "Dogs"),
            ("WORKER_BLOCK_MS", "50"),
        ]);
        let vote = vote::Config::from_env(&mut e);
        let worker = worker::Config::from_env(&mut e);
        e.finish().expect("valid test configuration");
        (vote, worker)
    };
    let (vote_config, _) = config("vote", "vote-pw");
    let (_, worker_config) = config("worker", "worker-pw");
    (
        spawn(|l, s| vote::run(vote_config, l, s)).await,
        spawn(|l, s| worker::run(worker_config, l, s)).await,
    )
}

async fn cast(http: &reqwest::Client, vote: &Running, cookie: Option<&str>) -> StatusCode {
    let mut request = http
        .post(vote.url("/api/vote"))
        .json(&serde_json::json!({"vote": "a"}));
    if let Some(c) = cookie {
        request = request.header(COOKIE, format!("voter_id={c}"));
    }
    request
        .send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
}

/// `ACL DRYRUN user command...`: whether the user may run it.
fn may(redis: &RedisServer, user: &str, command: &[&str]) -> bool {
    let answer: redis::RedisResult<String> =
        redis.query(redis::cmd("ACL").arg("DRYRUN").arg(user).arg(command));
    answer.is_ok_and(|a| a == "OK")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vote_and_worker_need_no_right_their_redis_users_lack() {
    let args = users();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let redis = RedisServer::start_with(&args);
    let pg = Postgres::start();
    // A malformed entry, for the worker to move to the dead letters.
    let _: String = redis
        .query(
            redis::cmd("XADD")
                .arg(common::queue::STREAM)
                .arg("*")
                .arg("voter_id")
                .arg("not an id")
                .arg("vote")
                .arg("a"),
        )
        .expect("XADD as the default user");
    let (vote, worker) = start(&redis, &pg).await;
    let http = reqwest::Client::new();

    assert_eq!(
        cast(&http, &vote, None).await,
        StatusCode::OK,
        "a new voter"
    );
    // A bare id from before signing: answered once the worker has loaded
    // those voters (a lookup by vote's user).
    let legacy = "0123456789abcdef0123456789abcdef";
    eventually(
        Duration::from_secs(30),
        "a voter from before signing",
        || async { (cast(&http, &vote, Some(legacy)).await == StatusCode::OK).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(30), "both votes stored", || async {
        (pg.psql("SELECT count(*) FROM votes").trim() == "2").then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "the malformed entry dead-lettered",
        || async {
            let dead: i64 = redis
                .query(redis::cmd("XLEN").arg(common::queue::DEAD_LETTER_STREAM))
                .ok()?;
            (dead == 1).then_some(())
        },
    )
    .await;

    // What the worker does only now and then, allowed without being run.
    for command in [
        &["XGROUP", "DELCONSUMER", "votes", "workers", "gone"][..],
        &["XINFO", "CONSUMERS", "votes", "workers"],
        &["XTRIM", "votes", "MINID", "0"],
    ] {
        assert!(may(&redis, "worker", command), "worker may {command:?}");
    }
    // The check can fail: what no service needs is refused.
    for (user, command) in [
        ("vote", &["FLUSHALL"][..]),
        ("vote", &["XRANGE", "votes", "-", "+"]),
        ("worker", &["CONFIG", "GET", "requirepass"]),
        ("worker", &["GET", "anything"]),
    ] {
        assert!(!may(&redis, user, command), "{user} may {command:?}");
    }

    let refusals: Vec<HashMap<String, redis::Value>> =
        redis.query(redis::cmd("ACL").arg("LOG")).expect("ACL LOG");
    assert!(
        refusals.is_empty(),
        "Redis refused vote or worker: {refusals:?}"
    );
    vote.stop().await.expect("vote stops cleanly");
    worker.stop().await.expect("worker stops cleanly");
}
