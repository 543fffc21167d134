//! The database schema, shared by its writer (worker) and reader (result).
//!
//! `votes` keeps each voter's latest vote and the stream id it came from;
//! `totals` keeps the tally, changed in the same statement as `votes`, so the
//! result page reads two rows whatever the number of votes.

use anyhow::Context;
use tokio_postgres::Client;

use crate::Choice;

/// Any constant works, as long as every worker uses the same one: it names the
/// advisory lock that makes concurrent migrations take turns.
const MIGRATION_LOCK: i64 = 0x5357_4152_4d56_4f54; // "SWARMVOT"

/// Migrations in order; a database at version N has run the first N.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: votes per voter, and the totals they add up to.
    "CREATE TABLE votes (
         voter_id      text PRIMARY KEY CHECK (voter_id ~ '^[0-9a-f]{32}$'),
         vote          char(1) NOT NULL CHECK (vote IN ('a', 'b')),
         -- The stream entry id (<ms>-<seq>) of the vote stored here: a row is
         -- only ever replaced by an entry with a larger id.
         entry_ms      bigint NOT NULL,
         entry_seq     bigint NOT NULL,
         -- The vote this row held before its last update, NULL after an
         -- insert. Only read through RETURNING, to adjust totals.
         replaced_vote char(1),
         updated_at    timestamptz NOT NULL DEFAULT now()
     );
     CREATE TABLE totals (
         vote  char(1) PRIMARY KEY CHECK (vote IN ('a', 'b')),
         votes bigint NOT NULL DEFAULT 0 CHECK (votes >= 0)
     );
     INSERT INTO totals (vote) VALUES ('a'), ('b');",
];

/// Brings the schema up to date. Safe when several workers start at once:
/// they queue on an advisory lock and the later ones find nothing to do.
pub async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    let tx = client
        .transaction()
        .await
        .context("while starting the migration")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("while taking the migration lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .context("while creating schema_migrations")?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?;
    let current: i32 = row.get(0);
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(index + 1).context("too many migrations")?;
        if version <= current {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("while applying migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "applied migration");
    }
    tx.commit()
        .await
        .context("while committing the migration")?;
    Ok(())
}

/// The count of votes per option, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub a: i64,
    pub b: i64,
}

impl Counts {
    pub fn get(&self, choice: Choice) -> i64 {
        match choice {
            Choice::A => self.a,
            Choice::B => self.b,
        }
    }

    pub fn total(&self) -> i64 {
        self.a + self.b
    }
}

/// Reads the tally: one indexed read of two rows.
pub async fn read_counts(client: &Client) -> anyhow::Result<Counts> {
    let rows = client
        .query("SELECT vote::text, votes FROM totals", &[])
        .await
        .context("while reading totals")?;
    let mut counts = Counts::default();
    for row in rows {
        // try_get: a changed column type is an error to retry, not a panic.
        let vote: String = row.try_get(0)?;
        let votes: i64 = row.try_get(1)?;
        match Choice::parse(&vote) {
            Some(Choice::A) => counts.a = votes,
            Some(Choice::B) => counts.b = votes,
            None => anyhow::bail!("unexpected option {vote:?} in totals"),
        }
    }
    Ok(counts)
}
