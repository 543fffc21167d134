//! The bench's command line: what to measure and how big.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

pub const USAGE: &str = "\
usage: bench [--quick] [--only LIST] [--batch-sizes LIST] [--report FILE]
             [--pids FILE] [--bin-dir DIR]

Runs the swarmvote benchmarks against the release binaries and prints a
Markdown table (and writes it to --report). Normally started by bench/run.sh.

  --quick        small sizes, for checking that the bench works (about 1 min)
  --only LIST    comma-separated subset of: vote,worker,result
  --batch-sizes LIST
                 WORKER_BATCH_SIZE values to try with one worker (default
                 1000,5000); the fastest is also run with two workers
  --report FILE  where to write the Markdown table and notes
  --pids FILE    where to list started processes (run.sh stops leftovers)
  --bin-dir DIR  where vote, worker and result are (default: beside bench)
";

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    pub vote: bool,
    pub worker: bool,
    pub result: bool,
}

/// Sizes and settings of every benchmark.
#[derive(Debug, Clone)]
pub struct Params {
    pub quick: bool,
    pub phases: Phases,
    pub report: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    /// wrk's `-t`, `-c`, `-d`, the same for vote and nginx.
    pub wrk_threads: u32,
    pub wrk_connections: u32,
    pub wrk_duration: Duration,
    /// Interleaved nginx/vote rounds; the best of each is reported.
    pub wrk_rounds: u32,
    /// Entries queued before the worker starts, and how many distinct
    /// voters they come from (the rest are changed minds).
    pub queue_entries: usize,
    pub queue_voters: usize,
    /// `WORKER_BATCH_SIZE` values tried with one worker; the fastest is
    /// then run with two workers.
    pub batch_sizes: Vec<usize>,
    /// Votes per second of the latency benchmark, for how long, and how many
    /// SSE clients watch.
    pub vote_rate: u32,
    pub vote_duration: Duration,
    pub sse_clients: usize,
}

impl Params {
    pub fn full() -> Params {
        Params {
            quick: false,
            phases: Phases {
                vote: true,
                worker: true,
                result: true,
            },
            report: None,
            pids: None,
            bin_dir: None,
            wrk_threads: 2,
            wrk_connections: 64,
            wrk_duration: Duration::from_secs(10),
            wrk_rounds: 3,
            queue_entries: 1_000_000,
            queue_voters: 800_000,
            batch_sizes: vec![1000, 5000],
            vote_rate: 1000,
            vote_duration: Duration::from_secs(15),
            sse_clients: 1000,
        }
    }

    fn quicken(&mut self) {
        self.quick = true;
        self.wrk_duration = Duration::from_secs(3);
        self.wrk_rounds = 1;
        self.queue_entries = 100_000;
        self.queue_voters = 80_000;
        self.batch_sizes = vec![1000];
        self.vote_duration = Duration::from_secs(5);
    }

    /// Parses the arguments (without the program name). `Ok(None)` means
    /// `--help` was asked for.
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Params>> {
        let mut params = Params::full();
        let mut quick = false;
        let mut batch_sizes = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => quick = true,
                "--only" => params.phases = parse_phases(&value("--only")?)?,
                "--batch-sizes" => batch_sizes = Some(parse_sizes(&value("--batch-sizes")?)?),
                "--report" => params.report = Some(value("--report")?.into()),
                "--pids" => params.pids = Some(value("--pids")?.into()),
                "--bin-dir" => params.bin_dir = Some(value("--bin-dir")?.into()),
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        // Sizes first, then what was asked for explicitly, whatever the order.
        if quick {
            params.quicken();
        }
        if let Some(sizes) = batch_sizes {
            params.batch_sizes = sizes;
        }
        Ok(Some(params))
    }
}

fn parse_sizes(list: &str) -> anyhow::Result<Vec<usize>> {
    list.split(',')
        .map(|s| match s.trim().parse::<usize>() {
            // The worker's own bounds for WORKER_BATCH_SIZE.
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => bail!("--batch-sizes: {s:?} is not a number in 1..=10000"),
        })
        .collect()
}

fn parse_phases(list: &str) -> anyhow::Result<Phases> {
    let mut phases = Phases {
        vote: false,
        worker: false,
        result: false,
    };
    for name in list.split(',').map(str::trim) {
        match name {
            "vote" => phases.vote = true,
            "worker" => phases.worker = true,
            "result" => phases.result = true,
            other => bail!("--only: unknown benchmark {other:?} (vote, worker, result)"),
        }
    }
    Ok(phases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<Params>> {
        Params::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn reads_flags_and_rejects_strangers() {
        let p = parse(&["--quick", "--only", "worker,result"])
            .expect("valid")
            .expect("not help");
        assert!(p.quick && !p.phases.vote && p.phases.worker && p.phases.result);
        assert!(parse(&["--help"]).expect("valid").is_none());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--only", "db"]).is_err());
        assert!(parse(&["--report"]).is_err());
        let p = parse(&["--batch-sizes", "500,10000"])
            .expect("valid")
            .expect("not help");
        assert_eq!(p.batch_sizes, vec![500, 10_000]);
        assert!(parse(&["--batch-sizes", "0"]).is_err());
    }
}
