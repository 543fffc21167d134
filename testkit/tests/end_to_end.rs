//! vote → Redis → worker → PostgreSQL → result, all real, in one process:
//! the votes a voter was told are recorded are the ones counted, through a
//! Redis restart and a PostgreSQL restart under load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{COOKIE, SET_COOKIE};
use testkit::service::{env, spawn, Running};
use testkit::{eventually, Postgres, RedisServer};

/// The three services, wired to one Redis and one PostgreSQL.
struct Stack {
    vote: Running,
    worker: Running,
    result: Running,
}

async fn start_stack(redis: &RedisServer, pg: &Postgres) -> Stack {
    let redis_port = redis.port.to_string();
    let pg_port = pg.port.to_string();
    let pairs = [
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", redis_port.as_str()),
        ("POSTGRESQL_HOST", "127.0.0.1"),
        ("POSTGRESQL_USERNAME", "postgres"),
        ("POSTGRESQL_PORT", pg_port.as_str()),
        ("POSTGRESQL_DATABASE", testkit::postgres::DATABASE),
        ("OPTION_A", "Gandom"),
        ("OPTION_B", "Amoo"),
        ("WORKER_BLOCK_MS", "50"),
        ("WORKER_CLAIM_IDLE_MS", "1000"),
    ];
    let mut e = env(&pairs);
    let vote_config = vote::Config::from_env(&mut e);
    let worker_config = worker::Config::from_env(&mut e);
    let result_config = result::Config::from_env(&mut e);
    e.finish().expect("valid test configuration");
    Stack {
        vote: spawn(|l, s| vote::run(vote_config, l, s)).await,
        worker: spawn(|l, s| worker::run(worker_config, l, s)).await,
        result: spawn(|l, s| result::run(result_config, l, s)).await,
    }
}

impl Stack {
    async fn stop(self) {
        self.vote.stop().await.expect("vote stops cleanly");
        self.worker.stop().await.expect("worker stops cleanly");
        self.result.stop().await.expect("result stops cleanly");
    }
}

