//! Runs the real result service against a real PostgreSQL, and talks to it
//! over HTTP like a browser would.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use common::http::{Shutdown, ShutdownTrigger};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use result::{Config, Labels};
use testkit::Postgres;
use tokio::task::JoinHandle;

/// Long enough for a reconnect after the longest backoff, on a slow machine.
/// Only ever waited for, never expected to pass.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The result service, running in this process on a port of its own.
#[derive(Debug)]
pub struct App {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    trigger: ShutdownTrigger,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

/// Settings pointing at `pg`, polling every `poll_ms`.
pub fn config(pg: &Postgres, a: &str, b: &str, poll_ms: u64) -> Config {
    Config {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        labels: Labels {
            a: a.to_owned(),
            b: b.to_owned(),
        },
        poll_interval: Duration::from_millis(poll_ms),
        postgres: pg.config(),
        max_streams: 2000,
    }
}

impl App {
    pub async fn spawn(config: Config) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a local address");
        let (trigger, shutdown) = Shutdown::new();
        let handle = tokio::spawn(result::run(config, listener, shutdown));
        App {
            addr,
            http: reqwest::Client::new(),
            trigger,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("the service answers")
    }

    /// Status and body of a GET.
    pub async fn text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// Waits until `/api/results` reports `a` and `b` votes.
    pub async fn wait_for_counts(&self, a: i64, b: i64) -> serde_json::Value {
        testkit::eventually(PATIENCE, &format!("{a} and {b} votes"), || async {
            let (status, body) = self.text("/api/results").await;
            let value: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && votes(&value) == (a, b)).then_some(value)
        })
        .await
    }

    pub async fn wait_for_status(&self, path: &str, status: u16) {
        testkit::eventually(PATIENCE, &format!("{path} to answer {status}"), || async {
            (self.get(path).await.status().as_u16() == status).then_some(())
        })
        .await;
    }

    /// The value of one metric without labels, as `/metrics` shows it.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.text("/metrics").await;
        let full = format!("swarmvote_result_{name} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&full))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
    }

    /// Fires shutdown and waits for `run` to return.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.fire();
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("run returns after shutdown")
            .expect("run does not panic")
    }
}

/// `(a, b)` from a tally's JSON.
pub fn votes(tally: &serde_json::Value) -> (i64, i64) {
    let get = |i: usize| tally["options"][i]["votes"].as_i64().unwrap_or(-1);
    (get(0), get(1))
}

/// A PostgreSQL with the schema in place, as the worker would leave it.
pub async fn migrated_postgres() -> Postgres {
    let pg = Postgres::start();
    migrate(&pg).await;
    pg
}

pub async fn migrate(pg: &Postgres) {
    let mut client = pg.config().connect("test").await.expect("connect");
    common::schema::migrate(&mut client).await.expect("migrate");
}

/// Sets the tally directly, as the worker's writes would.
pub fn set_counts(pg: &Postgres, a: i64, b: i64) {
    pg.psql(&format!(
        "UPDATE totals SET votes = CASE vote WHEN 'a' THEN {a} ELSE {b} END"
    ));
}

/// One Server-Sent Events message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// A client of `/events` that parses the stream as EventSource does (enough
/// of it for these tests: `event:`, `data:`, and `:` comments).
pub struct SseClient {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for SseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseClient").finish_non_exhaustive()
    }
}

impl SseClient {
    pub async fn connect(app: &App) -> SseClient {
        let response = app.get("/events").await;
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        SseClient {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
        }
    }

    /// The next message with data, skipping keep-alive comments; `None`
    /// when the server ended the stream cleanly. Panics on a broken stream.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let frame = String::from_utf8(frame).expect("UTF-8 events");
                if let Some(event) = parse(&frame) {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => panic!("the event stream broke: {e}"),
                None => return None,
            }
        }
    }

    /// The next `tally` event's JSON, waiting at most [`PATIENCE`].
    pub async fn next_tally(&mut self) -> serde_json::Value {
        let event = tokio::time::timeout(PATIENCE, self.next_event())
            .await
            .expect("a tally event in time")
            .expect("the stream is still open");
        assert_eq!(event.event.as_deref(), Some(result::TALLY_EVENT));
        serde_json::from_str(&event.data).expect("tally data is JSON")
    }
}

fn parse(frame: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = Some(value.trim_start().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    data.map(|data| SseEvent { event, data })
}
