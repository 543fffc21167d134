//! Serving HTTP: graceful shutdown, and the `/healthz`, `/readyz` and
//! `/metrics` endpoints every service has.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::IntoFuture;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How long open connections (slow clients, SSE streams) may hold a stop.
/// Swarm's default `stop_grace_period` is 10 s; stay well inside it.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Fires [`Shutdown`]; dropping it fires too, so a stopped test never hangs.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

/// A cheap, cloneable "are we stopping?" that tasks can wait on.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// A shutdown that fires on SIGTERM (what Swarm sends) or SIGINT.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down");
            trigger.fire();
        });
        Ok(shutdown)
    }

    /// True once fired, or once the trigger is gone (nobody can fire it, so
    /// nothing should wait for it).
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown has been requested (or its trigger dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Serves `router` until `shutdown`, then lets open requests finish for at
/// most [`DRAIN_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let signal = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(signal.wait());
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result,
        () = shutdown.clone().wait() => {}
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("connections still open after the drain timeout; closing them");
            Ok(())
        }
    }
}

/// Named dependencies and whether each is reachable right now.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<BTreeMap<&'static str, AtomicBool>>);

impl Readiness {
    pub fn new(dependencies: &[&'static str]) -> Self {
        Self(Arc::new(
            dependencies
                .iter()
                .map(|d| (*d, AtomicBool::new(false)))
                .collect(),
        ))
    }

    /// Records the state of one dependency, logging only the transitions so
    /// that an outage is one line, not one per retry.
    pub fn set(&self, dependency: &'static str, up: bool) {
        let Some(flag) = self.0.get(dependency) else {
            return;
        };
        if flag.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!(dependency, "dependency reachable");
            } else {
                tracing::warn!(dependency, "dependency unreachable");
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.0.values().all(|f| f.load(Ordering::Relaxed))
    }

    fn report(&self) -> String {
        self.0
            .iter()
            .map(|(name, f)| {
                let state = if f.load(Ordering::Relaxed) {
                    "up"
                } else {
                    "down"
                };
                format!("{name}: {state}\n")
            })
            .collect()
    }
}

/// `/healthz` (the process answers), `/readyz` (its dependencies answer) and
/// `/metrics`, to merge into each service's router.
pub fn ops_router(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let status = if readiness.is_ready() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, readiness.report())
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
}
