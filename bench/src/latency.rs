//! Benchmark 3 and 4: how long a vote takes from its acknowledgement to the
//! SSE clients of the result service, with every service running as in the
//! stack; and the memory of each service, idle and under that load.
//!
//! Every vote is a new voter for option a, so the total grows by one per
//! vote: the k-th acknowledged vote is on a client's screen once that client
//! gets an event with a total of at least k. Each (vote, client) pair is one
//! sample: that event's arrival minus the k-th acknowledgement.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::params::Params;
use crate::procs::Memory;
use crate::services::{Infra, Kind, Launcher, Service};

/// Vote requests in flight at most: enough for 1000/s at a few ms each,
/// bounded so a stalled service cannot pile up tasks.
pub const IN_FLIGHT: usize = 256;
/// How often memory is sampled during the load.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// Longest wait for the clients to connect, and for the last vote to arrive.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const DATABASE: &str = "live";
/// The SSE event that carries the tally (result's `TALLY_EVENT`).
const TALLY_EVENT: &str = "tally";

/// Memory of one service: idle, the most seen under load, and the peak.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceMemory {
    pub idle: Memory,
    pub load_rss_kib: u64,
    pub peak_hwm_kib: u64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub votes_sent: u64,
    pub votes_acked: u64,
    pub vote_errors: u64,
    pub rate: f64,
    pub clients: usize,
    pub samples: usize,
    /// Samples whose vote never reached a client (should be 0).
    pub missing: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// In `Kind::ALL` order.
    pub memory: [ServiceMemory; 3],
}

pub async fn run(infra: &Infra, launcher: &Launcher, params: &Params) -> anyhow::Result<Outcome> {
    infra.flush_redis().await?;
    infra.create_db(DATABASE).await?;
    let http = reqwest::Client::new();
    let mut services: Vec<Service> = Vec::new();
    for kind in Kind::ALL {
        services.push(launcher.start(kind, "live", infra, DATABASE, &[])?);
    }
    for service in &mut services {
        service.wait_ready(&http).await?;
    }
    // Let start-up allocations settle before calling it idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut memory = [ServiceMemory::default(); 3];
    for (m, s) in memory.iter_mut().zip(&services) {
        m.idle = s.proc.memory()?;
    }

    let result_addr = services[2].addr;
    let clients =
        Clients::connect(&format!("http://{result_addr}/events"), params.sse_clients).await?;
    let base = clients
        .wait_all(|t| t >= 0, "every SSE client's first event")
        .await?;
    eprintln!(
        "bench: result: {} SSE clients connected at total {base}; voting {}/s for {:?}",
        params.sse_clients, params.vote_rate, params.vote_duration
    );

    let pids: Vec<u32> = services.iter().map(|s| s.proc.pid()).collect();
    let (stop_sampling, sampling) = watch::channel(false);
    let sampler = tokio::spawn(sample_memory(pids, sampling));
    let vote_url = format!("http://{}/api/vote", services[0].addr);
    let load = generate(&vote_url, params).await?;
    let acked = load.acks.len() as i64;
    let target = base + acked;
    clients
        .wait_all(|t| t >= target, "the last vote on every client")
        .await?;
    let _ = stop_sampling.send(true);
    let load_rss = sampler.await?;
    for ((m, s), rss) in memory.iter_mut().zip(&services).zip(load_rss) {
        m.load_rss_kib = rss;
        m.peak_hwm_kib = s.proc.memory()?.hwm_kib;
    }
    for service in &mut services {
        service.proc.ensure_running()?;
    }
    let events = clients.stop().await?;
    drop(services);
    infra.drop_db(DATABASE).await?;

    let (mut samples, missing) = latencies(&load.acks, &events, base);
    if samples.is_empty() {
        bail!("no latency samples: no vote was acknowledged");
    }
    samples.sort_unstable();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        f64::from(samples[i]) / 1000.0
    };
    Ok(Outcome {
        votes_sent: load.sent,
        votes_acked: acked as u64,
        vote_errors: load.errors,
        rate: load.sent as f64 / load.elapsed.as_secs_f64(),
        clients: events.len(),
        samples: samples.len(),
        missing,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        memory,
    })
}

