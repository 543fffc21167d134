//! What every service's `main` does, once: logging, configuration, the
//! listener, signals. A service's `main` names its pieces and calls [`main`].

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Env;
use crate::http::Shutdown;

/// Reads the configuration (exit status 2, naming every bad variable, when
/// it is invalid: restarting will not fix it), binds `listen(&config)` and
/// runs `run` until SIGTERM or SIGINT, the stop announced `lame_duck`
/// before it fires (see [`crate::http::LAME_DUCK`]). Exit status 1 when
/// `run` fails.
///
/// `<binary> healthcheck` instead asks the running service's `/healthz` and
/// exits 0 or 1: the images' `HEALTHCHECK`, with no HTTP client installed.
pub async fn main<C, F, Fut>(
    service: &'static str,
    lame_duck: Duration,
    read: impl FnOnce(&mut Env) -> C,
    listen: impl FnOnce(&C) -> SocketAddr,
    run: F,
) -> ExitCode
where
    F: FnOnce(C, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let checking = std::env::args().nth(1).is_some_and(|a| a == "healthcheck");
    if !checking {
        crate::telemetry::init(service);
    }
    let mut env = Env::from_process();
    let config = read(&mut env);
    if let Err(e) = env.finish() {
        eprintln!("{service}: {e}");
        return ExitCode::from(2);
    }
    let addr = listen(&config);
    if checking {
        return match healthcheck(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{service}: unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("while binding LISTEN_ADDR {addr}"))?;
        let shutdown =
            Shutdown::on_signals(lame_duck).context("while installing signal handlers")?;
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

/// Asks `GET /healthz` of the service listening on `addr` (on loopback when
/// it listens on every address) and expects a 200.
pub fn healthcheck(addr: SocketAddr) -> anyhow::Result<()> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .with_context(|| format!("cannot connect to {target}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).context("no answer")?;
    let status = String::from_utf8_lossy(&head[9..12]).into_owned();
    anyhow::ensure!(status == "200", "/healthz answered {status}");
    Ok(())
}
