//! Puts votes on the queue, and says "recorded" only when that is true.
//!
//! A vote is acknowledged after `XADD` succeeded on the primary and, when
//! `min_replicas > 0`, after a `WAIT` issued *later on the same connection*
//! reports that many replicas. `WAIT` covers every earlier write of its
//! connection, so concurrent requests share one: each request hands its
//! connection to the [`Replication`] task, which sends one `WAIT` for all the
//! requests that queued up while the previous one was in flight (group
//! commit). Replication then costs one round trip per burst, not per vote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::queue::{self, EntryId};
use common::redis_conn::RedisConfig;
use common::sentinel::{self, Verdict};
use common::{Choice, VoterId};
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use crate::identity::LegacyLookup;
use crate::metrics::VoteMetrics;
use crate::sentinels::{Observation, MAX_AGE};

/// The Sentinels' latest word, from [`crate::sentinels::watch`].
pub type Observations = watch::Receiver<Option<Arc<Observation>>>;

/// How long a vote the Sentinels' word does not allow waits for a newer word
/// that does, before it is refused (see `Replication::replicas_to_wait_for`).
/// 1 s was too short: while a PostgreSQL failover loaded CI's two cores, two
/// of the three Sentinels missed every poll for over a second and a vote was
/// refused. With the `WAIT` (1 s by default) it stays well under a client's
/// usual 5 s timeout.
const VERDICT_GRACE: Duration = Duration::from_millis(2500);

/// After a failed connect, fail fast for this long instead of letting every
/// request wait out its own connect timeout against a dead host.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

/// Why a vote was not acknowledged. Each is answered with 503: nothing is
/// claimed, and trying again is the right thing for the voter to do.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the vote queue (Redis) is unreachable")]
    Unreachable(#[source] redis::RedisError),
    #[error("the vote queue (Redis) refused the vote")]
    Refused(#[source] redis::RedisError),
    #[error("only {acked} of {wanted} required replicas confirmed the vote in time")]
    NotReplicated { acked: i64, wanted: u32 },
    #[error("the vote queue (Redis) is full: its memory limit is reached")]
    QueueFull(#[source] redis::RedisError),
    #[error("not safe to acknowledge: {0}")]
    Unsafe(String),
    #[error("the voter ids from before signing are still being loaded by a worker")]
    LegacyNotLoaded,
}

impl RecordError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RecordError::Unreachable(_) => "redis_unreachable",
            RecordError::Refused(_) => "redis_refused",
            RecordError::NotReplicated { .. } => "not_replicated",
            RecordError::QueueFull(_) => "queue_full",
            RecordError::Unsafe(_) => "no_agreed_primary",
            RecordError::LegacyNotLoaded => "legacy_voters_not_loaded",
        }
    }
}

/// One connection with a generation number, so a failure on an old
/// connection does not throw away a new one.
#[derive(Clone)]
struct Current {
    generation: u64,
    conn: MultiplexedConnection,
    /// The `run_id` of the node process this connection reached, asked
    /// once at connect when Sentinels are configured (HAProxy keeps a TCP
    /// connection on one node for its whole life). The Sentinels' word says
    /// which node that is ([`sentinel::name_of`]).
    run_id: Option<String>,
}

/// State of connecting, guarded by an async lock so that one request
/// connects while the others wait for its result instead of stampeding.
#[derive(Default)]
struct Connecting {
    generation: u64,
    last_failure: Option<Instant>,
}

/// Shared by every request handler; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    redis: Arc<RedisConfig>,
    /// The live connection. A plain mutex held only to clone or replace it:
    /// every request reads it, so it must not cost an await.
    current: Arc<std::sync::Mutex<Option<Current>>>,
    connecting: Arc<Mutex<Connecting>>,
    response_timeout: Duration,
    replication: Option<mpsc::UnboundedSender<Waiter>>,
    /// Whether connections must learn which node they reached.
    sentinels: bool,
    metrics: VoteMetrics,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("redis", &self.redis)
            .finish()
    }
}

