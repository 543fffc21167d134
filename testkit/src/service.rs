//! Runs one of our services in-process on a free port, the way `main` would.

use std::future::Future;
use std::net::SocketAddr;

use common::http::{Shutdown, ShutdownTrigger};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A service started by [`spawn`]; [`Running::stop`] shuts it down as
/// SIGTERM would and returns how it ended.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    trigger: ShutdownTrigger,
    handle: JoinHandle<anyhow::Result<()>>,
}

/// Binds 127.0.0.1:0 and runs `start(listener, shutdown)` in a task.
pub async fn spawn<F, Fut>(start: F) -> Running
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (trigger, shutdown) = Shutdown::new();
    let handle = tokio::spawn(start(listener, shutdown));
    Running {
        addr,
        trigger,
        handle,
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Fires the shutdown and waits for the service to return.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.fire();
        self.handle.await?
    }
}

/// An environment from pairs, for the services' `Config::from_env`.
pub fn env(pairs: &[(&str, &str)]) -> common::config::Env {
    common::config::Env::from_pairs(pairs.iter().copied())
}