/// The voter id the service set in its answer.
fn voter_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("voter_id="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// Casts a vote as `voter` (None: a new voter). Returns the voter id the
/// service used and whether the vote was acknowledged.
async fn cast(
    http: &reqwest::Client,
    vote: &Running,
    voter: Option<&str>,
    choice: &str,
) -> (Option<String>, bool) {
    let mut request = http
        .post(vote.url("/api/vote"))
        .json(&serde_json::json!({"vote": choice}));
    if let Some(v) = voter {
        request = request.header(COOKIE, format!("voter_id={v}"));
    }
    match request.send().await {
        Ok(response) => {
            let id = voter_cookie(&response);
            let ok = response.status() == reqwest::StatusCode::OK;
            (id.or(voter.map(str::to_owned)), ok)
        }
        Err(_) => (voter.map(str::to_owned), false),
    }
}

/// What a voter was told: the last acknowledged choice, and the choices
/// attempted after it whose outcome is unknown (a 503 or a dropped
/// connection may still have reached the queue).
#[derive(Default, Debug, Clone)]
struct Ledger {
    acked: Option<String>,
    uncertain: Vec<String>,
    last_ack: Option<Instant>,
}

type Ledgers = Arc<Mutex<HashMap<String, Ledger>>>;

/// Voters vote, and some change their minds, at a steady pace until
/// `duration` is over. Every answer is written to the ledger.
async fn load(vote: &Running, duration: Duration, ledgers: Ledgers) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = Instant::now() + duration;
    let tasks = (0..16).map(|lane| {
        let http = http.clone();
        let ledgers = ledgers.clone();
        let url_vote = vote;
        async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                n += 1;
                let first = if (lane + n).is_multiple_of(2) {
                    "a"
                } else {
                    "b"
                };
                let (id, ok) = cast(&http, url_vote, None, first).await;
                let Some(id) = id else { continue };
                record(&ledgers, &id, first, ok);
                if n.is_multiple_of(3) {
                    let second = if first == "a" { "b" } else { "a" };
                    let (_, ok) = cast(&http, url_vote, Some(&id), second).await;
                    record(&ledgers, &id, second, ok);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    futures_util::future::join_all(tasks).await;
}

/// Notes what `voter` (a `voter_id` cookie value, `<id>.<signature>`) was
/// told, under the id PostgreSQL stores.
fn record(ledgers: &Ledgers, voter: &str, choice: &str, acked: bool) {
    let id = voter.split('.').next().unwrap_or_default();
    let mut ledgers = ledgers.lock().expect("ledger lock");
    let ledger = ledgers.entry(id.to_owned()).or_default();
    if acked {
        ledger.acked = Some(choice.to_owned());
        ledger.uncertain.clear();
        ledger.last_ack = Some(Instant::now());
    } else {
        ledger.uncertain.push(choice.to_owned());
    }
}

/// Waits until the worker has stored everything queued.
async fn drained(redis: &RedisServer) {
    eventually(Duration::from_secs(60), "the queue to drain", || async {
        let groups: Vec<HashMap<String, redis::Value>> = redis
            .query(redis::cmd("XINFO").arg("GROUPS").arg(common::queue::STREAM))
            .ok()?;
        let zero = |g: &HashMap<String, redis::Value>, k: &str| {
            matches!(g.get(k), Some(redis::Value::Int(0)))
        };
        groups
            .iter()
            .any(|g| zero(g, "lag") && zero(g, "pending"))
            .then_some(())
    })
    .await;
}

/// Compares the ledgers with PostgreSQL. Returns (acknowledged, found, lost).
fn audit(pg: &Postgres, ledgers: &Ledgers) -> (usize, usize, Vec<String>) {
    let stored: HashMap<String, String> = pg
        .psql("SELECT voter_id || ' ' || vote FROM votes")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(v, c)| (v.to_owned(), c.to_owned()))
        .collect();
    let ledgers = ledgers.lock().expect("ledger lock");
    let mut acknowledged = 0;
    let mut found = 0;
    let mut lost = Vec::new();
    for (voter, ledger) in ledgers.iter() {
        let Some(acked) = &ledger.acked else { continue };
        acknowledged += 1;
        match stored.get(voter) {
            Some(value) if value == acked || ledger.uncertain.contains(value) => found += 1,
            other => lost.push(format!("{voter}: told {acked:?}, stored {other:?}")),
        }
    }
    (acknowledged, found, lost)
}

async fn api_total(result: &Running) -> Option<i64> {
    let body: serde_json::Value = reqwest::get(result.url("/api/results"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["total"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_travels_to_the_result_page_and_its_live_stream() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let stack = start_stack(&redis, &pg).await;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), "result ready", || async {
        (api_total(&stack.result).await == Some(0)).then_some(())
    })
    .await;
    let events = http
        .get(stack.result.url("/events"))
        .send()
        .await
        .expect("SSE");
    let mut events = events.bytes_stream();

    let (alice, ok) = cast(&http, &stack.vote, None, "a").await;
    assert!(ok);
    let (_, ok) = cast(&http, &stack.vote, None, "a").await;
    assert!(ok);
    let (_, ok) = cast(&http, &stack.vote, alice.as_deref(), "b").await;
    assert!(ok, "a voter may change their vote");

    let expected = serde_json::json!({"options": [
        {"id": "a", "label": "Gandom", "votes": 1},
        {"id": "b", "label": "Amoo", "votes": 1}], "total": 2});
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(chunk)) = events.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(&format!("data: {expected}")) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "the SSE stream showed the tally; saw: {seen}"
    );
    let body: serde_json::Value = http
        .get(stack.result.url("/api/results"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(body, expected);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_under_load_loses_no_acknowledged_vote() {
    let mut redis = RedisServer::start();
    let pg = Postgres::start();
    let stack = start_stack(&redis, &pg).await;
    let ledgers = Ledgers::default();
    let generator = load(&stack.vote, Duration::from_secs(8), ledgers.clone());
    let fault = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(|| {
            redis.stop();
            std::thread::sleep(Duration::from_secs(1));
            redis.restart();
        });
        Instant::now()
    };
    let ((), restarted) = tokio::join!(generator, fault);
    drained(&redis).await;
    let (acknowledged, found, lost) = audit(&pg, &ledgers);
    eprintln!(
        "redis restart: acknowledged {acknowledged} / found {found} / lost {}",
        lost.len()
    );
    assert!(lost.is_empty(), "lost votes: {lost:?}");
    assert!(acknowledged > 100, "the load ran: {acknowledged}");
    let after = ledgers
        .lock()
        .expect("lock")
        .values()
        .filter(|l| l.last_ack > Some(restarted))
        .count();
    assert!(after > 0, "votes were acknowledged again after the restart");
    let stored: i64 = pg
        .psql("SELECT count(*) FROM votes")
        .parse()
        .expect("count");
    eventually(
        Duration::from_secs(10),
        "the result page to catch up",
        || async { (api_total(&stack.result).await == Some(stored)).then_some(()) },
    )
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_never_fails_a_vote_and_loses_none() {
    let redis = RedisServer::start();
    let mut pg = Postgres::start();
    let stack = start_stack(&redis, &pg).await;
    eventually(Duration::from_secs(30), "result ready", || async {
        (api_total(&stack.result).await == Some(0)).then_some(())
    })
    .await;
    let ledgers = Ledgers::default();
    let generator = load(&stack.vote, Duration::from_secs(8), ledgers.clone());
    let fault = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(|| {
            pg.stop();
            std::thread::sleep(Duration::from_secs(2));
            pg.start_again();
        });
    };
    tokio::join!(generator, fault);
    let failed: usize = ledgers
        .lock()
        .expect("lock")
        .values()
        .map(|l| l.uncertain.len())
        .sum();
    assert_eq!(
        failed, 0,
        "the vote path does not depend on PostgreSQL: votes wait in Redis"
    );
    drained(&redis).await;
    let (acknowledged, found, lost) = audit(&pg, &ledgers);
    eprintln!(
        "postgres restart: acknowledged {acknowledged} / found {found} / lost {}",
        lost.len()
    );
    assert!(lost.is_empty(), "lost votes: {lost:?}");
    assert!(acknowledged > 100, "the load ran: {acknowledged}");
    let stored: i64 = pg
        .psql("SELECT count(*) FROM votes")
        .parse()
        .expect("count");
    eventually(
        Duration::from_secs(15),
        "the result page to recover",
        || async { (api_total(&stack.result).await == Some(stored)).then_some(()) },
    )
    .await;
    stack.stop().await;
}

/// `used_memory` of a Redis server.
fn used_memory(redis: &RedisServer) -> u64 {
    redis
        .info("memory")
        .lines()
        .find_map(|l| l.trim().strip_prefix("used_memory:")?.parse().ok())
        .expect("INFO memory has used_memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_votes_clearly_and_flows_again_once_postgres_is_back() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let mut pg = Postgres::start();
    let stack = start_stack(&redis, &pg).await;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), "a first vote", || async {
        cast(&http, &stack.vote, None, "a").await.1.then_some(())
    })
    .await;
    // A long PostgreSQL outage: votes queue up in Redis until its limit.
    tokio::task::block_in_place(|| pg.stop());
    let limit = used_memory(&redis) + 300 * 1024;
    let _: () = redis
        .query(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(limit))
        .expect("CONFIG SET maxmemory");
    let ledgers = Ledgers::default();
    let refused = Arc::new(Mutex::new(None::<(u16, String)>));
    let fill = (0..16).map(|_| {
        let (http, ledgers, refused) = (http.clone(), ledgers.clone(), refused.clone());
        let url = stack.vote.url("/api/vote");
        async move {
            for _ in 0..2000 {
                if refused.lock().expect("lock").is_some() {
                    return;
                }
                let response = http
                    .post(&url)
                    .json(&serde_json::json!({"vote": "b"}))
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let status = response.status().as_u16();
                let voter = voter_cookie(&response);
                let body = response.text().await.unwrap_or_default();
                if let Some(voter) = voter {
                    record(&ledgers, &voter, "b", status == 200);
                }
                if status != 200 {
                    *refused.lock().expect("lock") = Some((status, body));
                }
            }
        }
    });
    futures_util::future::join_all(fill).await;
    let (status, body) = refused
        .lock()
        .expect("lock")
        .clone()
        .expect("the queue filled up");
    assert_eq!(status, 503, "a full queue is a 503: {body}");
    assert!(body.contains("NOT recorded"), "the voter is told: {body}");
    let metrics = http
        .get(stack.vote.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"swarmvote_vote_votes_rejected_total{reason="queue_full"}"#),
        "the refusal is counted as queue_full"
    );
    let readyz = eventually(
        Duration::from_secs(5),
        "/readyz to say the queue is full",
        || async {
            let r = http.get(stack.vote.url("/readyz")).send().await.ok()?;
            let (status, text) = (r.status(), r.text().await.ok()?);
            (status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && text.contains("queue_has_room: down"))
            .then_some(text)
        },
    )
    .await;
    let acknowledged = ledgers
        .lock()
        .expect("lock")
        .values()
        .filter(|l| l.acked.is_some())
        .count();
    eprintln!(
        "queue full after {acknowledged} acknowledged votes; /readyz: {}",
        readyz.trim().replace('\n', ", ")
    );

    // PostgreSQL back: the worker drains the queue, and votes flow again.
    tokio::task::block_in_place(|| pg.start_again());
    drained(&redis).await;
    eventually(Duration::from_secs(30), "votes recorded again", || async {
        cast(&http, &stack.vote, None, "a").await.1.then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "/readyz ready again", || async {
        let r = http.get(stack.vote.url("/readyz")).send().await.ok()?;
        (r.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;
    let (acknowledged, found, lost) = audit(&pg, &ledgers);
    assert!(lost.is_empty(), "lost votes: {lost:?}");
    assert_eq!(acknowledged, found);
    stack.stop().await;
}