impl Recorder {
    /// Starts the shared `WAIT` task when replicas are required: a fixed
    /// `min_replicas`, or, with `observations`, as the Sentinels' word
    /// decides (never fewer than `min_replicas`).
    pub fn new(
        redis: RedisConfig,
        min_replicas: u32,
        wait_timeout: Duration,
        observations: Option<Observations>,
        metrics: VoteMetrics,
    ) -> Recorder {
        let sentinels = observations.is_some();
        let replication = (min_replicas > 0 || sentinels).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = Replication {
                min_replicas,
                wait_timeout,
                observations,
                metrics: metrics.clone(),
            };
            tokio::spawn(task.run(rx));
            tx
        });
        Recorder {
            redis: Arc::new(redis),
            current: Arc::default(),
            connecting: Arc::default(),
            // A WAIT may block its connection for the whole wait timeout.
            response_timeout: wait_timeout + Duration::from_secs(2),
            replication,
            sentinels,
            metrics,
        }
    }

    /// Queues a vote and waits until it is safe to acknowledge.
    ///
    /// One retry on a fresh connection covers the common failover case: the
    /// old connection reached a node that was demoted (`READONLY`) or died,
    /// and a new connection through HAProxy reaches the new primary.
    #[tracing::instrument(level = "debug", skip(self), fields(voter = ?voter))]
    pub async fn record(&self, voter: &VoterId, choice: Choice) -> Result<EntryId, RecordError> {
        let started = Instant::now();
        let mut attempt = 0;
        let (id, current) = loop {
            attempt += 1;
            let current = self.connection().await?;
            let mut conn = current.conn.clone();
            let result: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(queue::STREAM)
                .arg("*")
                .arg(&queue::encode(voter, choice)[..])
                .query_async(&mut conn)
                .await;
            match result {
                Ok(id) => break (id, current),
                Err(e) if e.code() == Some("OOM") => return Err(RecordError::QueueFull(e)),
                Err(e) => {
                    self.discard(current.generation);
                    let retry = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_timeout()
                        || e.code() == Some("READONLY");
                    if attempt < 2 && retry {
                        tracing::info!(error = %e, "retrying the vote on a new connection");
                        continue;
                    }
                    return Err(if retry || e.is_connection_refusal() {
                        RecordError::Unreachable(e)
                    } else {
                        RecordError::Refused(e)
                    });
                }
            }
        };
        if let Some(replication) = &self.replication {
            let (done, confirmed) = oneshot::channel();
            let waiter = Waiter {
                current: current.clone(),
                done,
            };
            if replication.send(waiter).is_err() {
                return Err(RecordError::NotReplicated {
                    acked: 0,
                    wanted: 1,
                });
            }
            let outcome = confirmed.await.unwrap_or(Err(RecordError::NotReplicated {
                acked: 0,
                wanted: 1,
            }));
            // A connection on the wrong node, or broken, is not used again:
            // the next one goes through HAProxy to the node it lets in now.
            if let Err(RecordError::Unreachable(_) | RecordError::Unsafe(_)) = &outcome {
                self.discard(current.generation);
            }
            outcome?;
        }
        self.metrics
            .record_seconds
            .observe(started.elapsed().as_secs_f64());
        id.parse().map_err(|_| {
            RecordError::Refused(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "XADD returned an unexpected id",
            )))
        })
    }

    /// Whether `voter`, a bare id from before ids were signed, voted then
    /// (see [`crate::identity`]).
    pub async fn legacy_voter(&self, voter: &VoterId) -> Result<LegacyLookup, RecordError> {
        let current = self.connection().await?;
        let mut conn = current.conn.clone();
        let result: redis::RedisResult<(bool, bool)> = redis::pipe()
            .cmd("SISMEMBER")
            .arg(queue::LEGACY_VOTERS)
            .arg(voter.as_str())
            .cmd("EXISTS")
            .arg(queue::LEGACY_VOTERS_LOADED)
            .query_async(&mut conn)
            .await;
        match result {
            Ok((true, _)) => Ok(LegacyLookup::Known),
            Ok((false, true)) => Ok(LegacyLookup::Unknown),
            Ok((false, false)) => Ok(LegacyLookup::NotLoaded),
            Err(e) => {
                self.discard(current.generation);
                Err(RecordError::Unreachable(e))
            }
        }
    }

    /// `INFO memory` through the same connection, for readiness.
    pub async fn memory(&self) -> Result<Memory, RecordError> {
        let current = self.connection().await?;
        let mut conn = current.conn.clone();
        let result: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await;
        match result {
            Ok(info) => Ok(Memory::from_info(&info)),
            Err(e) => {
                self.discard(current.generation);
                Err(RecordError::Unreachable(e))
            }
        }
    }

    /// The live connection, connecting (once, for all waiting requests) if
    /// there is none. The host name is resolved anew on each connect.
    async fn connection(&self) -> Result<Current, RecordError> {
        if let Some(current) = self.live() {
            return Ok(current);
        }
        let mut connecting = self.connecting.lock().await;
        // Another request may have connected while this one waited.
        if let Some(current) = self.live() {
            return Ok(current);
        }
        if connecting
            .last_failure
            .is_some_and(|t| t.elapsed() < RECONNECT_PAUSE)
        {
            return Err(RecordError::Unreachable(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis was unreachable moments ago",
            ))));
        }
        let connected = match self.redis.connect(self.response_timeout).await {
            Ok(mut conn) if self.sentinels => {
                node_run_id(&mut conn).await.map(|id| (conn, Some(id)))
            }
            Ok(conn) => Ok((conn, None)),
            Err(e) => Err(e),
        };
        match connected {
            Ok((conn, run_id)) => {
                connecting.generation += 1;
                connecting.last_failure = None;
                let current = Current {
                    generation: connecting.generation,
                    conn,
                    run_id,
                };
                *self.slot() = Some(current.clone());
                Ok(current)
            }
            Err(e) => {
                connecting.last_failure = Some(Instant::now());
                Err(RecordError::Unreachable(e))
            }
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self) -> Option<Current> {
        self.slot().clone()
    }

    /// Drops the connection of `generation` if it is still the current one.
    fn discard(&self, generation: u64) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|c| c.generation == generation) {
            *slot = None;
        }
    }
}

