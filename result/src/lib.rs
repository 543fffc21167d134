//! The result service: shows the live tally of the vote.
//!
//! One background task (the [`Poller`]) reads the two-row `totals` table every
//! poll interval and publishes a [`Snapshot`] when it changes. Everything
//! served over HTTP — the page, `/api/results`, the `/events` stream — comes
//! from that snapshot in memory, so the database load is one small query per
//! interval per replica, however many people are watching. The service only
//! reads: the worker owns the schema.
//!
//! The library owns the server; `main` only reads the configuration, binds
//! the listener and wires the shutdown signal, so tests can run the real
//! thing on port 0 and stop it at will.

mod config;
mod metrics;
mod page;
mod poller;
mod routes;
mod snapshot;
mod sse;

use std::sync::Arc;

use anyhow::Context;
use common::http::{Readiness, Shutdown};
use tokio::net::TcpListener;

pub use crate::config::{Config, Labels};
pub use crate::metrics::ResultMetrics;
pub use crate::poller::{PollOutcome, Poller, APPLICATION_NAME};
pub use crate::snapshot::{channel, Snapshot, TallyReceiver, TallySender};
pub use crate::sse::TALLY_EVENT;

/// Serves the result service on `listener` until `shutdown` fires, then
/// drains open requests (SSE streams end at once) and returns.
///
/// Fails only if the server cannot serve, or if the poller dies (a bug):
/// better to exit and be restarted than to show a frozen tally as current.
#[tracing::instrument(skip_all, fields(addr = ?listener.local_addr().ok()))]
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = ResultMetrics::new();
    let readiness = Readiness::new(&[poller::POSTGRES, poller::SNAPSHOT]);
    let (sender, tally) = snapshot::channel();
    let poller = Poller::new(
        config.postgres,
        config.labels.clone(),
        sender,
        readiness.clone(),
        metrics.clone(),
    );
    let mut polling = tokio::spawn(poller.run(config.poll_interval, shutdown.clone()));

    let state = routes::AppState {
        labels: Arc::new(config.labels),
        hostname: common::html::hostname().into(),
        tally,
        metrics,
        shutdown: shutdown.clone(),
        streams: Arc::new(tokio::sync::Semaphore::new(config.max_streams)),
    };
    let serving = common::http::serve(listener, routes::router(state, readiness), shutdown.clone());
    tokio::pin!(serving);
    tracing::info!("serving");

    let served = tokio::select! {
        served = &mut serving => served,
        stopped = &mut polling => {
            if !shutdown.is_triggered() {
                return Err(match stopped {
                    Err(e) => anyhow::Error::new(e).context("the tally poller panicked"),
                    Ok(()) => anyhow::anyhow!("the tally poller stopped on its own"),
                });
            }
            // The poller stops as soon as shutdown fires; the server is
            // still draining.
            serving.await
        }
    };
    // Normally already stopped by the same shutdown; if serving failed
    // instead, the poller must not outlive it.
    polling.abort();
    served.context("while serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}
