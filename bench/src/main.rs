//! The swarmvote benchmarks: starts Redis and PostgreSQL (testkit), runs the
//! release binaries of vote, worker and result as separate processes, and
//! measures each beside a reference taken in the same run on the same
//! machine. `bench/run.sh` builds, runs this and records the table.

mod drain;
mod http_load;
mod latency;
mod params;
mod procs;
mod queue;
mod report;
mod services;

use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::params::Params;
use crate::procs::PidLog;
use crate::services::{Infra, Launcher};

#[tokio::main]
async fn main() -> ExitCode {
    let params = match Params::parse(std::env::args().skip(1)) {
        Ok(Some(params)) => params,
        Ok(None) => {
            print!("{}", params::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    // On SIGINT or SIGTERM the run is dropped, which stops every process it
    // started (each handle stops its process when dropped).
    let outcome = async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            outcome = run(&params) => outcome,
            _ = term.recv() => anyhow::bail!("stopped by SIGTERM"),
            _ = int.recv() => anyhow::bail!("stopped by SIGINT"),
        }
    }
    .await;
    match outcome {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen benchmarks and returns the report.
async fn run(params: &Params) -> anyhow::Result<String> {
    let pids = PidLog::new(params.pids.clone());
    let bin_dir = match &params.bin_dir {
        Some(dir) => dir.clone(),
        None => services::default_bin_dir()?,
    };
    for name in ["vote", "worker", "result"] {
        let path = bin_dir.join(name);
        anyhow::ensure!(
            path.is_file(),
            "{} is missing: cargo build --release -p vote -p worker -p result",
            path.display()
        );
    }
    let log_dir = tempfile::Builder::new()
        .prefix("bench-logs-")
        .tempdir()?
        .keep();
    eprintln!("bench: service logs in {}", log_dir.display());
    let launcher = Launcher {
        bin_dir,
        log_dir,
        pids: pids.clone(),
    };
    let infra = Infra::start(&pids)
        .await
        .context("while starting Redis and PostgreSQL")?;

    let vote = if params.phases.vote {
        eprintln!("bench: 1/3 vote vs nginx");
        Some(
            http_load::run(&infra, &launcher, params)
                .await
                .context("vote benchmark")?,
        )
    } else {
        None
    };
    let worker = if params.phases.worker {
        eprintln!("bench: 2/3 worker vs one SQL statement");
        Some(
            drain::run(&infra, &launcher, params)
                .await
                .context("worker benchmark")?,
        )
    } else {
        None
    };
    let live = if params.phases.result {
        eprintln!("bench: 3/3 result latency and memory");
        Some(
            latency::run(&infra, &launcher, params)
                .await
                .context("result benchmark")?,
        )
    } else {
        None
    };
    let table = report::render(params, vote.as_ref(), worker.as_ref(), live.as_ref());
    if let Some(path) = &params.report {
        std::fs::write(path, &table)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    Ok(table)
}
