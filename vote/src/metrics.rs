//! What the vote service counts.

use common::metrics::{latency_buckets, Metrics};
use prometheus::{Histogram, IntCounterVec, IntGauge};

#[derive(Debug, Clone)]
pub struct VoteMetrics {
    pub registry: Metrics,
    /// Votes acknowledged to the voter, by option.
    pub accepted: IntCounterVec,
    /// Requests answered without recording, by reason (bad input, Redis down…).
    pub rejected: IntCounterVec,
    /// Time from request to acknowledgement, replication included.
    pub record_seconds: Histogram,
    /// How many votes each shared `WAIT` confirmed at once.
    pub wait_batch_size: Histogram,
    /// Replicas the last `WAIT` asked for (with Sentinels: every replica
    /// that could be promoted).
    pub replicas_required: IntGauge,
}

impl VoteMetrics {
    pub fn new() -> VoteMetrics {
        let registry = Metrics::new("vote");
        VoteMetrics {
            accepted: registry.counter_vec(
                "votes_accepted_total",
                "Votes acknowledged",
                &["option"],
            ),
            rejected: registry.counter_vec(
                "votes_rejected_total",
                "Vote requests answered without recording the vote",
                &["reason"],
            ),
            record_seconds: registry.histogram(
                "record_seconds",
                "Seconds from request to acknowledgement",
                latency_buckets(),
            ),
            wait_batch_size: registry.histogram(
                "wait_batch_size",
                "Votes confirmed by one shared WAIT",
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0],
            ),
            replicas_required: registry.gauge(
                "replicas_required",
                "Replicas the last WAIT asked to confirm a vote",
            ),
            registry,
        }
    }
}

impl Default for VoteMetrics {
    fn default() -> Self {
        Self::new()
    }
}
