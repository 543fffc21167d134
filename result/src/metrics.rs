//! The result service's Prometheus metrics, served at `/metrics` with the
//! prefix `swarmvote_result_`.

use common::metrics::{latency_buckets, Metrics};
use prometheus::{Histogram, IntCounter, IntGauge};

/// Handles to every metric; cloning is cheap (each is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct ResultMetrics {
    pub registry: Metrics,
    /// Open `/events` streams: how many people are watching this replica.
    pub sse_clients: IntGauge,
    /// `/events` requests refused because `RESULT_MAX_STREAMS` were open.
    pub sse_refused: IntCounter,
    /// Reads of the tally attempted. Compared with the poll interval it shows
    /// that database load does not grow with the number of viewers.
    pub tally_reads: IntCounter,
    /// Ticks that failed: no connection, a timeout, or no `totals` table yet.
    pub tally_read_errors: IntCounter,
    /// Times the tally changed and a new snapshot went out to viewers.
    pub tally_updates: IntCounter,
    /// How long one read of the tally takes, connection excluded.
    pub tally_read_seconds: Histogram,
}

impl ResultMetrics {
    pub fn new() -> Self {
        let registry = Metrics::new("result");
        Self {
            sse_clients: registry.gauge("sse_clients", "Connected Server-Sent Events clients."),
            sse_refused: registry.counter(
                "sse_refused_total",
                "Event streams refused because the replica served its maximum.",
            ),
            tally_reads: registry.counter("tally_reads_total", "Reads of the tally attempted."),
            tally_read_errors: registry.counter(
                "tally_read_errors_total",
                "Poll ticks that failed to read the tally.",
            ),
            tally_updates: registry.counter(
                "tally_updates_total",
                "Changes of the tally published to viewers.",
            ),
            tally_read_seconds: registry.histogram(
                "tally_read_duration_seconds",
                "Time to read the tally from PostgreSQL.",
                latency_buckets(),
            ),
            registry,
        }
    }
}

impl Default for ResultMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one SSE client for as long as it lives: the gauge goes down when
/// the stream is dropped, whether the client left or the server is stopping.
#[derive(Debug)]
pub struct ClientGuard(IntGauge);

impl ClientGuard {
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_prefixed() {
        let metrics = ResultMetrics::new();
        metrics.tally_reads.inc();
        let guard = ClientGuard::new(&metrics.sse_clients);
        let text = metrics.registry.render();
        assert!(
            text.contains("swarmvote_result_tally_reads_total 1"),
            "{text}"
        );
        assert!(text.contains("swarmvote_result_sse_clients 1"), "{text}");
        assert!(text.contains("swarmvote_result_tally_read_duration_seconds_bucket"));
        drop(guard);
        assert_eq!(metrics.sse_clients.get(), 0);
    }
}
