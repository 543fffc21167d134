//! The vote service: a page and an API that put votes on the queue and
//! acknowledge them only once they are safe (see [`recorder`]).

pub mod config;
pub mod cookies;
pub mod identity;
pub mod metrics;
pub mod origin;
pub mod page;
pub mod recorder;
pub mod sentinels;
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
    let observations = config
        .sentinels
        .clone()
        .map(|s| sentinels::watch(s, config.redis.clone(), shutdown.clone()));
    let recorder = recorder::Recorder::new(
        config.redis.clone(),
        config.min_replicas,
        config.wait_timeout,
        observations,
        metrics.clone(),
    );
    let readiness = Readiness::new(&["redis", "queue_has_room"]);
    tokio::spawn(watch_redis(
        recorder.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let key = config.cookie_key.clone().unwrap_or_else(|| {
        tracing::warn!("VOTE_COOKIE_KEY is not set: voter ids are signed with a random key that dies with this process, and other replicas refuse them");
        identity::CookieKey::random()
    });
    let state = Arc::new(web::AppState {
        key,
        labels: config.labels.clone(),
        host: common::html::hostname(),
        recorder,
        metrics: metrics.clone(),
    });
    let app = web::router(state).merge(ops_router(
        readiness,
        metrics.registry.clone(),
        shutdown.clone(),
    ));
    tracing::info!(addr = %listener.local_addr()?, "vote listening");
    common::http::serve(listener, app, shutdown).await?;
    Ok(())
}

/// Keeps `/readyz` true to Redis's state even when no votes arrive: whether
/// it answers, and whether its memory limit leaves room for votes.
async fn watch_redis(recorder: recorder::Recorder, readiness: Readiness, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        let memory = recorder.memory().await;
        readiness.set("redis", memory.is_ok());
        readiness.set("queue_has_room", memory.is_ok_and(|m| !m.full()));
        tokio::select! {
            () = tokio::time::sleep(READINESS_INTERVAL) => {}
            () = shutdown.clone().wait() => break,
        }
    }
}
