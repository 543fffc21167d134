//! What the worker counts.

use common::metrics::{latency_buckets, Metrics};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    pub registry: Metrics,
    /// Valid entries committed to PostgreSQL (redeliveries included).
    pub entries_stored: IntCounter,
    /// Voter rows that changed (new voters and changed minds).
    pub votes_changed: IntCounter,
    /// Entries sent to the dead-letter stream, by reason.
    pub dead_lettered: IntCounterVec,
    /// Entries taken over from consumers presumed dead.
    pub reclaimed: IntCounter,
    /// Entries per batch.
    pub batch_size: Histogram,
    /// Seconds per batch commit.
    pub commit_seconds: Histogram,
    /// Failed steps, by stage (redis, postgres).
    pub errors: IntCounterVec,
    /// Entries waiting: not yet delivered plus delivered and not acknowledged.
    pub queue_depth: IntGauge,
}

impl WorkerMetrics {
    pub fn new() -> WorkerMetrics {
        let registry = Metrics::new("worker");
        WorkerMetrics {
            entries_stored: registry.counter("entries_stored_total", "Queue entries committed"),
            votes_changed: registry
                .counter("votes_changed_total", "Voter rows inserted or changed"),
            dead_lettered: registry.counter_vec(
                "dead_lettered_total",
                "Malformed entries moved to the dead-letter stream",
                &["reason"],
            ),
            reclaimed: registry.counter("reclaimed_total", "Entries claimed from dead consumers"),
            batch_size: registry.histogram(
                "batch_size",
                "Entries per batch",
                vec![
                    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                ],
            ),
            commit_seconds: registry.histogram(
                "commit_seconds",
                "Seconds per batch commit",
                latency_buckets(),
            ),
            errors: registry.counter_vec("errors_total", "Failed steps", &["stage"]),
            queue_depth: registry.gauge("queue_depth", "Entries not yet stored"),
            registry,
        }
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
