//! A `redis-server` of our own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis_conn::RedisConfig;

/// A running `redis-server` with AOF on, in its own directory. Restarts
/// keep the port and the data, like a restarted container keeps its volume.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments, e.g. `["--replicaof", ...]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: crate::free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.launch();
        server
    }

    /// A replica of `primary`, started and caught up.
    pub fn start_replica_of(primary: &RedisServer) -> RedisServer {
        let port = primary.port.to_string();
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &port]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !replica
            .info("replication")
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "replica did not connect");
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    fn launch(&mut self) {
        let bin = crate::binary(&["/usr/bin/redis-server"], "redis-server");
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args([
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("redis-server starts"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Connection settings for the services under test.
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            password: common::config::Secret::new(""),
            connect_timeout: Duration::from_secs(2),
        }
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a valid url")
    }

    fn ping(&self) -> bool {
        self.client()
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// `INFO <section>` as text.
    pub fn info(&self, section: &str) -> String {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .and_then(|mut c| redis::cmd("INFO").arg(section).query::<String>(&mut c))
            .unwrap_or_default()
    }

    /// Runs one command synchronously (for test setup and inspection).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))?;
        cmd.query(&mut conn)
    }

    /// Runs a pipeline synchronously.
    pub fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))?;
        pipe.query(&mut conn)
    }

    /// Graceful stop (SIGTERM flushes the AOF), then start again.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Graceful stop; `restart` or drop afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::stop_child(&mut child, "-TERM");
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::stop_child(&mut child, "-KILL");
        }
    }
}
