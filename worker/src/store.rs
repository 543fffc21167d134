//! The PostgreSQL side of the worker: one statement per batch that stores
//! each voter's latest vote and adjusts the totals by exactly what changed.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use common::db::PgConfig;
use common::queue::VoteEntry;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

/// The whole batch in one statement, hence one transaction and one round
/// trip. A row is replaced only by an entry with a larger stream id, so
/// redelivered, reclaimed and out-of-order batches never undo a newer vote.
/// `replaced_vote` hands the old value to the totals update: `RETURNING`
/// sees only the new row, and reading the old one in a separate query would
/// race with other workers.
const UPSERT: &str = "
WITH incoming (voter_id, vote, entry_ms, entry_seq) AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
), changed AS (
    INSERT INTO votes AS v (voter_id, vote, entry_ms, entry_seq)
    SELECT voter_id, vote, entry_ms, entry_seq FROM incoming
    -- One lock order for every worker: concurrent batches cannot deadlock on votes.
    ORDER BY voter_id
    ON CONFLICT (voter_id) DO UPDATE
       SET vote = EXCLUDED.vote,
           entry_ms = EXCLUDED.entry_ms,
           entry_seq = EXCLUDED.entry_seq,
           replaced_vote = v.vote,
           updated_at = now()
     WHERE (v.entry_ms, v.entry_seq) < (EXCLUDED.entry_ms, EXCLUDED.entry_seq)
    RETURNING v.vote, v.replaced_vote
), delta (vote, n) AS (
    SELECT vote, count(*) FROM changed GROUP BY vote
    UNION ALL
    SELECT replaced_vote, -count(*) FROM changed
     WHERE replaced_vote IS NOT NULL GROUP BY replaced_vote
), applied AS (
    UPDATE totals t SET votes = t.votes + d.n
      FROM (SELECT vote, sum(n) AS n FROM delta GROUP BY vote) d
     WHERE t.vote = d.vote AND d.n <> 0
    RETURNING 1
)
SELECT count(*) FROM changed";

/// How often a batch is retried at once when PostgreSQL reports a deadlock
/// or serialization failure (transient by definition).
const TRANSIENT_RETRIES: usize = 3;

/// One worker's database connection; dropped on any error and made again
/// (resolving the host anew) on the next call.
pub struct Store {
    config: PgConfig,
    conn: Option<Conn>,
}

/// A connection and the batch statement prepared on it (parsed once per
/// connection, not once per batch).
struct Conn {
    client: Client,
    upsert: Statement,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .finish()
    }
}

impl Store {
    pub fn new(config: PgConfig) -> Store {
        Store { config, conn: None }
    }

    /// Connects if needed and brings the schema up to date on each new
    /// connection (cheap when current, and right after a restore).
    async fn conn(&mut self) -> anyhow::Result<&Conn> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let mut client = self.config.connect("worker").await?;
            let timeout = self.config.timeout;
            tokio::time::timeout(timeout, common::schema::migrate(&mut client))
                .await
                .context("timed out migrating the schema")??;
            let upsert = tokio::time::timeout(timeout, client.prepare(UPSERT))
                .await
                .context("timed out preparing the batch statement")??;
            self.conn = Some(Conn { client, upsert });
        }
        self.conn.as_ref().ok_or_else(|| anyhow!("no connection"))
    }

    /// Checks the connection, for readiness when idle.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        let timeout = self.config.timeout;
        let result = async {
            let conn = self.conn().await?;
            tokio::time::timeout(timeout, conn.client.simple_query("SELECT 1"))
                .await
                .context("timed out")??;
            anyhow::Ok(())
        }
        .await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Stores a batch; returns how many voter rows changed. Within a batch
    /// only each voter's latest entry matters (and one statement may not
    /// touch a row twice), so the batch is reduced to that first.
    pub async fn commit(&mut self, entries: &[VoteEntry]) -> anyhow::Result<u64> {
        let mut latest: HashMap<&str, &VoteEntry> = HashMap::with_capacity(entries.len());
        for entry in entries {
            let slot = latest.entry(entry.voter.as_str()).or_insert(entry);
            if entry.id > slot.id {
                *slot = entry;
            }
        }
        let mut voters = Vec::with_capacity(latest.len());
        let mut votes = Vec::with_capacity(latest.len());
        let mut ms = Vec::with_capacity(latest.len());
        let mut seq = Vec::with_capacity(latest.len());
        for entry in latest.values() {
            voters.push(entry.voter.as_str());
            votes.push(entry.choice.as_str());
            ms.push(entry.id.ms);
            seq.push(entry.id.seq);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let timeout = self.config.timeout;
            let result = async {
                let conn = self.conn().await?;
                let row = tokio::time::timeout(
                    timeout,
                    conn.client
                        .query_one(&conn.upsert, &[&voters, &votes, &ms, &seq]),
                )
                .await
                .context("timed out storing a batch")??;
                anyhow::Ok(row.get::<_, i64>(0))
            }
            .await;
            match result {
                Ok(changed) => return Ok(u64::try_from(changed).unwrap_or(0)),
                Err(e) if attempt <= TRANSIENT_RETRIES && is_transient(&e) => {
                    tracing::info!(error = %e, attempt, "retrying a batch after a transient conflict");
                }
                Err(e) => {
                    // The connection may be broken or mid-failover: start over.
                    self.conn = None;
                    return Err(e.context("while storing a batch"));
                }
            }
        }
    }
    /// Up to `limit` stored voter ids greater than `after`, in order: the
    /// pages a worker copies into the set of voters from before signed ids
    /// (keyset paging on the primary key, so each page is an index range).
    pub async fn voter_ids_after(
        &mut self,
        after: &str,
        limit: i64,
    ) -> anyhow::Result<Vec<String>> {
        let timeout = self.config.timeout;
        let result = async {
            let conn = self.conn().await?;
            let rows = tokio::time::timeout(
                timeout,
                conn.client.query(
                    "SELECT voter_id FROM votes WHERE voter_id > $1 ORDER BY voter_id LIMIT $2",
                    &[&after, &limit],
                ),
            )
            .await
            .context("timed out reading voter ids")??;
            anyhow::Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
        }
        .await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

fn is_transient(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        })
}
