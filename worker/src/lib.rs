//! The worker: moves votes from the Redis stream into PostgreSQL in
//! batches, acknowledging entries only after their commit.

pub mod config;
pub mod metrics;
pub mod store;
pub mod stream;
pub mod worker;

use common::http::{ops_router, Readiness, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use worker::{Outcome, Worker};

/// The dependencies `/readyz` reports on.
pub const DEPENDENCIES: &[&str] = &["redis", "postgres"];

/// Runs the worker and its `/healthz`, `/readyz`, `/metrics` server until
/// `shutdown`; the batch in progress is finished first.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = metrics::WorkerMetrics::new();
    let readiness = Readiness::new(DEPENDENCIES);
    let ops = ops_router(
        readiness.clone(),
        metrics.registry.clone(),
        shutdown.clone(),
    );
    tracing::info!(addr = %listener.local_addr()?, "worker health and metrics listening");
    let server = tokio::spawn(common::http::serve(listener, ops, shutdown.clone()));
    Worker::new(&config, metrics, readiness).run(shutdown).await;
    server.await??;
    Ok(())
}
