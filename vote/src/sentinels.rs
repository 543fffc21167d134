//! Watches the Sentinels and the primary they name, for the acknowledgement
//! rule in [`common::sentinel`].
//!
//! Every [`POLL_INTERVAL`] each Sentinel is asked for the primary and its
//! replicas, and the node that `REDIS_HOST` (HAProxy) reaches for its
//! `INFO server` and `INFO replication`, all at once, each on its own
//! connection with a short timeout. The latest [`Observation`] is
//! published on a watch channel; the recorder reads it when it decides, so
//! deciding costs no round trip. vote never connects to a Redis node by its
//! own name: the node's `run_id` tells which node the proxy reached
//! ([`sentinel::name_of`]), so vote needs no route to the nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::Shutdown;
use common::redis_conn::RedisConfig;
use common::sentinel::{self, NodeReport, SentinelReport};
use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;

/// How often the Sentinels are asked. A failover shows within this.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest wait for one Sentinel or node to answer. A frozen or cut-off
/// Sentinel costs every poll this much.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(500);
/// An observation older than this is not trusted: nothing is acknowledged.
/// Above the longest poll (two timeouts and the interval, 1.2 s), so one
/// silent Sentinel never makes the word look stale. Staleness is not
/// what keeps votes safe (a replica that was promoted never confirms a
/// `WAIT`, however old the word); this bounds how long vote trusts
/// Sentinels it can no longer hear.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// Where the Sentinels are and what they watch.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// `host:port` of every Sentinel of the stack (`REDIS_SENTINELS`).
    pub sentinels: Vec<(String, u16)>,
    /// The name they monitor the primary under (`REDIS_MASTER_NAME`).
    pub master: String,
}

/// What the Sentinels and the named primary said at one moment.
#[derive(Debug, Clone)]
pub struct Observation {
    pub at: Instant,
    /// One entry per configured Sentinel; `None` when it did not answer.
    pub sentinels: Vec<Option<SentinelReport>>,
    /// What the node the proxy reaches said (`INFO server` and
    /// `INFO replication`), named by its `run_id`, when it answered.
    pub primary: Option<NodeReport>,
}

/// Starts the watch; the receiver always holds the latest observation
/// (`None` until the first one).
pub fn watch(
    config: SentinelConfig,
    redis: RedisConfig,
    shutdown: Shutdown,
) -> watch::Receiver<Option<Arc<Observation>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut poller = Poller {
            config,
            redis,
            connections: HashMap::new(),
            proxy: None,
        };
        while !shutdown.is_triggered() {
            let observation = poller.observe().await;
            if tx.send(Some(Arc::new(observation))).is_err() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = shutdown.clone().wait() => break,
            }
        }
    });
    rx
}

struct Poller {
    config: SentinelConfig,
    redis: RedisConfig,
    /// Open connections to the Sentinels by `host:port`; dropped on any
    /// error, so the next poll resolves the name again.
    connections: HashMap<String, MultiplexedConnection>,
    /// The connection through the proxy; dropped on any error and whenever
    /// the node it reached is not the primary a majority names.
    proxy: Option<MultiplexedConnection>,
}

impl Poller {
    async fn observe(&mut self) -> Observation {
        let at = Instant::now();
        let asks = self
            .config
            .sentinels
            .clone()
            .into_iter()
            .map(|(host, port)| {
                let conn = self.connections.get(&format!("{host}:{port}")).cloned();
                let master = self.config.master.clone();
                let redis = self.redis.clone();
                async move {
                    let key = format!("{host}:{port}");
                    let result = tokio::time::timeout(ANSWER_TIMEOUT, async {
                        let mut conn = match conn {
                            Some(c) => c,
                            None => connect(&redis, &host, port).await?,
                        };
                        let (master_fields, replicas): (
                            HashMap<String, String>,
                            Vec<HashMap<String, String>>,
                        ) = redis::pipe()
                            .cmd("SENTINEL")
                            .arg("master")
                            .arg(&master)
                            .cmd("SENTINEL")
                            .arg("replicas")
                            .arg(&master)
                            .query_async(&mut conn)
                            .await?;
                        Ok::<_, redis::RedisError>((conn, master_fields, replicas))
                    })
                    .await;
                    (key, result)
                }
            })
            .collect::<Vec<_>>();
        let proxy = self.proxy.take();
        let redis = self.redis.clone();
        let via_proxy = tokio::time::timeout(ANSWER_TIMEOUT, async move {
            let mut conn = match proxy {
                Some(c) => c,
                None => connect(&redis, &redis.host, redis.port).await?,
            };
            let info: String = redis::cmd("INFO")
                .arg("server")
                .arg("replication")
                .query_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>((conn, info))
        });
        let (answers, proxied) = tokio::join!(join_all(asks), via_proxy);
        let mut sentinels = Vec::new();
        for (key, result) in answers {
            match result {
                Ok(Ok((conn, master, replicas))) => {
                    self.connections.insert(key, conn);
                    sentinels.push(sentinel::sentinel_report(&master, &replicas));
                }
                _ => {
                    self.connections.remove(&key);
                    sentinels.push(None);
                }
            }
        }
        let primary = match proxied {
            Ok(Ok((conn, info))) => {
                let id = sentinel::run_id(&info).unwrap_or_default();
                let name = sentinel::name_of(&sentinels, id).unwrap_or_default();
                // HAProxy keeps a connection on one node: once that is not
                // the named primary, the next poll asks through a new one.
                if sentinel::named_by_majority(&sentinels) == Some(name) {
                    self.proxy = Some(conn);
                }
                Some(sentinel::node_report(name, &info))
            }
            _ => None,
        };
        Observation {
            at,
            sentinels,
            primary,
        }
    }
}

async fn connect(
    redis: &RedisConfig,
    host: &str,
    port: u16,
) -> redis::RedisResult<MultiplexedConnection> {
    let target = RedisConfig {
        host: host.to_owned(),
        port,
        connect_timeout: ANSWER_TIMEOUT,
        ..redis.clone()
    };
    target.connect(ANSWER_TIMEOUT).await
}

/// Parses `REDIS_SENTINELS`: `host:port` (or `host`, port 26379), separated
/// by commas or spaces.
pub fn parse_sentinels(text: &str) -> Result<Vec<(String, u16)>, String> {
    text.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (host, port) = match item.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        format!("{item:?}: the port is not a number from 1 to 65535")
                    })?,
                ),
                None => (item, 26379),
            };
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if valid {
                Ok((host.to_owned(), port))
            } else {
                Err(format!("{item:?} is not host:port"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_lists() {
        assert_eq!(
            parse_sentinels("sentinel-1:26379,sentinel-2 sentinel-3:1").expect("valid"),
            [
                ("sentinel-1".to_owned(), 26379),
                ("sentinel-2".to_owned(), 26379),
                ("sentinel-3".to_owned(), 1)
            ]
        );
        assert_eq!(parse_sentinels("").expect("empty is valid"), []);
        for bad in ["s:0", "s:70000", "s:x", ":26379", "a/b", "s;rm -rf"] {
            assert!(parse_sentinels(bad).is_err(), "{bad} accepted");
        }
    }
}
