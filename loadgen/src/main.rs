//! `loadgen run|audit|recovery`: see `usage()`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use loadgen::{audit, record, run, schedule};

fn usage() -> &'static str {
    "Usage:
  loadgen run --url URL [--connect IP:PORT] --cacert FILE --out FILE
              [--rate VOTES_PER_S] [--seconds N] [--tasks N] [--change-share F]
      votes at a steady rate; writes one line per request to FILE
  loadgen audit --log FILE --stored FILE
      FILE of 'voter vote' lines (from PostgreSQL): exits 1 unless every voter's
      latest acknowledged vote is stored
  loadgen recovery --log FILE --fault-ms MS [--until-ms MS]
      time from the fault to the first acknowledged vote after the last failure
  loadgen schedule --seed N --count N --kinds KIND[:swept],...
                   [--from-ms MS] [--to-ms MS] [--step-ms MS]
      prints 'kind duration_ms' lines: swept kinds at every duration of the
      sweep, shuffled by the seed (tests/faults/)"
}

/// `--name value` pairs.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(args: &[String]) -> anyhow::Result<Args> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .with_context(|| format!("unexpected argument {flag:?}"))?;
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Args(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> anyhow::Result<&str> {
        self.get(name)
            .with_context(|| format!("--{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name}: {v:?} is not a number")),
        }
    }

    fn only(&self, allowed: &[&str]) -> anyhow::Result<()> {
        match self.0.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((n, _)) => bail!("unknown option --{n}"),
            None => Ok(()),
        }
    }
}

async fn cmd_run(args: &Args) -> anyhow::Result<bool> {
    args.only(&[
        "url",
        "connect",
        "cacert",
        "out",
        "rate",
        "seconds",
        "tasks",
        "change-share",
    ])?;
    let plan = run::Plan {
        url: args.required("url")?.parse().context("--url")?,
        connect: args
            .get("connect")
            .map(str::parse)
            .transpose()
            .context("--connect")?,
        ca: PathBuf::from(args.required("cacert")?),
        rate: args.number("rate", 100.0)?,
        duration: Duration::from_secs_f64(args.number("seconds", 30.0)?),
        tasks: args.number("tasks", 16)?,
        change_share: args.number("change-share", 0.2)?,
        timeout: Duration::from_secs(5),
    };
    let out = PathBuf::from(args.required("out")?);
    let records = run::run(plan).await?;
    let text: String = records.iter().map(|r| r.to_line() + "\n").collect();
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    let acked = records.iter().filter(|r| r.acked).count();
    println!(
        "{} requests, {acked} acknowledged, {} not",
        records.len(),
        records.len() - acked
    );
    Ok(true)
}

fn read(path: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

fn cmd_audit(args: &Args) -> anyhow::Result<bool> {
    args.only(&["log", "stored"])?;
    let records = record::parse_log(&read(args.required("log")?)?)?;
    let stored = audit::parse_stored(&read(args.required("stored")?)?)?;
    let result = audit::audit(&records, &stored);
    println!(
        "acknowledged {} votes of {} voters / found {} / lost {} / wrong {}",
        result.acknowledged,
        result.voters,
        result.found,
        result.lost.len(),
        result.wrong.len()
    );
    for voter in result.lost.iter().take(10) {
        println!("  lost: {voter}");
    }
    for (voter, got, expected) in result.wrong.iter().take(10) {
        println!("  wrong: {voter} holds {got}, latest acknowledged {expected}");
    }
    Ok(result.passed())
}

fn cmd_schedule(args: &Args) -> anyhow::Result<bool> {
    args.only(&["seed", "count", "kinds", "from-ms", "to-ms", "step-ms"])?;
    let default = schedule::Sweep::default();
    let sweep = schedule::Sweep {
        from_ms: args.number("from-ms", default.from_ms)?,
        to_ms: args.number("to-ms", default.to_ms)?,
        step_ms: args.number("step-ms", default.step_ms)?,
    };
    anyhow::ensure!(
        sweep.step_ms > 0 && sweep.from_ms <= sweep.to_ms && sweep.to_ms <= 600_000,
        "the sweep must step by more than 0 ms from --from-ms up to --to-ms (at most 600000)"
    );
    let count: usize = args.number("count", 0)?;
    anyhow::ensure!((1..=10_000).contains(&count), "--count must be 1 to 10000");
    let seed: u64 = args.required("seed")?.parse().context("--seed: a number")?;
    let kinds = schedule::parse_kinds(args.required("kinds")?)?;
    for fault in schedule::schedule(seed, count, &kinds, sweep) {
        println!("{} {}", fault.kind, fault.duration_ms);
    }
    Ok(true)
}

fn cmd_recovery(args: &Args) -> anyhow::Result<bool> {
    args.only(&["log", "fault-ms", "until-ms"])?;
    let records = record::parse_log(&read(args.required("log")?)?)?;
    let fault: u64 = args.required("fault-ms")?.parse().context("--fault-ms")?;
    let until = args
        .get("until-ms")
        .map(str::parse)
        .transpose()
        .context("--until-ms")?;
    let r = audit::recovery(&records, fault, until);
    match r.recovered_after_ms {
        Some(ms) => println!(
            "recovered after {ms} ms ({} requests not acknowledged)",
            r.failed
        ),
        None => println!("never recovered ({} requests not acknowledged)", r.failed),
    }
    Ok(r.recovered_after_ms.is_some())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let outcome = match Args::parse(rest) {
        Err(e) => Err(e),
        Ok(args) => match command.as_str() {
            "run" => cmd_run(&args).await,
            "audit" => cmd_audit(&args),
            "recovery" => cmd_recovery(&args),
            "schedule" => cmd_schedule(&args),
            "-h" | "--help" => {
                println!("{}", usage());
                Ok(true)
            }
            other => Err(anyhow::anyhow!("unknown command {other:?}")),
        },
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}\n{}", usage());
            ExitCode::from(2)
        }
    }
}
