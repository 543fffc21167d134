//! The one task per process that reads the tally from PostgreSQL.
//!
//! Viewers never query the database: they read the last snapshot from memory
//! (`/api/results`) or wait for the next one (`/events`). So the database sees
//! one two-row read per poll interval per replica, whether nobody or ten
//! thousand people are watching.

use std::time::Duration;

use anyhow::Context;
use common::backoff::Backoff;
use common::db::PgConfig;
use common::http::{Readiness, Shutdown};
use common::schema::{read_counts, Counts};
use tokio::time::MissedTickBehavior;
use tokio_postgres::Client;

use crate::config::Labels;
use crate::metrics::ResultMetrics;
use crate::snapshot::{Snapshot, TallySender};

/// Readiness dependency: the last read of the tally succeeded.
pub const POSTGRES: &str = "postgres";
/// Readiness dependency: there is a tally to show. Once set it stays set,
/// because the last snapshot keeps being served through a database outage.
pub const SNAPSHOT: &str = "snapshot";

/// The application name the poller's connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "result";

/// What one step did, for tests that drive the poller by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// The counts differ from the last snapshot; a new one was published.
    Changed,
    /// Same counts as before; viewers were not woken.
    Unchanged,
}

/// Reads the tally and publishes it when it changes.
#[derive(Debug)]
pub struct Poller {
    postgres: PgConfig,
    labels: Labels,
    /// One connection, opened lazily and dropped on any error: after a
    /// restart or failover its server may be gone or read-only, and a fresh
    /// connection resolves the host name again.
    client: Option<Client>,
    tally: TallySender,
    readiness: Readiness,
    metrics: ResultMetrics,
}

impl Poller {
    pub fn new(
        postgres: PgConfig,
        labels: Labels,
        tally: TallySender,
        readiness: Readiness,
        metrics: ResultMetrics,
    ) -> Self {
        Self {
            postgres,
            labels,
            client: None,
            tally,
            readiness,
            metrics,
        }
    }

    /// One tick: connect if needed, read the counts, publish them if they
    /// changed. On error the connection is dropped and readiness goes down;
    /// the caller decides how long to wait before the next step.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn step(&mut self) -> anyhow::Result<PollOutcome> {
        match self.read().await {
            Ok(counts) => {
                self.readiness.set(POSTGRES, true);
                Ok(self.publish(counts))
            }
            Err(e) => {
                self.client = None;
                self.metrics.tally_read_errors.inc();
                self.readiness.set(POSTGRES, false);
                Err(e)
            }
        }
    }

    async fn read(&mut self) -> anyhow::Result<Counts> {
        let client = match &mut self.client {
            Some(client) => client,
            slot @ None => slot.insert(self.postgres.connect(APPLICATION_NAME).await?),
        };
        self.metrics.tally_reads.inc();
        let _timer = self.metrics.tally_read_seconds.start_timer();
        // The timeout matters when the server vanishes without closing the
        // socket (a partitioned node): the query would otherwise wait for TCP
        // keepalives, and the page would silently stop updating.
        tokio::time::timeout(self.postgres.timeout, read_counts(client))
            .await
            .context("timed out reading totals")?
    }

    fn publish(&self, counts: Counts) -> PollOutcome {
        let unchanged = self
            .tally
            .borrow()
            .as_ref()
            .is_some_and(|current| current.counts == counts);
        if unchanged {
            return PollOutcome::Unchanged;
        }
        // Only this task writes the channel, so nothing can slip in between
        // the comparison above and the send.
        self.tally
            .send_replace(Some(Snapshot::new(&self.labels, counts)));
        self.metrics.tally_updates.inc();
        self.readiness.set(SNAPSHOT, true);
        tracing::debug!(a = counts.a, b = counts.b, "tally changed");
        PollOutcome::Changed
    }

    /// Steps every `interval` until `shutdown`, backing off after failures.
    /// Never returns early: a database that is down, restarting, failing over
    /// or not yet migrated is waited for, not given up on.
    pub async fn run(mut self, interval: Duration, shutdown: Shutdown) {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(interval);
        // After a slow read, wait a full interval rather than firing the
        // missed ticks back to back at a database that is already slow.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut backoff = Backoff::default();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = &mut stop => break,
            }
            // A step can wait up to the database timeout; do not let it hold
            // up a shutdown.
            let outcome = tokio::select! {
                outcome = self.step() => outcome,
                () = &mut stop => break,
            };
            if let Err(e) = outcome {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "could not read the tally; retrying",
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut stop => break,
                }
            } else {
                backoff.reset();
            }
        }
        tracing::info!("tally poller stopped");
    }
}
