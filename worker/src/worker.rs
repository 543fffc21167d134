//! The worker as a step function: each [`Worker::step`] moves at most one
//! batch from the stream to PostgreSQL. The loop in [`Worker::run`] only
//! sleeps, backs off and checks for shutdown between steps, so a stop never
//! interrupts a batch between its commit and its acknowledgement.

use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::http::{Readiness, Shutdown};
use common::queue;

use crate::config::Config;
use crate::metrics::WorkerMetrics;
use crate::store::Store;
use crate::stream::{RawEntry, Stream};

/// How often acknowledged entries are trimmed and the queue depth measured.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the group is cleared of consumers that stopped long ago.
const FORGET_INTERVAL: Duration = Duration::from_secs(600);
/// How often the set of voters from before signed ids is checked (and
/// loaded, when Redis lacks it: after the upgrade, or after losing its data).
const LEGACY_INTERVAL: Duration = Duration::from_secs(60);
/// Ids per page when loading that set.
const LEGACY_PAGE: usize = 5000;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A batch was handled: `entries` committed (voter rows `changed`),
    /// `dead` moved to the dead-letter stream.
    Batch {
        entries: usize,
        changed: u64,
        dead: usize,
    },
    /// Nothing was waiting.
    Idle,
}

#[derive(Debug)]
pub struct Worker {
    stream: Stream,
    store: Store,
    metrics: WorkerMetrics,
    readiness: Readiness,
    batch_size: usize,
    block: Duration,
    linger: Duration,
    /// When the next read of new entries may start: `linger` after the last
    /// one, when that one was not full.
    gathered_at: Option<Instant>,
    claim_idle: Duration,
    /// Set after a failed step: this consumer's own pending entries are read
    /// again (from this id on) before anything new.
    recover_from: Option<String>,
    /// The next batch, read while the previous one was being committed, so
    /// that PostgreSQL is not idle while Redis is read. Its entries are
    /// already pending for this consumer.
    prefetched: Option<Vec<RawEntry>>,
    claim_cursor: String,
    next_claim: Instant,
    next_maintenance: Instant,
    next_forget: Instant,
    next_legacy: Instant,
}

impl Worker {
    pub fn new(config: &Config, metrics: WorkerMetrics, readiness: Readiness) -> Worker {
        let now = Instant::now();
        Worker {
            stream: Stream::new(config.redis.clone(), config.consumer.clone(), config.block),
            store: Store::new(config.postgres.clone()),
            metrics,
            readiness,
            batch_size: config.batch_size,
            block: config.block,
            linger: config.linger,
            gathered_at: None,
            claim_idle: config.claim_idle,
            // A new consumer name has nothing pending, but a configured one
            // (WORKER_CONSUMER) may: read it first.
            recover_from: Some("0".to_owned()),
            prefetched: None,
            claim_cursor: "0-0".to_owned(),
            next_claim: now,
            next_maintenance: now,
            next_forget: now + FORGET_INTERVAL,
            next_legacy: now,
        }
    }

    pub fn consumer(&self) -> &str {
        self.stream.consumer()
    }

    /// Moves at most one batch. On error nothing was acknowledged that was
    /// not committed; the entries stay pending and are read again.
    pub async fn step(&mut self) -> anyhow::Result<Outcome> {
        // First, so that it also runs while Redis is down: the first one
        // creates the schema, which result needs before any vote exists.
        if Instant::now() >= self.next_maintenance {
            self.maintain().await;
        }
        let batch = match self.next_batch().await {
            Ok(batch) => {
                self.readiness.set("redis", true);
                batch
            }
            Err(e) => return Err(self.failed("redis", e)),
        };
        if batch.is_empty() {
            return Ok(Outcome::Idle);
        }
        self.process(batch).await
    }

    /// Records a failed step so the next one starts with the leftovers.
    fn failed(&mut self, stage: &'static str, error: anyhow::Error) -> anyhow::Error {
        self.metrics.errors.with_label_values(&[stage]).inc();
        self.readiness.set(stage, false);
        self.recover_from = Some("0".to_owned());
        // A prefetched batch is pending for this consumer: recovery reads it again.
        self.prefetched = None;
        error
    }

    /// Leftovers of a failed step first, then entries of dead consumers
    /// (every `claim_idle / 2`), then new entries.
    async fn next_batch(&mut self) -> anyhow::Result<Vec<RawEntry>> {
        if let Some(batch) = self.prefetched.take() {
            return Ok(batch);
        }
        if let Some(after) = self.recover_from.take() {
            let batch = self
                .stream
                .read_own_pending(self.batch_size, &after)
                .await?;
            if let Some(last) = batch.last() {
                self.recover_from = Some(last.id.clone());
                return Ok(batch);
            }
        }
        if Instant::now() >= self.next_claim {
            let (cursor, batch) = self
                .stream
                .claim_idle(self.claim_idle, &self.claim_cursor, self.batch_size)
                .await?;
            if cursor == "0-0" {
                self.next_claim =
                    Instant::now() + (self.claim_idle / 2).max(Duration::from_millis(50));
            }
            self.claim_cursor = cursor;
            if !batch.is_empty() {
                self.metrics.reclaimed.inc_by(batch.len() as u64);
                tracing::info!(entries = batch.len(), "claimed entries of an idle consumer");
                return Ok(batch);
            }
        }
        if let Some(at) = self.gathered_at.take() {
            tokio::time::sleep_until(at.into()).await;
        }
        let started = Instant::now();
        let batch = self.stream.read_new(self.batch_size, self.block).await?;
        if !batch.is_empty() && batch.len() < self.batch_size {
            self.gathered_at = Some(started + self.linger);
        }
        Ok(batch)
    }

