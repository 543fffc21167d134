//! A `redis-server` of our own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis_conn::RedisConfig;

/// A running `redis-server` with AOF on, in its own directory. Restarts
/// keep the port and the data, like a restarted container keeps its volume.
#[derive(Debug)]
pub struct RedisServer {
    /// The loopback address it listens on (127.0.0.1 unless given).
    pub host: String,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    /// Runs as a Sentinel from `sentinel.conf` in its directory.
    sentinel: bool,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments, e.g. `["--replicaof", ...]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_on("127.0.0.1", extra)
    }

    /// Starts on loopback address `host` (any of 127.0.0.0/8), so that
    /// several servers can be told apart by address, as Sentinel tells
    /// nodes apart by host name.
    pub fn start_on(host: &str, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            host: host.to_owned(),
            port: crate::free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            sentinel: false,
        };
        server.launch();
        server
    }

    /// A replica of `primary`, started and caught up.
    pub fn start_replica_of(primary: &RedisServer) -> RedisServer {
        let port = primary.port.to_string();
        let replica = Self::start_with(&["--replicaof", &primary.host, &port]);
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
        if self.sentinel {
            cmd.arg(self.dir.path().join("sentinel.conf"))
                .arg("--sentinel");
        }
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", &self.host]);
        if !self.sentinel {
            cmd.args(["--save", "", "--appendonly", "yes", "--dir"])
                .arg(self.dir.path());
        }
        cmd.args([
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ])
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
        format!("redis://{}:{}", self.host, self.port)
    }

    /// Connection settings for the services under test.
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            host: self.host.clone(),
            port: self.port,
            username: String::new(),
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

    /// Freezes the process (SIGSTOP), as `docker pause` freezes a node.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
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

/// Three Sentinels (`redis-server --sentinel`) watching `primary` as
/// `master`, quorum 2, declaring a silent node down after 1 s.
#[derive(Debug)]
pub struct Sentinels {
    pub master: String,
    pub servers: Vec<RedisServer>,
}

impl Sentinels {
    pub fn start(master: &str, primary: &RedisServer) -> Sentinels {
        let servers = (0..3)
            .map(|_| {
                let mut server = RedisServer {
                    host: "127.0.0.1".to_owned(),
                    port: crate::free_port(),
                    dir: tempfile::tempdir().expect("a temporary directory"),
                    child: None,
                    extra: Vec::new(),
                    sentinel: true,
                };
                std::fs::write(
                    server.dir.path().join("sentinel.conf"),
                    format!(
                        "sentinel monitor {master} {} {} 2\n\
                         sentinel down-after-milliseconds {master} 1000\n\
                         sentinel failover-timeout {master} 3000\n",
                        primary.host, primary.port
                    ),
                )
                .expect("write sentinel.conf");
                server.launch();
                server
            })
            .collect();
        Sentinels {
            master: master.to_owned(),
            servers,
        }
    }

    /// `host:port` of each, comma-separated, as `REDIS_SENTINELS` takes them.
    pub fn addresses(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("{}:{}", s.host, s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The host each Sentinel names primary.
    pub fn named(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| {
                s.query::<Vec<String>>(
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&self.master),
                )
                .ok()
                .and_then(|v| v.into_iter().next())
                .unwrap_or_default()
            })
            .collect()
    }

    /// How many replicas each Sentinel knows.
    pub fn replicas_known(&self) -> Vec<usize> {
        self.servers
            .iter()
            .map(|s| {
                s.query::<Vec<redis::Value>>(
                    redis::cmd("SENTINEL").arg("replicas").arg(&self.master),
                )
                .map(|v| v.len())
                .unwrap_or(0)
            })
            .collect()
    }
}