/// For each vote k and client: when the client first saw a total of at
/// least `base + k`, minus when vote k was acknowledged, in microseconds
/// (0 if the event came first). Also counts pairs that never arrived.
fn latencies(acks: &[Instant], events: &[Seen], base: i64) -> (Vec<u32>, usize) {
    let mut samples = Vec::with_capacity(acks.len() * events.len());
    let mut missing = 0;
    for client in events {
        let mut i = 0;
        for (k, ack) in acks.iter().enumerate() {
            let target = base + k as i64 + 1;
            while i < client.len() && client[i].0 < target {
                i += 1;
            }
            match client.get(i) {
                Some((_, seen)) => {
                    let us = seen.saturating_duration_since(*ack).as_micros();
                    samples.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                None => missing += 1,
            }
        }
    }
    (samples, missing)
}

/// The vote load: acknowledgement times, in the order they happened.
struct Load {
    acks: Vec<Instant>,
    sent: u64,
    errors: u64,
    elapsed: Duration,
}

/// `POST /api/vote` without a cookie at `params.vote_rate` per second.
async fn generate(url: &str, params: &Params) -> anyhow::Result<Load> {
    let total = u64::from(params.vote_rate) * params.vote_duration.as_secs();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let acks = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicI64::new(0));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / params.vote_rate);
    let started = Instant::now();
    for _ in 0..total {
        ticks.tick().await;
        let permit = slots.clone().acquire_owned().await?;
        let (http, url, acks, errors) =
            (http.clone(), url.to_owned(), acks.clone(), errors.clone());
        tokio::spawn(async move {
            let ok = match http
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"vote":"a"}"#)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    let at = Instant::now();
                    r.bytes()
                        .await
                        .is_ok_and(|b| b.windows(15).any(|w| w == br#""recorded":true"#))
                        && { acks.lock().map(|mut a| a.push(at)).is_ok() }
                }
                _ => false,
            };
            if !ok {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    let elapsed = started.elapsed();
    let _all = slots.acquire_many(IN_FLIGHT as u32).await?;
    let mut acks = std::mem::take(&mut *acks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    acks.sort_unstable();
    Ok(Load {
        acks,
        sent: total,
        errors: u64::try_from(errors.load(Ordering::Relaxed)).unwrap_or(0),
        elapsed,
    })
}

/// Samples each process's VmRSS until told to stop; returns the maxima.
async fn sample_memory(pids: Vec<u32>, mut stop: watch::Receiver<bool>) -> Vec<u64> {
    let mut max = vec![0; pids.len()];
    // Bounded like every loop here: at most 10 minutes of samples.
    for _ in 0..3000 {
        for (m, pid) in max.iter_mut().zip(&pids) {
            if let Ok(mem) = Memory::of(*pid) {
                *m = (*m).max(mem.rss_kib);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    max
}

/// What one SSE client saw: each tally's total and when it arrived.
type Seen = Vec<(i64, Instant)>;

/// The SSE clients: each records `(total, arrival)` for every event.
struct Clients {
    /// The latest total each client has seen (-1 before its first event).
    latest: Arc<Vec<AtomicI64>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<Seen>>>,
}

impl Clients {
    async fn connect(url: &str, count: usize) -> anyhow::Result<Clients> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        let latest = Arc::new((0..count).map(|_| AtomicI64::new(-1)).collect::<Vec<_>>());
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..count)
            .map(|i| {
                let (http, url, latest, stopped) = (
                    http.clone(),
                    url.to_owned(),
                    latest.clone(),
                    stopped.clone(),
                );
                tokio::spawn(async move { listen(http, url, latest, i, stopped).await })
            })
            .collect();
        Ok(Clients {
            latest,
            stop,
            tasks,
        })
    }

    /// Waits until every client's latest total satisfies `ok`; returns the
    /// smallest latest total.
    async fn wait_all(&self, ok: impl Fn(i64) -> bool, what: &str) -> anyhow::Result<i64> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let totals: Vec<i64> = self
                .latest
                .iter()
                .map(|t| t.load(Ordering::Relaxed))
                .collect();
            if totals.iter().all(|t| ok(*t)) {
                return Ok(totals.into_iter().min().unwrap_or(0));
            }
            if let Some(task) = self.tasks.iter().find(|t| t.is_finished()) {
                bail!("an SSE client ended early (waiting for {what}): {task:?}");
            }
            if Instant::now() > deadline {
                let behind = totals.iter().filter(|t| !ok(**t)).count();
                bail!("{behind} SSE clients still waiting for {what} after {SETTLE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<Vec<Seen>> {
        let _ = self.stop.send(true);
        let mut all = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            all.push(task.await.context("an SSE client panicked")??);
        }
        Ok(all)
    }
}

/// One client: reads `/events` until stopped, recording each tally.
async fn listen(
    http: reqwest::Client,
    url: String,
    latest: Arc<Vec<AtomicI64>>,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Seen> {
    let response = http.get(&url).send().await?.error_for_status()?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut seen = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = stop.changed() => return Ok(seen),
        };
        let Some(chunk) = chunk else {
            bail!("the event stream ended");
        };
        let at = Instant::now();
        buffer.push_str(std::str::from_utf8(&chunk?).context("event stream is not UTF-8")?);
        // Events end with a blank line; a chunk may hold several, or half of one.
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(total) = tally_total(&event) {
                seen.push((total, at));
                latest[index].store(total, Ordering::Relaxed);
            }
        }
    }
}

/// The `total` of a `tally` event; `None` for keep-alives and other events.
fn tally_total(event: &str) -> Option<i64> {
    let mut is_tally = false;
    let mut data = None;
    for line in event.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            is_tally = name.trim() == TALLY_EVENT;
        } else if let Some(d) = line.strip_prefix("data:") {
            data = Some(d.trim());
        }
    }
    let value: serde_json::Value = serde_json::from_str(data.filter(|_| is_tally)?).ok()?;
    value["total"].as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tally_events_only() {
        let event = "event: tally\ndata: {\"options\":[],\"total\":42}\n\n";
        assert_eq!(tally_total(event), Some(42));
        assert_eq!(tally_total(": keep-alive\n\n"), None);
        assert_eq!(tally_total("event: other\ndata: {\"total\":1}\n\n"), None);
    }

    #[test]
    fn pairs_each_vote_with_the_first_event_that_shows_it() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let acks = [ms(10), ms(20), ms(30)];
        // Base 5: the client saw 6 at 50 ms and 8 at 100 ms; vote 3 never came.
        let events = vec![vec![(5, ms(0)), (6, ms(50)), (7, ms(100))]];
        let (samples, missing) = latencies(&acks, &events, 5);
        assert_eq!(samples, vec![40_000, 80_000]);
        assert_eq!(missing, 1);
    }
}
