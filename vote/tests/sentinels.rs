//! The vote service with real Sentinels watching three real redis-servers:
//! it waits for every replica that could be promoted, follows the Sentinels
//! when one is down, and acknowledges nothing on an old primary that thawed
//! after a failover.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use testkit::service::{env, spawn, Running};
use testkit::{eventually, RedisServer, Sentinels};

const MASTER: &str = "votes-test";

/// Three nodes on their own loopback addresses (Sentinel tells nodes apart
/// by host), each announcing that address as its name.
fn nodes() -> Vec<RedisServer> {
    let node = |ip: &str, extra: &[&str]| {
        let mut args = vec!["--replica-announce-ip", ip];
        args.extend_from_slice(extra);
        RedisServer::start_on(ip, &args)
    };
    let primary = node("127.0.0.11", &[]);
    let port = primary.port.to_string();
    let replicas =
        ["127.0.0.12", "127.0.0.13"].map(|ip| node(ip, &["--replicaof", "127.0.0.11", &port]));
    let mut all = vec![primary];
    all.extend(replicas);
    all
}

async fn start_vote(primary: &RedisServer, sentinels: &Sentinels) -> Running {
    let port = primary.port.to_string();
    let addresses = sentinels.addresses();
    let mut env = env(&[
        ("REDIS_HOST", primary.host.as_str()),
        ("REDIS_PORT", port.as_str()),
        ("REDIS_SENTINELS", addresses.as_str()),
        ("REDIS_MASTER_NAME", MASTER),
        ("VOTE_MIN_REPLICAS", "1"),
        ("VOTE_WAIT_TIMEOUT_MS", "300"),
    ]);
    let config = vote::Config::from_env(&mut env);
    env.finish().expect("valid test configuration");
    spawn(|listener, shutdown| vote::run(config, listener, shutdown)).await
}

async fn vote(client: &Client, service: &Running) -> StatusCode {
    client
        .post(service.url("/api/vote"))
        .header("content-type", "application/json")
        .body(r#"{"vote":"a"}"#)
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

async fn required(client: &Client, service: &Running) -> Option<i64> {
    let text = client
        .get(service.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("swarmvote_vote_replicas_required ")?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_every_promotable_replica_and_never_for_an_old_primary() {
    let nodes = nodes();
    let sentinels = Sentinels::start(MASTER, &nodes[0]);
    let client = Client::new();
    eventually(
        Duration::from_secs(30),
        "the Sentinels to know both replicas",
        || async {
            sentinels
                .replicas_known()
                .iter()
                .all(|&n| n == 2)
                .then_some(())
        },
    )
    .await;
    let service = start_vote(&nodes[0], &sentinels).await;

    // Healthy (both replicas done copying the data): both must confirm.
    eventually(
        Duration::from_secs(10),
        "a vote recorded by both replicas",
        || async {
            (vote(&client, &service).await == StatusCode::OK
                && required(&client, &service).await == Some(2))
            .then_some(())
        },
    )
    .await;

    // One replica frozen: refused until the Sentinels call it down, then
    // recorded with the other replica alone.
    nodes[2].freeze();
    let frozen = Instant::now();
    eventually(
        Duration::from_secs(15),
        "votes recorded again without the frozen replica",
        || async { (vote(&client, &service).await == StatusCode::OK).then_some(()) },
    )
    .await;
    assert_eq!(required(&client, &service).await, Some(1));
    println!(
        "recorded again {} ms after a replica froze",
        frozen.elapsed().as_millis()
    );
    nodes[2].thaw();
    eventually(
        Duration::from_secs(20),
        "the thawed replica to count again",
        || async {
            (vote(&client, &service).await == StatusCode::OK
                && required(&client, &service).await == Some(2))
            .then_some(())
        },
    )
    .await;

    // The primary frozen until the Sentinels promote another node, then
    // thawed: it still says role:master for seconds, and votes still reach
    // it (REDIS_HOST points at it), but none may be acknowledged there.
    nodes[0].freeze();
    let promoted = eventually(Duration::from_secs(30), "a failover", || async {
        let named = sentinels.named();
        named
            .iter()
            .filter(|n| n.as_str() != "127.0.0.11" && !n.is_empty())
            .count()
            .ge(&2)
            .then(|| named[0].clone())
    })
    .await;
    nodes[0].thaw();
    // The other replica still streaming from the old primary, as when the
    // thaw comes before the Sentinels re-point it: WAIT alone would pass.
    let other = nodes[1..]
        .iter()
        .find(|n| n.host != promoted)
        .expect("a replica that was not promoted");
    let port = nodes[0].port.to_string();
    other
        .query::<String>(redis::cmd("REPLICAOF").arg("127.0.0.11").arg(&port))
        .expect("REPLICAOF the old primary");
    let mut answers = Vec::new();
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let role_master = nodes[0].info("replication").contains("role:master");
        let sent = Instant::now();
        answers.push((role_master, vote(&client, &service).await));
        slowest = slowest.max(sent.elapsed());
    }
    let while_master = answers.iter().filter(|(m, _)| *m).count();
    assert!(
        while_master > 0,
        "the old primary never said role:master after its thaw: the check proved nothing"
    );
    let acknowledged: Vec<_> = answers
        .iter()
        .filter(|(_, s)| *s == StatusCode::OK)
        .collect();
    assert!(
        acknowledged.is_empty(),
        "{} of {} votes were acknowledged on the old primary after {promoted} was promoted",
        acknowledged.len(),
        answers.len()
    );
    // A majority names another node: no newer word can make these votes
    // safe, so they are refused at once, not after the grace given to a
    // late word (2.5 s), which had held every vote behind them.
    assert!(
        slowest < Duration::from_millis(2000),
        "a vote written to the old primary waited {slowest:?} to be refused"
    );
    service.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vote_waits_out_a_short_silence_of_the_sentinels_and_is_refused_in_a_long_one() {
    let nodes = nodes();
    let sentinels = Sentinels::start(MASTER, &nodes[0]);
    let client = Client::new();
    let service = start_vote(&nodes[0], &sentinels).await;
    eventually(Duration::from_secs(30), "a recorded vote", || async {
        (vote(&client, &service).await == StatusCode::OK).then_some(())
    })
    .await;
    let silence = |frozen: bool| {
        for s in &sentinels.servers {
            if frozen {
                s.freeze();
            } else {
                s.thaw();
            }
        }
    };

    // Silent long enough that the word the vote service holds refuses
    // (every poll times out), then back 0.2 s after the vote was sent.
    silence(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = Instant::now();
    let pending = tokio::spawn({
        let (client, url) = (client.clone(), service.url("/api/vote"));
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(r#"{"vote":"b"}"#)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    silence(false);
    let status = pending.await.expect("the request task").expect("an answer");
    assert_eq!(status, StatusCode::OK, "a vote during a 0.2 s silence");
    assert!(
        sent.elapsed() >= Duration::from_millis(150),
        "it waited for the Sentinels"
    );

    // Silent for longer than the grace: refused, not hung.
    silence(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = Instant::now();
    let status = vote(&client, &service).await;
    let took = sent.elapsed();
    silence(false);
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a vote while the Sentinels stay silent"
    );
    assert!(took < Duration::from_secs(5), "refused in {took:?}");
    service.stop().await.expect("clean stop");
}