    async fn process(&mut self, batch: Vec<RawEntry>) -> anyhow::Result<Outcome> {
        let mut valid = Vec::with_capacity(batch.len());
        let mut ids = Vec::with_capacity(batch.len());
        let mut dead = 0;
        for raw in &batch {
            let Some(fields) = &raw.fields else {
                // Deleted from the stream while pending: nothing left to store.
                tracing::warn!(id = %raw.id, "pending entry no longer in the stream; acknowledging it");
                ids.push(raw.id.as_str());
                continue;
            };
            match queue::decode(&raw.id, fields) {
                Ok(entry) => {
                    valid.push(entry);
                    ids.push(raw.id.as_str());
                }
                Err(reason) => {
                    if let Err(e) = self.stream.dead_letter(raw, reason).await {
                        return Err(self.failed("redis", e));
                    }
                    dead += 1;
                    self.metrics
                        .dead_lettered
                        .with_label_values(&[reason.label()])
                        .inc();
                    tracing::warn!(id = %raw.id, reason = reason.label(), detail = %reason,
                        "malformed entry moved to {}", queue::DEAD_LETTER_STREAM);
                }
            }
        }
        let mut changed = 0;
        if !valid.is_empty() {
            let started = Instant::now();
            // A full batch suggests more is waiting: read it during the commit.
            let prefetch = batch.len() == self.batch_size && self.recover_from.is_none();
            let (committed, next) = tokio::join!(self.store.commit(&valid), async {
                if prefetch {
                    self.stream.read_available(self.batch_size).await.ok()
                } else {
                    None
                }
            });
            self.prefetched = next.filter(|b| !b.is_empty());
            match committed {
                Ok(n) => changed = n,
                Err(e) => return Err(self.failed("postgres", e)),
            }
            self.readiness.set("postgres", true);
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        // Only now, after the commit, may the entries leave the pending list.
        if let Err(e) = self.stream.ack(&ids).await {
            return Err(self.failed("redis", e));
        }
        self.metrics.batch_size.observe(batch.len() as f64);
        self.metrics.entries_stored.inc_by(valid.len() as u64);
        self.metrics.votes_changed.inc_by(changed);
        Ok(Outcome::Batch {
            entries: valid.len(),
            changed,
            dead,
        })
    }

    /// Trims acknowledged entries, measures the queue, checks PostgreSQL
    /// when idle. Failures here are logged, never fatal: the next step
    /// notices a real outage.
    pub async fn maintain(&mut self) {
        self.next_maintenance = Instant::now() + MAINTENANCE_INTERVAL;
        match self.stream.trim().await {
            Ok(depth) => self.metrics.queue_depth.set(depth),
            Err(e) => tracing::debug!(error = format!("{e:#}"), "trimming the stream failed"),
        }
        let up = self.store.ping().await.is_ok();
        self.readiness.set("postgres", up);
        if Instant::now() >= self.next_legacy {
            self.next_legacy = Instant::now() + LEGACY_INTERVAL;
            match self.load_legacy_voters().await {
                Ok(None) => {}
                Ok(Some(n)) => {
                    tracing::info!(voters = n, "loaded the voter ids from before signed ids")
                }
                Err(e) => {
                    // Until it is loaded, vote answers such voters 503: try again soon.
                    self.next_legacy = Instant::now() + MAINTENANCE_INTERVAL;
                    tracing::debug!(
                        error = format!("{e:#}"),
                        "loading the voter ids from before signed ids failed"
                    );
                }
            }
        }
        if Instant::now() >= self.next_forget {
            self.next_forget = Instant::now() + FORGET_INTERVAL;
            match self.stream.forget_idle_consumers().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(consumers = n, "removed consumers idle for an hour"),
                Err(e) => tracing::debug!(error = format!("{e:#}"), "cleaning consumers failed"),
            }
        }
    }

    /// Copies every voter id that may be held as an unsigned cookie (each
    /// stored voter, and each voter still queued) into the Redis set vote
    /// reads (see vote's `identity`), then marks the set complete. Does
    /// nothing when it is complete; `Some(n)` when it loaded it (`n` ids). Two
    /// workers loading at once add the same ids: harmless.
    pub async fn load_legacy_voters(&mut self) -> anyhow::Result<Option<usize>> {
        if self.stream.legacy_voters_loaded().await? {
            return Ok(None);
        }
        let mut after = String::new();
        loop {
            let ids = self
                .store
                .voter_ids_after(&after, LEGACY_PAGE as i64)
                .await?;
            let Some(last) = ids.last() else { break };
            after.clone_from(last);
            self.stream.add_legacy_voters(&ids).await?;
        }
        let mut from: Option<String> = None;
        loop {
            let (ids, last) = self
                .stream
                .queued_voters(from.as_deref(), LEGACY_PAGE)
                .await?;
            self.stream.add_legacy_voters(&ids).await?;
            match last {
                Some(id) => from = Some(id),
                None => break,
            }
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let loaded = self.stream.mark_legacy_voters_loaded(now_ms).await?;
        Ok(Some(loaded))
    }

    /// Steps until `shutdown`, backing off while a dependency is down. Never
    /// returns on a lost connection: it reconnects.
    pub async fn run(mut self, shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        tracing::info!(consumer = self.consumer(), "worker started");
        while !shutdown.is_triggered() {
            match self.step().await {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "step failed"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.clone().wait() => {}
                    }
                }
            }
        }
        tracing::info!(consumer = self.consumer(), "worker stopped");
    }
}
