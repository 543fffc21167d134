//! The load: voters at a steady rate over HTTPS, some of them changing their
//! vote, every answer recorded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::Rng;
use tokio::time::{Instant, MissedTickBehavior};

use crate::record::Record;

/// What to send, where, and how much.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The vote API, e.g. `https://vote.localhost:18443/api/vote`.
    pub url: reqwest::Url,
    /// Where the URL's host name is reached (127.0.0.1 and Traefik's port),
    /// so no DNS entry is needed for it.
    pub connect: Option<SocketAddr>,
    /// The CA the deployment's certificate is checked against.
    pub ca: PathBuf,
    /// Votes per second, all tasks together.
    pub rate: f64,
    pub duration: Duration,
    /// Concurrent voters in flight.
    pub tasks: usize,
    /// Share of votes that change an earlier voter's vote (0..=1).
    pub change_share: f64,
    /// Bound on one request.
    pub timeout: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn client(plan: &Plan) -> anyhow::Result<reqwest::Client> {
    let pem =
        std::fs::read(&plan.ca).with_context(|| format!("reading the CA {}", plan.ca.display()))?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).context("parsing the CA")?)
        .timeout(plan.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let (Some(addr), Some(host)) = (plan.connect, plan.url.host_str()) {
        builder = builder.resolve(host, addr);
    }
    builder.build().context("building the HTTP client")
}

/// Sends the load; returns every request's record, ordered by start.
pub async fn run(plan: Plan) -> anyhow::Result<Vec<Record>> {
    let client = client(&plan)?;
    let deadline = Instant::now() + plan.duration;
    let tasks = plan.tasks.max(1);
    let period = Duration::from_secs_f64(tasks as f64 / plan.rate.max(0.001));
    let mut handles = Vec::with_capacity(tasks);
    for n in 0..tasks {
        let (client, plan) = (client.clone(), plan.clone());
        // Spread the tasks over one period so that the load is even.
        let offset = period.mul_f64(n as f64 / tasks as f64);
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            voter_task(client, plan, period, deadline).await
        }));
    }
    let mut records = Vec::new();
    for handle in handles {
        records.extend(handle.await.context("a voter task panicked")?);
    }
    records.sort_by_key(|r| r.start_ms);
    Ok(records)
}

/// One task: votes every `period` until `deadline`, as a new voter or as one
/// of its own earlier voters (each voter belongs to one task, so a voter's
/// votes never overlap).
async fn voter_task(
    client: reqwest::Client,
    plan: Plan,
    period: Duration,
    deadline: Instant,
) -> Vec<Record> {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut voters: Vec<(String, char)> = Vec::new();
    let mut records = Vec::new();
    while Instant::now() < deadline {
        ticker.tick().await;
        let (known, vote) = {
            let mut rng = rand::rng();
            if !voters.is_empty() && rng.random_bool(plan.change_share.clamp(0.0, 1.0)) {
                let i = rng.random_range(0..voters.len());
                let (id, last) = &voters[i];
                (Some((i, id.clone())), if *last == 'a' { 'b' } else { 'a' })
            } else {
                (None, if rng.random_bool(0.5) { 'a' } else { 'b' })
            }
        };
        let (record, issued) = vote_once(
            &client,
            &plan.url,
            known.as_ref().map(|(_, cookie)| cookie.as_str()),
            vote,
        )
        .await;
        match known {
            Some((i, _)) => voters[i].1 = vote,
            None => {
                if let Some(cookie) = issued {
                    voters.push((cookie, vote));
                }
            }
        }
        records.push(record);
    }
    records
}

/// The voter id in a `voter_id` cookie's value (`<id>.<signature>`): what
/// PostgreSQL stores, and so what the audit compares.
fn id_in(cookie: &str) -> String {
    cookie.split('.').next().unwrap_or_default().to_owned()
}

/// One vote as the voter whose `voter_id` cookie is `voter` (a new voter
/// when `None`); never fails: a failure is a record with `acked: false`.
/// Also returns the cookie value the service issued, if any.
async fn vote_once(
    client: &reqwest::Client,
    url: &reqwest::Url,
    voter: Option<&str>,
    vote: char,
) -> (Record, Option<String>) {
    let start_ms = now_ms();
    let mut request = client
        .post(url.clone())
        .header("content-type", "application/json")
        .body(format!("{{\"vote\":\"{vote}\"}}"));
    if let Some(id) = voter {
        request = request.header("cookie", format!("voter_id={id}"));
    }
    let (status, acked, issued) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let issued = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.strip_prefix("voter_id="))
                .map(|v| {
                    v.chars()
                        .take_while(|c| c.is_ascii_hexdigit() || *c == '.')
                        .collect::<String>()
                });
            let body = response.text().await.unwrap_or_default();
            (
                status,
                status == 200 && body.contains("\"recorded\":true"),
                issued,
            )
        }
        Err(_) => (0, false, None),
    };
    let record = Record {
        start_ms,
        end_ms: now_ms(),
        status,
        acked,
        voter: voter.or(issued.as_deref()).map(id_in),
        vote,
    };
    (record, issued)
}
