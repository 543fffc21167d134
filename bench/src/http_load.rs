//! Benchmark 1: `POST /` requests per second with wrk against one vote
//! process (backed by redis-server), beside the same wrk against nginx
//! answering a fixed 200: the ceiling for HTTP on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::params::Params;
use crate::procs::{self, Memory, Proc};
use crate::services::{Infra, Kind, Launcher};

/// The request wrk sends (see the file for why it has no cookie).
const POST_LUA: &str = include_str!("../post.lua");
/// nginx's configuration, with `{{DIR}}` and `{{PORT}}` to fill in.
const NGINX_CONF: &str = include_str!("../nginx.conf");
/// Untimed run before the measured ones: connections, caches, allocators.
const WARMUP: Duration = Duration::from_secs(2);

/// What one wrk run reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrk {
    pub requests_per_sec: f64,
    pub requests: u64,
    /// Responses with a status of 400 or more (wrk: "Non-2xx or 3xx").
    pub bad_status: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    pub p99_ms: f64,
}

/// One nginx run and the vote run right after it, with the CPU time each
/// side used per request: the part of the comparison that noise from other
/// processes on the machine does not move much.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub nginx: Wrk,
    pub vote: Wrk,
    /// CPU microseconds per request of nginx (all its processes), of vote,
    /// and of Redis during vote's run.
    pub nginx_cpu_us: f64,
    pub vote_cpu_us: f64,
    pub redis_cpu_us: f64,
}

impl Round {
    pub fn ratio(&self) -> f64 {
        self.vote.requests_per_sec / self.nginx.requests_per_sec
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub rounds: Vec<Round>,
    /// The vote process's peak memory after all of its runs.
    pub vote_memory: Memory,
    pub stream_entries: u64,
}

impl Outcome {
    /// The round with the median ratio: each round pairs runs taken seconds
    /// apart, so its ratio is less noisy than the best of each side.
    pub fn median(&self) -> Option<&Round> {
        let mut rounds: Vec<&Round> = self.rounds.iter().collect();
        rounds.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        rounds.get(rounds.len() / 2).copied()
    }

    /// Error responses and socket errors of every vote run.
    pub fn vote_failures(&self) -> u64 {
        self.rounds
            .iter()
            .map(|r| r.vote.bad_status + r.vote.socket_errors)
            .sum()
    }
}

pub async fn run(infra: &Infra, launcher: &Launcher, params: &Params) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new().prefix("bench-nginx-").tempdir()?;
    let lua = dir.path().join("post.lua");
    std::fs::write(&lua, POST_LUA)?;
    let http = reqwest::Client::new();

    infra.flush_redis().await?;
    let mut vote = launcher.start(Kind::Vote, "wrk", infra, "unused", &[])?;
    vote.wait_ready(&http).await?;
    let mut nginx = Nginx::start(dir.path(), launcher)?;
    nginx.wait_ready(&http).await?;
    let vote_url = format!("http://{}/", vote.addr);
    let nginx_url = format!("http://{}/", nginx.addr);

