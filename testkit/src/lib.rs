//! Real servers for the tests: `redis-server` and PostgreSQL 15 processes on
//! free loopback ports, each in its own temporary directory, stopped when the
//! handle is dropped. Nothing here is a mock.

pub mod postgres;
mod redis;
pub mod service;

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use crate::postgres::Postgres;
pub use crate::redis::{RedisServer, Sentinels};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finds a server binary, with a hint on how to get it when it is missing.
fn binary(candidates: &[&str], package: &str) -> std::path::PathBuf {
    for c in candidates {
        let path = std::path::Path::new(c);
        if path.is_file() {
            return path.to_path_buf();
        }
    }
    panic!("none of {candidates:?} exists: install Debian's {package} (./test.sh does)");
}

/// Sends `signal` to a child and waits for it to exit.
fn stop_child(child: &mut std::process::Child, signal: &str) {
    if let Ok(None) = child.try_wait() {
        let _ = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
