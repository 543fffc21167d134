//! Benchmark 2: how fast the worker moves a full queue into PostgreSQL,
//! beside the same rows stored by PostgreSQL alone in one statement.
//!
//! Each run gets the same entries on an emptied Redis and a new database of
//! the same server. The worker's time runs from its start until the group
//! has delivered the last entry and nothing is pending (every entry
//! committed and acknowledged). The reference loads the entries into an
//! unlogged staging table with COPY (untimed) and times only the statement
//! that does the worker's work server-side: keep each voter's latest entry,
//! insert or update `votes` where newer, adjust `totals` by what changed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::SinkExt;

use crate::params::Params;
use crate::procs;
use crate::queue::{self, Entry};
use crate::services::{Infra, Kind, Launcher, Service};

/// Longest a single drain may take before the run is abandoned.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Reference runs; the fastest counts.
const REFERENCE_RUNS: usize = 2;
/// Rows per COPY message.
const COPY_CHUNK: usize = 20_000;

/// The worker's statement (worker/src/store.rs, `UPSERT`) with its input
/// read from the staging table instead of arrays: `DISTINCT ON` does what
/// the worker's per-batch reduction does (one statement may not touch a row
/// twice), the rest is the worker's text. Keep the two in step.
const REFERENCE: &str = "
WITH incoming (voter_id, vote, entry_ms, entry_seq) AS (
    SELECT DISTINCT ON (voter_id) voter_id, vote, entry_ms, entry_seq
      FROM staging
     ORDER BY voter_id, entry_ms DESC, entry_seq DESC
), changed AS (
    INSERT INTO votes AS v (voter_id, vote, entry_ms, entry_seq)
    SELECT voter_id, vote, entry_ms, entry_seq FROM incoming
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

/// One timed drain.
#[derive(Debug, Clone)]
pub struct Run {
    pub workers: usize,
    pub batch_size: usize,
    pub seconds: f64,
    /// CPU seconds used during the drain by the worker processes, Redis and
    /// PostgreSQL (all processes): where the time went.
    pub cpu: [f64; 3],
    /// Time the workers spent in PostgreSQL commits (their
    /// `commit_seconds` histogram), and how many batches they committed.
    pub commit_seconds: f64,
    pub commits: u64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub entries: usize,
    pub voters: usize,
    pub runs: Vec<Run>,
    pub reference_seconds: f64,
}

impl Outcome {
    pub fn per_sec(&self, seconds: f64) -> f64 {
        self.entries as f64 / seconds
    }
}

pub async fn run(infra: &Infra, launcher: &Launcher, params: &Params) -> anyhow::Result<Outcome> {
    eprintln!(
        "bench: worker: generating {} entries from {} voters",
        params.queue_entries, params.queue_voters
    );
    let entries = queue::generate(params.queue_entries, params.queue_voters)?;
    let expected = queue::expected_totals(&entries);

    // Best of two: the reference is the bar, so it gets every chance.
    let mut reference_seconds = f64::INFINITY;
    for _ in 0..REFERENCE_RUNS {
        let seconds = reference(infra, &entries, expected).await?;
        eprintln!(
            "bench: worker: reference statement {seconds:.2} s ({:.0} votes/s)",
            entries.len() as f64 / seconds
        );
        reference_seconds = reference_seconds.min(seconds);
    }
    let mut runs = Vec::new();
    for &batch_size in &params.batch_sizes {
        runs.push(drain(infra, launcher, &entries, expected, 1, batch_size).await?);
    }
    // Two workers with the first size (the default, 1000, unless told
    // otherwise) and with the fastest, if that is another.
    let best = runs
        .iter()
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .map(|r| r.batch_size);
    let mut two = params
        .batch_sizes
        .first()
        .copied()
        .into_iter()
        .collect::<Vec<_>>();
    two.extend(best.filter(|b| !two.contains(b)));
    for batch_size in two {
        runs.push(drain(infra, launcher, &entries, expected, 2, batch_size).await?);
    }
    Ok(Outcome {
        entries: entries.len(),
        voters: params.queue_voters,
        runs,
        reference_seconds,
    })
}

/// Queues `entries`, starts `workers` worker processes, times the drain.
async fn drain(
    infra: &Infra,
    launcher: &Launcher,
    entries: &[Entry],
    expected: (i64, i64),
    workers: usize,
    batch_size: usize,
) -> anyhow::Result<Run> {
    let last = entries.last().context("no entries")?.id;
    let database = format!("drain_w{workers}_b{batch_size}");
    infra.flush_redis().await?;
    let mut conn = infra.redis_conn().await?;
    let queued = Instant::now();
    queue::fill(&mut conn, entries).await?;
    eprintln!(
        "bench: worker: queued {} entries in {:.1} s; draining with {workers} worker(s), WORKER_BATCH_SIZE={batch_size}",
        entries.len(),
        queued.elapsed().as_secs_f64()
    );
    infra.create_db(&database).await?;
    infra.checkpoint().await?;

    let cpu_before = [
        0.0,
        procs::cpu_seconds(infra.redis_pid, false)?,
        procs::tree_cpu_seconds(infra.pg_pid)?,
    ];
    let started = Instant::now();
    let mut services: Vec<Service> = Vec::with_capacity(workers);
    for i in 0..workers {
        let tag = format!("{database}-{i}");
        let service = launcher.start(
            Kind::Worker,
            &tag,
            infra,
            &database,
            &[("WORKER_BATCH_SIZE", batch_size.to_string())],
        )?;
        services.push(service);
    }
    let done = queue::wait_drained(&mut conn, last, &mut services, DRAIN_TIMEOUT).await?;
    let seconds = done.duration_since(started).as_secs_f64();
    let mut cpu = [
        0.0,
        procs::cpu_seconds(infra.redis_pid, false)?,
        procs::tree_cpu_seconds(infra.pg_pid)?,
    ];
    for (after, before) in cpu.iter_mut().zip(cpu_before) {
        *after -= before;
    }
    let http = reqwest::Client::new();
    let (mut commit_seconds, mut commits) = (0.0, 0);
    for service in &mut services {
        cpu[0] += procs::cpu_seconds(service.proc.pid(), false)?;
        let metrics = http
            .get(format!("http://{}/metrics", service.addr))
            .send()
            .await?
            .text()
            .await?;
        commit_seconds += metric(&metrics, "swarmvote_worker_commit_seconds_sum");
        commits += metric(&metrics, "swarmvote_worker_commit_seconds_count") as u64;
        service.proc.stop();
    }
    eprintln!(
        "bench: worker: drained in {seconds:.2} s ({:.0} votes/s); CPU s: worker {:.1}, redis {:.1}, postgres {:.1}",
        entries.len() as f64 / seconds,
        cpu[0],
        cpu[1],
        cpu[2]
    );
    verify(infra, &database, expected).await?;
    infra.drop_db(&database).await?;
    Ok(Run {
        workers,
        batch_size,
        seconds,
        cpu,
        commit_seconds,
        commits,
    })
}

/// The value of an unlabelled metric in Prometheus' text format (0 if absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Loads the entries into a staging table (untimed), then times the
/// reference statement on a new database of the same server.
async fn reference(infra: &Infra, entries: &[Entry], expected: (i64, i64)) -> anyhow::Result<f64> {
    let database = "drain_reference";
    infra.create_db(database).await?;
    let mut client = infra.pg_client(database).await?;
    common::schema::migrate(&mut client).await?;
    client
        .batch_execute(
            "CREATE UNLOGGED TABLE staging (
                 voter_id text NOT NULL, vote text NOT NULL,
                 entry_ms bigint NOT NULL, entry_seq bigint NOT NULL)",
        )
        .await?;
    let sink = client
        .copy_in("COPY staging (voter_id, vote, entry_ms, entry_seq) FROM STDIN")
        .await?;
    futures_util::pin_mut!(sink);
    for chunk in entries.chunks(COPY_CHUNK) {
        let mut rows = String::with_capacity(chunk.len() * 64);
        for e in chunk {
            rows.push_str(e.voter.as_str());
            rows.push('\t');
            rows.push_str(e.choice.as_str());
            rows.push('\t');
            rows.push_str(&e.id.ms.to_string());
            rows.push('\t');
            rows.push_str(&e.id.seq.to_string());
            rows.push('\n');
        }
        sink.send(bytes::Bytes::from(rows)).await?;
    }
    let copied = sink.finish().await?;
    if copied != entries.len() as u64 {
        bail!("COPY stored {copied} of {} rows", entries.len());
    }
    client.batch_execute("ANALYZE staging").await?;
    infra.checkpoint().await?;

    let started = Instant::now();
    let changed: i64 = client.query_one(REFERENCE, &[]).await?.get(0);
    let seconds = started.elapsed().as_secs_f64();
    if changed != expected.0 + expected.1 {
        bail!("the reference changed {changed} rows, expected one per voter");
    }
    drop(client);
    verify(infra, database, expected).await?;
    infra.drop_db(database).await?;
    Ok(seconds)
}

/// Both the worker and the reference must end with one row per voter and
/// the totals of each voter's last vote.
async fn verify(infra: &Infra, database: &str, expected: (i64, i64)) -> anyhow::Result<()> {
    let client = infra.pg_client(database).await?;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM votes", &[])
        .await?
        .get(0);
    let counts = common::schema::read_counts(&client).await?;
    if rows != expected.0 + expected.1 || (counts.a, counts.b) != expected {
        bail!(
            "database {database} is wrong after the drain: {rows} rows, totals a={} b={}, expected {} rows, a={} b={}",
            counts.a,
            counts.b,
            expected.0 + expected.1,
            expected.0,
            expected.1
        );
    }
    Ok(())
}
