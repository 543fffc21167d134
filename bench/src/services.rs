//! What the benchmarks run against: one `redis-server` and one PostgreSQL 15
//! (started by testkit, as the tests do), and the release binaries of vote,
//! worker and result, each a separate process configured only through its
//! environment, as in the stack.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use testkit::{Postgres, RedisServer};
use tokio_postgres::{Client, NoTls};

use crate::procs::{PidLog, Proc};

/// How long a service may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared Redis and PostgreSQL servers, stopped when dropped.
#[derive(Debug)]
pub struct Infra {
    pub redis: RedisServer,
    pub pg: Postgres,
    /// Process ids of `redis-server` and of PostgreSQL's postmaster, for
    /// their CPU time (0 if unknown).
    pub redis_pid: u32,
    pub pg_pid: u32,
}

impl Infra {
    /// Starts both servers and records their ids for `run.sh`'s trap.
    pub async fn start(pids: &PidLog) -> anyhow::Result<Infra> {
        // testkit blocks (it is written for test setup): keep the runtime's
        // other tasks running meanwhile.
        let (redis, pg) = tokio::task::block_in_place(|| (RedisServer::start(), Postgres::start()));
        let mut infra = Infra {
            redis,
            pg,
            redis_pid: 0,
            pg_pid: 0,
        };
        let mut conn = infra.redis_conn().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        if let Some(pid) = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
        {
            pids.record(pid, "redis-server")?;
            infra.redis_pid = pid;
        }
        // AOF stays on (as in the stack), but an automatic rewrite is a fork
        // and a full copy in the middle of a timed run on two cores: noise.
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("auto-aof-rewrite-percentage")
            .arg("0")
            .query_async(&mut conn)
            .await?;
        let admin = infra.pg_client("postgres").await?;
        let backend: i32 = admin
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        // A backend's parent is the postmaster.
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{backend}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|p| p.trim().parse().ok())
            })
        {
            pids.record(ppid, "postgres")?;
            infra.pg_pid = ppid;
        }
        Ok(infra)
    }

    /// A connection whose commands may take long (big pipelines).
    pub async fn redis_conn(&self) -> anyhow::Result<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        Ok(self
            .redis
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// Empties Redis: no stream, no group.
    pub async fn flush_redis(&self) -> anyhow::Result<()> {
        let mut conn = self.redis_conn().await?;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
        Ok(())
    }

    /// A superuser connection to `database` on the bench's server.
    pub async fn pg_client(&self, database: &str) -> anyhow::Result<Client> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.pg.port)
            .user("postgres")
            .dbname(database)
            .application_name("bench")
            .connect_timeout(Duration::from_secs(5));
        let (client, connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("while connecting to database {database}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A new, empty database (the services migrate it themselves).
    pub async fn create_db(&self, name: &str) -> anyhow::Result<()> {
        let admin = self.pg_client("postgres").await?;
        // Two calls: several statements in one message are one transaction,
        // and DROP/CREATE DATABASE refuse to run inside one.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("while dropping database {name}"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("while creating database {name}"))?;
        Ok(())
    }

    pub async fn drop_db(&self, name: &str) -> anyhow::Result<()> {
        let admin = self.pg_client("postgres").await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("while dropping database {name}"))?;
        Ok(())
    }

    /// Writes dirty pages out now, so that no checkpoint falls inside a
    /// timed section of one run and not of another.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        self.pg_client("postgres")
            .await?
            .batch_execute("CHECKPOINT")
            .await?;
        Ok(())
    }
}

/// One of the three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vote,
    Worker,
    Result,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Vote, Kind::Worker, Kind::Result];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Vote => "vote",
            Kind::Worker => "worker",
            Kind::Result => "result",
        }
    }
}

/// Where the release binaries are, and where their logs go.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub pids: PidLog,
}

/// A running service and the address of its HTTP server.
#[derive(Debug)]
pub struct Service {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Launcher {
    /// Starts `kind` on a free loopback port with only the variables given
    /// (plus the ones every run needs), so nothing leaks in from the shell.
    /// `tag` tells the logs of several runs apart.
    pub fn start(
        &self,
        kind: Kind,
        tag: &str,
        infra: &Infra,
        database: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let mut cmd = Command::new(self.bin_dir.join(kind.name()));
        cmd.env_clear()
            .env("LISTEN_ADDR", addr.to_string())
            .env("LOG_LEVEL", "warn")
            .env("LOG_FORMAT", "text")
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", infra.redis.port.to_string())
            .env("POSTGRESQL_HOST", "127.0.0.1")
            .env("POSTGRESQL_PORT", infra.pg.port.to_string())
            .env("POSTGRESQL_USERNAME", "postgres")
            .env("POSTGRESQL_DATABASE", database);
        for (key, value) in extra {
            cmd.env(key, value);
        }
        let log = self.log_dir.join(format!("{}-{tag}.log", kind.name()));
        let proc = Proc::spawn(kind.name(), cmd, &log, &self.pids)?;
        Ok(Service { proc, addr })
    }
}

impl Service {
    /// Waits until `/readyz` answers 200, failing early if the process dies.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.proc.ensure_running()?;
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready after {READY_TIMEOUT:?}; its log ends with:\n{}",
                    self.proc.name(),
                    self.proc.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The directory of the running executable: `target/release`, where
/// `cargo build --release` put the services too.
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("while locating the bench binary")?;
    Ok(exe
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}
