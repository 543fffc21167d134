//! The worker binary as a process: killed with SIGKILL in the middle of a
//! batch, started before its dependencies, stopped with SIGTERM.

mod common_steps;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common_steps::*;
use testkit::{eventually, free_port, Postgres, RedisServer};

/// A worker process, killed when the test ends however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real worker binary against the test servers.
fn spawn_worker(redis: &RedisServer, pg: &Postgres, http_port: u16) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.env_clear()
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", redis.port.to_string())
        .env("POSTGRESQL_HOST", "127.0.0.1")
        .env("POSTGRESQL_USERNAME", "postgres")
        .env("POSTGRESQL_PORT", pg.port.to_string())
        .env("POSTGRESQL_DATABASE", testkit::postgres::DATABASE)
        .env("LISTEN_ADDR", format!("127.0.0.1:{http_port}"))
        .env("WORKER_BATCH_SIZE", "100")
        .env("WORKER_BLOCK_MS", "50")
        .env("WORKER_CLAIM_IDLE_MS", "500")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Proc(cmd.spawn().expect("the worker binary starts"))
}

fn rows(pg: &Postgres) -> usize {
    // Zero until the worker has created the schema.
    pg.try_psql("SELECT count(*) FROM votes")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn has_schema(pg: &Postgres) -> bool {
    pg.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'totals'") == "1"
}

async fn status(port: u16, path: &str) -> Option<u16> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    Some(response.status().as_u16())
}

#[tokio::test]
async fn kill_9_mid_batch_loses_nothing_and_counts_nothing_twice() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let expected = push_load(&redis, 2000, 3);
    let mut first = spawn_worker(&redis, &pg, free_port());
    eventually(Duration::from_secs(30), "the first batches", || async {
        (rows(&pg) > 0).then_some(())
    })
    .await;

    // Hold the totals table so the next commit blocks: the worker is then
    // certainly in the middle of a batch when it dies.
    let (blocker, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=postgres dbname=votes", pg.port),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    blocker
        .batch_execute("BEGIN; LOCK TABLE totals IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    eventually(Duration::from_secs(30), "the worker blocked in a commit", || async {
        let waiting = pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'worker' AND wait_event_type = 'Lock'",
        );
        (waiting == "1").then_some(())
    })
    .await;
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("reaped");
    let stuck = pending(&redis);
    assert!(stuck > 0, "the killed worker left its batch pending");
    // The dead worker's statement may still commit once the lock is gone:
    // its entries are then stored but unacknowledged, the hardest case.
    blocker.batch_execute("COMMIT").await.expect("unlock");

    let http_port = free_port();
    let mut second = spawn_worker(&redis, &pg, http_port);
    eventually(Duration::from_secs(60), "the queue drained", || async {
        drained(&redis).then_some(())
    })
    .await;
    assert_latest_votes(&pg, &expected);
    let (totals, recount) = totals_and_recount(&pg);
    assert_eq!(totals, recount, "no vote counted twice");
    let metrics = reqwest::get(format!("http://127.0.0.1:{http_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let reclaimed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("swarmvote_worker_reclaimed_total "))
        .and_then(|v| v.parse::<i64>().ok())
        .expect("reclaimed metric");
    assert!(
        reclaimed >= stuck,
        "the dead worker's {stuck} entries were claimed ({reclaimed})"
    );

    // SIGTERM: a clean exit, nothing left pending.
    Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .expect("kill");
    let code = tokio::task::spawn_blocking(move || second.0.wait().expect("wait"))
        .await
        .expect("join");
    assert!(code.success(), "graceful exit: {code:?}");
    assert_eq!(pending(&redis), 0);
}

#[tokio::test]
async fn starts_before_its_dependencies_and_waits_for_them() {
    let mut redis = RedisServer::start();
    let mut pg = Postgres::start();
    redis.stop();
    pg.stop();
    let http_port = free_port();
    let mut worker = spawn_worker(&redis, &pg, http_port);
    eventually(Duration::from_secs(10), "health answering", || async {
        (status(http_port, "/healthz").await == Some(200)).then_some(())
    })
    .await;
    assert_eq!(status(http_port, "/readyz").await, Some(503));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        worker.0.try_wait().expect("status").is_none(),
        "still running without its dependencies"
    );

    pg.start_again();
    eventually(
        Duration::from_secs(30),
        "the schema, created while Redis is still down",
        || async { has_schema(&pg).then_some(()) },
    )
    .await;
    redis.restart();
    eventually(Duration::from_secs(30), "ready", || async {
        (status(http_port, "/readyz").await == Some(200)).then_some(())
    })
    .await;
    let expected = push_load(&redis, 50, 2);
    eventually(Duration::from_secs(30), "votes stored", || async {
        drained(&redis).then_some(())
    })
    .await;
    assert_latest_votes(&pg, &expected);
    drop(worker);
}

#[tokio::test]
async fn invalid_configuration_names_every_bad_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("WORKER_BATCH_SIZE", "lots")
        .env("POSTGRESQL_PASSWORD_FILE", "/nonexistent/secret")
        .env("REDIS_PORT", "99999")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "WORKER_BATCH_SIZE",
        "POSTGRESQL_PASSWORD_FILE",
        "REDIS_PORT",
    ] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}