/// The `run_id` of the node process behind `conn` (`INFO server`: vote's
/// Redis user may not read the configuration).
async fn node_run_id(conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(sentinel::run_id(&info).unwrap_or_default().to_owned())
}

/// How full the primary's memory is (`INFO memory`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub used: u64,
    /// `maxmemory`; 0 when unlimited.
    pub limit: u64,
}

impl Memory {
    pub fn from_info(info: &str) -> Memory {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':')?.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            used: field("used_memory"),
            limit: field("maxmemory"),
        }
    }

    /// Redis refuses new votes (`OOM`, with `noeviction`) above the limit.
    pub fn full(&self) -> bool {
        self.limit > 0 && self.used >= self.limit
    }
}

/// A request whose `XADD` succeeded and that now waits for replication.
struct Waiter {
    current: Current,
    done: oneshot::Sender<Result<(), RecordError>>,
}

/// The task that issues the shared `WAIT`s.
struct Replication {
    min_replicas: u32,
    wait_timeout: Duration,
    observations: Option<Observations>,
    metrics: VoteMetrics,
}

impl Replication {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Waiter>) {
        while let Some(first) = rx.recv().await {
            // Everyone who queued while the last WAIT was in flight rides on
            // this one: their XADDs were answered before they queued, so
            // they precede this WAIT on their connection.
            let mut batch = vec![first];
            while let Ok(next) = rx.try_recv() {
                batch.push(next);
            }
            // Almost always one connection; after a reconnect, two.
            while !batch.is_empty() {
                let generation = batch[0].current.generation;
                let (same, rest): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .partition(|w| w.current.generation == generation);
                batch = rest;
                let outcome = self.confirm(&same[0].current).await;
                self.metrics.wait_batch_size.observe(same.len() as f64);
                for waiter in same {
                    let result = match &outcome {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.duplicate()),
                    };
                    let _ = waiter.done.send(result);
                }
            }
        }
    }

    /// Whether the writes on `current` so far are safe to acknowledge.
    async fn confirm(&self, current: &Current) -> Result<(), RecordError> {
        let wanted = self.replicas_to_wait_for(current).await?;
        self.metrics.replicas_required.set(i64::from(wanted));
        let timeout_ms = u64::try_from(self.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        let acked: i64 = redis::cmd("WAIT")
            .arg(wanted)
            .arg(timeout_ms)
            .query_async(&mut current.conn.clone())
            .await
            .map_err(RecordError::Unreachable)?;
        if acked < i64::from(wanted) {
            return Err(RecordError::NotReplicated { acked, wanted });
        }
        // A failover may have begun while the WAIT ran.
        match self.verdict(current) {
            Verdict::Wait { .. } => Ok(()),
            Verdict::Refuse(why) => Err(RecordError::Unsafe(why)),
        }
    }

    /// The replicas to wait for, by the rule. When the rule refuses, the
    /// next observations are given [`VERDICT_GRACE`] to allow the vote: a
    /// poll that came late because the machine stalled, or a Sentinel that
    /// missed one answer, must not fail votes. Only a fresh word is ever
    /// acted on, so this waits, it never relaxes the rule.
    async fn replicas_to_wait_for(&self, current: &Current) -> Result<u32, RecordError> {
        let deadline = tokio::time::Instant::now() + VERDICT_GRACE;
        let mut changes = self.observations.clone();
        loop {
            let why = match self.verdict(current) {
                Verdict::Wait { replicas } => return Ok(replicas),
                Verdict::Refuse(why) => why,
            };
            // A fresh word in which a majority names another node will not
            // change for this connection: waiting out the grace only held
            // every vote queued behind it (2.5 s per batch after a failover).
            let Some(changes) = changes.as_mut().filter(|_| !self.named_elsewhere(current)) else {
                return Err(RecordError::Unsafe(why));
            };
            if !matches!(
                tokio::time::timeout_at(deadline, changes.changed()).await,
                Ok(Ok(()))
            ) {
                return Err(RecordError::Unsafe(why));
            }
        }
    }

    /// Whether a fresh word has a majority of the Sentinels naming a node
    /// known not to be the one `current` writes to.
    fn named_elsewhere(&self, current: &Current) -> bool {
        let Some(observations) = &self.observations else {
            return false;
        };
        fresh(observations).is_some_and(|seen| {
            sentinel::elsewhere(
                &seen.sentinels,
                current.run_id.as_deref().unwrap_or_default(),
            )
        })
    }

    /// The rule applied to the latest observation, or the fixed count
    /// without Sentinels.
    fn verdict(&self, current: &Current) -> Verdict {
        let Some(observations) = &self.observations else {
            return Verdict::Wait {
                replicas: self.min_replicas,
            };
        };
        let Some(seen) = fresh(observations) else {
            return Verdict::Refuse(format!(
                "the Sentinels have not been heard for over {} ms",
                MAX_AGE.as_millis()
            ));
        };
        // What the node told the watch, if this connection is on the node
        // the watch reached; otherwise only its name, which the rule
        // refuses.
        let run_id = current.run_id.as_deref().unwrap_or_default();
        let unknown = sentinel::NodeReport {
            name: sentinel::name_of(&seen.sentinels, run_id)
                .unwrap_or_default()
                .to_owned(),
            run_id: run_id.to_owned(),
            ..sentinel::NodeReport::default()
        };
        let node = seen
            .primary
            .as_ref()
            .filter(|p| !run_id.is_empty() && p.run_id == run_id)
            .unwrap_or(&unknown);
        sentinel::decide(&seen.sentinels, node, self.min_replicas)
    }
}

