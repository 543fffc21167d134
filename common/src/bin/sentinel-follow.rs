//! `sentinel-follow ME OTHER...`: whether this Sentinel should adopt the
//! primary a majority of the Sentinels names (the rule:
//! `common::sentinel::follow_majority`). Each file holds one Sentinel's
//! answer to `SENTINEL master NAME` as redis-cli prints it (a field name,
//! then its value, one per line); an empty or missing file is a Sentinel
//! that did not answer. Prints `stay`, `adopt NODE` or `finish NODE` (restart
//! on NODE at once); exits 2 with the
//! reason on bad input. Run by the Sentinel's entrypoint (redis/entrypoint.sh).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use common::sentinel::{follow_majority, sentinel_report, Follow, SentinelReport};

/// Field/value pairs of one answer; `None` when the file is empty or absent.
fn read(path: &str) -> anyhow::Result<Option<SentinelReport>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Ok(None);
    }
    if !lines.len().is_multiple_of(2) {
        bail!(
            "{path}: expected field and value lines in pairs, got {} lines",
            lines.len()
        );
    }
    let fields: HashMap<String, String> = lines
        .chunks(2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect();
    sentinel_report(&fields, &[])
        .map(Some)
        .with_context(|| format!("{path}: no ip field: not an answer to SENTINEL master"))
}

fn run(args: &[String]) -> anyhow::Result<String> {
    let Some((me, others)) = args.split_first() else {
        bail!("usage: sentinel-follow ME_FILE OTHER_FILE...");
    };
    let me = read(me)?.context("this Sentinel's own answer is missing")?;
    let others = others
        .iter()
        .map(|p| read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(match follow_majority(&me, &others) {
        Follow::Stay => "stay".to_owned(),
        Follow::Adopt(node) => format!("adopt {node}"),
        Follow::Finish(node) => format!("finish {node}"),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sentinel-follow: {e:#}");
            ExitCode::from(2)
        }
    }
}
