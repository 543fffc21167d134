//! The Markdown table the bench prints and `run.sh` appends to RESULTS.md:
//! one row per figure, its reference from the same run beside it, the goal,
//! and whether it was met.

use std::fmt::Write;

use crate::params::Params;
use crate::services::Kind;
use crate::{drain, http_load, latency};

/// Memory every service must stay under.
const MEMORY_GOAL_MIB: f64 = 64.0;

#[derive(Debug)]
struct Row {
    what: String,
    result: String,
    reference: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

fn row(what: impl Into<String>, result: impl Into<String>) -> Row {
    Row {
        what: what.into(),
        result: result.into(),
        reference: "–".into(),
        ratio: "–".into(),
        goal: "–".into(),
        met: None,
    }
}

impl Row {
    fn against(mut self, reference: impl Into<String>, ratio: f64, goal: f64) -> Row {
        self.reference = reference.into();
        self.ratio = format!("{ratio:.2}×");
        self.goal = format!("≥ {goal}×");
        self.met = Some(ratio >= goal);
        self
    }

    fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The table and the notes under it.
pub fn render(
    params: &Params,
    vote: Option<&http_load::Outcome>,
    worker: Option<&drain::Outcome>,
    live: Option<&latency::Outcome>,
) -> String {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if let Some(v) = vote {
        if let Some(m) = v.median() {
            rows.push(
                row(
                    "vote `POST /` req/s (wrk, round with the median ratio)",
                    format!("{:.0}", m.vote.requests_per_sec),
                )
                .against(
                    format!("nginx `return 200`: {:.0}", m.nginx.requests_per_sec),
                    m.ratio(),
                    0.5,
                ),
            );
            rows.push(row(
                "vote latency p99 under wrk (same round)",
                format!("{:.2} ms (nginx {:.2} ms)", m.vote.p99_ms, m.nginx.p99_ms),
            ));
        }
        let failures = v.vote_failures();
        rows.push(
            row(
                "vote non-2xx/3xx responses + socket errors (all rounds)",
                failures.to_string(),
            )
            .goal("= 0", failures == 0),
        );
        let rounds: Vec<String> = v
            .rounds
            .iter()
            .map(|r| {
                format!(
                    "{:.0} vs {:.0} req/s = {:.2}×, CPU per request {:.1} µs vote + {:.1} µs redis vs {:.1} µs nginx",
                    r.vote.requests_per_sec,
                    r.nginx.requests_per_sec,
                    r.ratio(),
                    r.vote_cpu_us,
                    r.redis_cpu_us,
                    r.nginx_cpu_us
                )
            })
            .collect();
        notes.push(format!(
            "vote: `wrk -t{} -c{} -d{}s --latency -s bench/post.lua` (POST `vote=a`, form-encoded, no cookie) \
             against one vote process (Redis with AOF, everysec) and against nginx, {} interleaved round(s) after \
             a 2 s warm-up of each; rounds: {}. The vote process peaked at {:.1} MiB (VmHWM) under wrk; {} \
             entries were queued in the vote rounds.",
            params.wrk_threads,
            params.wrk_connections,
            params.wrk_duration.as_secs(),
            params.wrk_rounds,
            rounds.join("; "),
            mib(v.vote_memory.hwm_kib),
            v.stream_entries,
        ));
    }
    if let Some(w) = worker {
        let reference = w.per_sec(w.reference_seconds);
        for run in &w.runs {
            let per_sec = w.per_sec(run.seconds);
            rows.push(
                row(
                    format!(
                        "worker votes/s, {} worker(s), `WORKER_BATCH_SIZE={}`",
                        run.workers, run.batch_size
                    ),
                    format!("{per_sec:.0} ({:.1} s)", run.seconds),
                )
                .against(
                    format!(
                        "one `INSERT … SELECT … ON CONFLICT`: {reference:.0} ({:.1} s)",
                        w.reference_seconds
                    ),
                    per_sec / reference,
                    0.5,
                ),
            );
        }
        let cpu: Vec<String> = w
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{}×{}: {:.1} s wall, CPU {:.1} / {:.1} / {:.1} s, {:.1} s in {} commits",
                    r.workers,
                    r.batch_size,
                    r.seconds,
                    r.cpu[0],
                    r.cpu[1],
                    r.cpu[2],
                    r.commit_seconds,
                    r.commits
                )
            })
            .collect();
        notes.push(format!(
            "worker CPU time during each drain (workers×batch: worker / redis / postgres, all processes; then the workers' time in PostgreSQL commits, from their `commit_seconds` metric): {}.",
            cpu.join("; ")
        ));
        notes.push(format!(
            "worker: {} entries from {} distinct voters queued before the worker starts; timed from the \
             worker's start until the group has delivered the last entry with nothing pending. Reference: the \
             same rows COPYed into an unlogged staging table (untimed), then the worker's statement with \
             `DISTINCT ON (voter_id)` as input, on a new database of the same server. Both results are checked \
             (one row per voter, totals of each voter's last vote). PostgreSQL runs with testkit's settings \
             (fsync=off, full_page_writes=off).",
            w.entries, w.voters
        ));
    }
    if let Some(l) = live {
        rows.push(row(
            "result: ack → SSE event p50",
            format!("{:.1} ms", l.p50_ms),
        ));
        rows.push(
            row("result: ack → SSE event p99", format!("{:.1} ms", l.p99_ms))
                .goal("≤ 250 ms", l.p99_ms <= 250.0 && l.missing == 0),
        );
        rows.push(row(
            "result: ack → SSE event max",
            format!("{:.1} ms", l.max_ms),
        ));
        rows.push(
            row(
                "result: votes failed / samples never delivered",
                format!("{} / {}", l.vote_errors, l.missing),
            )
            .goal("= 0", l.vote_errors == 0 && l.missing == 0),
        );
        for (kind, m) in Kind::ALL.iter().zip(&l.memory) {
            let peak = mib(m.peak_hwm_kib.max(m.load_rss_kib));
            rows.push(
                row(
                    format!("{} memory: idle RSS / load RSS (max) / VmHWM", kind.name()),
                    format!(
                        "{:.1} / {:.1} / {:.1} MiB",
                        mib(m.idle.rss_kib),
                        mib(m.load_rss_kib),
                        mib(m.peak_hwm_kib)
                    ),
                )
                .goal(format!("< {MEMORY_GOAL_MIB} MiB"), peak < MEMORY_GOAL_MIB),
            );
        }
        notes.push(format!(
            "result: {} votes sent at {:.0}/s (target {}/s, ≤ {} in flight) to `POST /api/vote`, each a new voter \
             for a; {} acknowledged; {} SSE clients on one result process (poll interval 100 ms), vote, worker \
             (batch 1000) and result as separate release processes; {} samples (every vote × every client). \
             Memory: idle = ready, no clients, no votes; load = VmRSS sampled every 200 ms during the votes; \
             VmHWM = the process's peak.",
            l.votes_sent,
            l.rate,
            params.vote_rate,
            latency::IN_FLIGHT,
            l.votes_acked,
            l.clients,
            l.samples
        ));
    }

    let mut out = String::new();
    out.push_str("| benchmark | result | reference (same run) | ratio | goal | met |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for r in &rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {met} |",
            r.what, r.result, r.reference, r.ratio, r.goal
        );
    }
    out.push('\n');
    if params.quick {
        out.push_str("Quick run (`--quick`): small sizes, not comparable with full runs.\n\n");
    }
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}
