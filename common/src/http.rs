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

/// How long vote and result keep serving after SIGTERM, with `/healthz`
/// answering 503, before they stop taking requests. Traefik reads Swarm's
/// tasks every second and checks health every 2 s: by then it sends them
/// nothing, so no request meets a closed listener, or a keep-alive
/// connection closed under it.
pub const LAME_DUCK: Duration = Duration::from_secs(3);

/// Fires [`Shutdown`]; dropping it fires too, so a stopped test never hangs.
#[derive(Debug)]
pub struct ShutdownTrigger {
    fired: watch::Sender<bool>,
    announced: Arc<AtomicBool>,
}

impl ShutdownTrigger {
    /// Says a stop is coming: `/healthz` answers 503 from now on, and
    /// everything else goes on until [`ShutdownTrigger::fire`].
    pub fn announce(&self) {
        self.announced.store(true, Ordering::Relaxed);
    }

    pub fn fire(&self) {
        self.announce();
        self.fired.send_replace(true);
    }
}

/// A cheap, cloneable "are we stopping?" that tasks can wait on.
#[derive(Debug, Clone)]
pub struct Shutdown {
    fired: watch::Receiver<bool>,
    announced: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        let announced = Arc::new(AtomicBool::new(false));
        (
            ShutdownTrigger {
                fired: tx,
                announced: announced.clone(),
            },
            Shutdown {
                fired: rx,
                announced,
            },
        )
    }

    /// A shutdown that fires on SIGTERM (what Swarm sends) or SIGINT, after
    /// `lame_duck` announced (a second signal cuts it short).
    pub fn on_signals(lame_duck: Duration) -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if !lame_duck.is_zero() {
                trigger.announce();
                tracing::info!(
                    signal = name,
                    lame_duck_ms = lame_duck.as_millis() as u64,
                    "stopping: /healthz answers 503 while the proxies stop sending requests"
                );
                tokio::select! {
                    () = tokio::time::sleep(lame_duck) => {}
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            tracing::info!(signal = name, "shutting down");
            trigger.fire();
        });
        Ok(shutdown)
    }

    /// True once fired, or once the trigger is gone (nobody can fire it, so
    /// nothing should wait for it).
    pub fn is_triggered(&self) -> bool {
        *self.fired.borrow() || self.fired.has_changed().is_err()
    }

    /// True once a stop was announced or fired: the service should no
    /// longer be sent requests.
    pub fn is_stopping(&self) -> bool {
        self.announced.load(Ordering::Relaxed) || self.is_triggered()
    }

    /// Resolves once shutdown has been requested (or its trigger dropped).
    pub async fn wait(mut self) {
        let _ = self.fired.wait_for(|stop| *stop).await;
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

/// `/healthz` (the process answers and is not stopping), `/readyz` (its
/// dependencies answer) and `/metrics`, to merge into each service's router.
pub fn ops_router(readiness: Readiness, metrics: Metrics, shutdown: Shutdown) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let stopping = shutdown.is_stopping();
                async move {
                    if stopping {
                        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
                    } else {
                        (StatusCode::OK, "ok\n")
                    }
                }
            }),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the images' health check says of `router`'s `/healthz`.
    async fn health_check(router: Router) -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        tokio::task::spawn_blocking(move || crate::service::healthcheck(addr))
            .await
            .expect("the check ran")
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn healthz_answers_503_from_the_announcement_on() {
        let (trigger, shutdown) = Shutdown::new();
        let router = ops_router(Readiness::new(&[]), Metrics::new("test"), shutdown.clone());
        assert_eq!(health_check(router.clone()).await, Ok(()));

        trigger.announce();
        assert!(shutdown.is_stopping());
        assert!(!shutdown.is_triggered(), "announcing is not firing");
        assert_eq!(
            health_check(router).await,
            Err("/healthz answered 503".to_owned())
        );
    }

    #[test]
    fn firing_also_announces() {
        let (trigger, shutdown) = Shutdown::new();
        assert!(!shutdown.is_stopping());
        trigger.fire();
        assert!(shutdown.is_stopping() && shutdown.is_triggered());
    }
}