/// The latest observation, if it was made within [`MAX_AGE`].
fn fresh(observations: &Observations) -> Option<Arc<Observation>> {
    observations
        .borrow()
        .clone()
        .filter(|o| o.at.elapsed() <= MAX_AGE)
}

impl RecordError {
    /// The same outcome for every waiter of one `WAIT`.
    fn duplicate(&self) -> RecordError {
        match self {
            RecordError::Unreachable(e) => RecordError::Unreachable(redis::RedisError::from((
                redis::ErrorKind::Io,
                "replication check failed",
                e.to_string(),
            ))),
            RecordError::Refused(e) => RecordError::Refused(redis::RedisError::from((
                redis::ErrorKind::Io,
                "replication check refused",
                e.to_string(),
            ))),
            RecordError::NotReplicated { acked, wanted } => RecordError::NotReplicated {
                acked: *acked,
                wanted: *wanted,
            },
            RecordError::QueueFull(e) => RecordError::QueueFull(redis::RedisError::from((
                redis::ErrorKind::Io,
                "queue full",
                e.to_string(),
            ))),
            RecordError::Unsafe(why) => RecordError::Unsafe(why.clone()),
            RecordError::LegacyNotLoaded => RecordError::LegacyNotLoaded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Memory;

    #[test]
    fn memory_is_full_at_the_limit_only() {
        let info = |used: u64, limit: u64| {
            format!(
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:1M\r\nmaxmemory:{limit}\r\n"
            )
        };
        assert_eq!(
            Memory::from_info(&info(5, 10)),
            Memory { used: 5, limit: 10 }
        );
        assert!(!Memory::from_info(&info(5, 10)).full());
        assert!(Memory::from_info(&info(10, 10)).full());
        assert!(!Memory::from_info(&info(10, 0)).full(), "0 is no limit");
        assert_eq!(Memory::from_info("garbage"), Memory::default());
    }
}