    eprintln!("bench: vote: warming up both servers");
    wrk(params, &nginx_url, &lua, WARMUP).await?;
    wrk(params, &vote_url, &lua, WARMUP).await?;
    let mut rounds = Vec::new();
    let mut stream_entries = 0;
    // Interleaved, so that a slow spell of the machine hits both.
    for round in 1..=params.wrk_rounds {
        let before = procs::tree_cpu_seconds(nginx.proc.pid())?;
        let n = wrk(params, &nginx_url, &lua, params.wrk_duration).await?;
        let nginx_cpu = procs::tree_cpu_seconds(nginx.proc.pid())? - before;
        nginx.proc.ensure_running()?;
        infra.flush_redis().await?;
        let before = [
            procs::cpu_seconds(vote.proc.pid(), false)?,
            procs::cpu_seconds(infra.redis_pid, false)?,
        ];
        let v = wrk(params, &vote_url, &lua, params.wrk_duration).await?;
        let vote_cpu = procs::cpu_seconds(vote.proc.pid(), false)? - before[0];
        let redis_cpu = procs::cpu_seconds(infra.redis_pid, false)? - before[1];
        vote.proc.ensure_running()?;
        stream_entries += stream_len(infra).await?;
        let per_request = |cpu: f64, w: &Wrk| cpu * 1e6 / (w.requests.max(1) as f64);
        let r = Round {
            nginx: n,
            vote: v,
            nginx_cpu_us: per_request(nginx_cpu, &n),
            vote_cpu_us: per_request(vote_cpu, &v),
            redis_cpu_us: per_request(redis_cpu, &v),
        };
        eprintln!(
            "bench: vote: round {round}: nginx {:.0} req/s ({:.1} µs CPU/req), vote {:.0} req/s ({:.1} µs CPU/req + redis {:.1}), {:.2}×, {} failed",
            n.requests_per_sec,
            r.nginx_cpu_us,
            v.requests_per_sec,
            r.vote_cpu_us,
            r.redis_cpu_us,
            r.ratio(),
            v.bad_status + v.socket_errors
        );
        rounds.push(r);
    }
    let vote_memory = vote.proc.memory()?;
    Ok(Outcome {
        rounds,
        vote_memory,
        stream_entries,
    })
}

async fn stream_len(infra: &Infra) -> anyhow::Result<u64> {
    let mut conn = infra.redis_conn().await?;
    Ok(redis::cmd("XLEN")
        .arg(common::queue::STREAM)
        .query_async(&mut conn)
        .await?)
}

/// nginx in the foreground with the bench's configuration.
struct Nginx {
    proc: Proc,
    addr: SocketAddr,
}

impl Nginx {
    fn start(dir: &Path, launcher: &Launcher) -> anyhow::Result<Nginx> {
        let port = testkit::free_port();
        let prefix = dir.to_str().context("temporary directory is not UTF-8")?;
        let conf = NGINX_CONF
            .replace("{{DIR}}", prefix)
            .replace("{{PORT}}", &port.to_string());
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(nginx_binary());
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"));
        let proc = Proc::spawn(
            "nginx",
            cmd,
            &launcher.log_dir.join("nginx.log"),
            &launcher.pids,
        )?;
        Ok(Nginx {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("http://{}/", self.addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.proc.ensure_running()?;
            if http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nginx did not answer: {}", self.proc.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// Runs wrk once and parses its report.
async fn wrk(params: &Params, url: &str, lua: &Path, duration: Duration) -> anyhow::Result<Wrk> {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.arg(format!("-t{}", params.wrk_threads))
        .arg(format!("-c{}", params.wrk_connections))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .arg("-s")
        .arg(lua)
        .arg(url)
        .kill_on_drop(true);
    let out = tokio::time::timeout(duration + Duration::from_secs(30), cmd.output())
        .await
        .context("wrk did not finish")?
        .context("while running wrk (install Debian's wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("while reading wrk's report:\n{text}"))
}

fn parse_wrk(text: &str) -> anyhow::Result<Wrk> {
    let after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_sec = after("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("no Requests/sec")?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no request count")?;
    let bad_status = after("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors = after("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    });
    let p99_ms = after("99%").and_then(duration_ms).unwrap_or(f64::NAN);
    Ok(Wrk {
        requests_per_sec,
        requests,
        bad_status,
        socket_errors,
        p99_ms,
    })
}

/// wrk's `812.00us`, `3.21ms`, `1.02s` in milliseconds.
fn duration_ms(value: &str) -> Option<f64> {
    let (number, factor) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 10s test @ http://127.0.0.1:1/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   9.00ms   90.00%
  Latency Distribution
     50%    1.10ms
     75%    1.30ms
     90%    1.50ms
     99%  812.00us
  212345 requests in 10.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  21234.50
Transfer/sec:      3.00MB
";
        let wrk = parse_wrk(report).expect("parses");
        assert_eq!(wrk.requests, 212_345);
        assert_eq!(wrk.bad_status, 7);
        assert_eq!(wrk.socket_errors, 3);
        assert!((wrk.requests_per_sec - 21234.5).abs() < 1e-9);
        assert!((wrk.p99_ms - 0.812).abs() < 1e-9);
    }
}
