//! The vote service: a page and an API that put votes on the queue and
//! acknowledge them only once they are safe (see [`recorder`]).

pub mod config;
pub mod cookies;
pub mod metrics;
pub mod page;
pub mod recorder;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use common::http::{ops_router, Readiness, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;

/// How often readiness pings Redis when no vote did so.
const READINESS_INTERVAL: Duration = Duration::from_secs(1);

/// Serves the vote service on `listener` until `shutdown` fires.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = metrics::VoteMetrics::new();
    let recorder = recorder::Recorder::new(
        config.redis.clone(),
        config.min_replicas,
        config.wait_timeout,
        metrics.clone(),
    );
    let readiness = Readiness::new(&["redis"]);
    tokio::spawn(watch_redis(
        recorder.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let state = Arc::new(web::AppState {
        labels: config.labels.clone(),
        host: common::html::hostname(),
        recorder,
        metrics: metrics.clone(),
    });
    let app = web::router(state).merge(ops_router(readiness, metrics.registry.clone()));
    tracing::info!(addr = %listener.local_addr()?, "vote listening");
    common::http::serve(listener, app, shutdown).await?;
    Ok(())
}

/// Keeps `/readyz` true to Redis's state even when no votes arrive.
async fn watch_redis(recorder: recorder::Recorder, readiness: Readiness, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        let up = recorder.ping().await.is_ok();
        readiness.set("redis", up);
        tokio::select! {
            () = tokio::time::sleep(READINESS_INTERVAL) => {}
            () = shutdown.clone().wait() => break,
        }
    }
}
