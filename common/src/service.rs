//! What every service's `main` does, once: logging, configuration, the
//! listener, signals. A service's `main` names its pieces and calls [`main`].

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Env;
use crate::http::Shutdown;

/// Reads the configuration (exit status 2, naming every bad variable, when
/// it is invalid: restarting will not fix it), binds `listen(&config)` and
/// runs `run` until SIGTERM or SIGINT. Exit status 1 when `run` fails.
pub async fn main<C, F, Fut>(
    service: &'static str,
    read: impl FnOnce(&mut Env) -> C,
    listen: impl FnOnce(&C) -> SocketAddr,
    run: F,
) -> ExitCode
where
    F: FnOnce(C, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init(service);
    let mut env = Env::from_process();
    let config = read(&mut env);
    if let Err(e) = env.finish() {
        eprintln!("{service}: {e}");
        return ExitCode::from(2);
    }
    let addr = listen(&config);
    let result = async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("while binding LISTEN_ADDR {addr}"))?;
        let shutdown = Shutdown::on_signals().context("while installing signal handlers")?;
        run(config, listener, shutdown).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{service} stopped");
            eprintln!("{service}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
