//! The Redis side of the worker: reading, claiming, acknowledging and
//! trimming the `votes` stream through its consumer group.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use common::queue::{self, EntryId, Malformed};
use common::redis_conn::RedisConfig;
use redis::aio::MultiplexedConnection;
use redis::Value;

/// An entry as read, before validation. `fields` is `None` for an entry that
/// is still pending but was deleted from the stream.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub id: String,
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Consumer consumers with nothing pending and idle this long are removed, so
/// the group does not collect one consumer per restart forever.
const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(3600);

/// One worker's connection to the stream. Every method drops the
/// connection on error; the next call reconnects (re-resolving the host).
pub struct Stream {
    config: RedisConfig,
    consumer: String,
    conn: Option<MultiplexedConnection>,
    response_timeout: Duration,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("consumer", &self.consumer)
            .finish()
    }
}

impl Stream {
    pub fn new(config: RedisConfig, consumer: String, block: Duration) -> Stream {
        Stream {
            config,
            consumer,
            conn: None,
            // A blocking read holds the connection for `block`.
            response_timeout: block + Duration::from_secs(5),
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Connects if needed, creating the stream and group on first use (and
    /// again after a Redis that lost its data).
    async fn conn(&mut self) -> anyhow::Result<MultiplexedConnection> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let mut conn = self
            .config
            .connect(self.response_timeout)
            .await
            .with_context(|| {
                format!(
                    "while connecting to Redis at {}:{}",
                    self.config.host, self.config.port
                )
            })?;
        create_group(&mut conn).await?;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a command, dropping the connection when it fails. A `NOGROUP`
    /// error (Redis restarted empty) recreates the group on reconnect.
    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        match cmd.query_async(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                self.conn = None;
                Err(anyhow!(e).context("Redis command failed"))
            }
        }
    }

    /// New entries for this consumer, waiting up to `block` for some.
    pub async fn read_new(
        &mut self,
        count: usize,
        block: Duration,
    ) -> anyhow::Result<Vec<RawEntry>> {
        self.read_group(count, Some(block), ">").await
    }

    /// New entries for this consumer that are already there, without waiting.
    pub async fn read_available(&mut self, count: usize) -> anyhow::Result<Vec<RawEntry>> {
        self.read_group(count, None, ">").await
    }

    /// Whether the set of voters from before signed ids is complete.
    pub async fn legacy_voters_loaded(&mut self) -> anyhow::Result<bool> {
        self.query(redis::cmd("EXISTS").arg(queue::LEGACY_VOTERS_LOADED))
            .await
    }

    /// Adds ids to the set of voters from before signed ids.
    pub async fn add_legacy_voters(&mut self, ids: &[String]) -> anyhow::Result<()> {
        if !ids.is_empty() {
            let _: i64 = self
                .query(redis::cmd("SADD").arg(queue::LEGACY_VOTERS).arg(ids))
                .await?;
        }
        Ok(())
    }

    /// Marks that set complete, with the time (ms since the epoch); returns
    /// how many ids it holds.
    pub async fn mark_legacy_voters_loaded(&mut self, now_ms: u128) -> anyhow::Result<usize> {
        let _: () = self
            .query(
                redis::cmd("SET")
                    .arg(queue::LEGACY_VOTERS_LOADED)
                    .arg(now_ms.to_string()),
            )
            .await?;
        self.query(redis::cmd("SCARD").arg(queue::LEGACY_VOTERS))
            .await
    }

    /// The voter ids of up to `count` queued entries after entry `after`
    /// (`None`: from the start), and the last entry's id (`None` at the
    /// end). Entries without a well-formed voter are skipped.
    pub async fn queued_voters(
        &mut self,
        after: Option<&str>,
        count: usize,
    ) -> anyhow::Result<(Vec<String>, Option<String>)> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        type Entries = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;
        let entries: Entries = self
            .query(
                redis::cmd("XRANGE")
                    .arg(queue::STREAM)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        let last = entries.last().map(|(id, _)| id.clone());
        let voters = entries
            .iter()
            .filter_map(|(id, fields)| queue::decode(id, fields).ok())
            .map(|entry| entry.voter.as_str().to_owned())
            .collect();
        Ok((voters, last))
    }

    /// Entries delivered to this consumer and not yet acknowledged, after
    /// `after`: what a failed step left behind.
    pub async fn read_own_pending(
        &mut self,
        count: usize,
        after: &str,
    ) -> anyhow::Result<Vec<RawEntry>> {
        self.read_group(count, None, after).await
    }

    /// `XREADGROUP` from `id`: `>` for new entries, an id for this
    /// consumer's pending ones.
    async fn read_group(
        &mut self,
        count: usize,
        block: Option<Duration>,
        id: &str,
    ) -> anyhow::Result<Vec<RawEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(queue::GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX));
        }
        cmd.arg("STREAMS").arg(queue::STREAM).arg(id);
        let value: Value = self.query(&cmd).await?;
        parse_read_reply(&value)
    }

    /// Takes over entries idle for `min_idle` on any consumer. Returns the
    /// entries and the cursor for the next call (`0-0` when the scan is done).
    pub async fn claim_idle(
        &mut self,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> anyhow::Result<(String, Vec<RawEntry>)> {
        let idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let value: Value = self
            .query(
                redis::cmd("XAUTOCLAIM")
                    .arg(queue::STREAM)
                    .arg(queue::GROUP)
                    .arg(&self.consumer)
                    .arg(idle_ms)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        let Value::Array(parts) = value else {
            bail!("unexpected XAUTOCLAIM reply");
        };
        let next = parts
            .first()
            .and_then(text)
            .unwrap_or_else(|| "0-0".to_owned());
        let entries = match parts.get(1) {
            Some(v) => parse_entries(v)?,
            None => Vec::new(),
        };
        Ok((next, entries))
    }

    /// Acknowledges entries; only ever called after their commit.
    pub async fn ack(&mut self, ids: &[&str]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: i64 = self
            .query(
                redis::cmd("XACK")
                    .arg(queue::STREAM)
                    .arg(queue::GROUP)
                    .arg(ids),
            )
            .await?;
        Ok(())
    }

    /// Moves a malformed entry to the dead-letter stream and acknowledges
    /// it, atomically, so it is neither lost nor retried forever.
    pub async fn dead_letter(&mut self, entry: &RawEntry, reason: Malformed) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        let xadd = pipe
            .atomic()
            .cmd("XADD")
            .arg(queue::DEAD_LETTER_STREAM)
            // The dead-letter stream is for people: keep the newest 100k.
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("original_id")
            .arg(&entry.id)
            .arg("reason")
            .arg(reason.label())
            .arg("consumer")
            .arg(&self.consumer);
        for (key, value) in entry.fields.iter().flatten().take(32) {
            xadd.arg(
                b"field:"
                    .iter()
                    .chain(key.iter())
                    .copied()
                    .collect::<Vec<u8>>(),
            )
            .arg(value);
        }
        pipe.cmd("XACK")
            .arg(queue::STREAM)
            .arg(queue::GROUP)
            .arg(&entry.id)
            .ignore();
        let result: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(e) = result {
            self.conn = None;
            return Err(anyhow!(e).context("while moving an entry to the dead-letter stream"));
        }
        Ok(())
    }

    /// Removes acknowledged entries from the stream and reports the queue
    /// depth. Everything below both the oldest pending entry and the group's
    /// last delivered id has been acknowledged. The group is read *before*
    /// the pending list, in one pipeline: an entry at or below that last
    /// delivered id that is still unacknowledged is then in the pending list
    /// read after it, so nothing delivered but unacknowledged is ever
    /// trimmed. (Not a `MULTI`: Redis refuses every command of a
    /// transaction at its memory limit, when trimming matters most.)
    pub async fn trim(&mut self) -> anyhow::Result<i64> {
        let mut conn = self.conn().await?;
        let result: redis::RedisResult<(Value, Value, i64)> = redis::pipe()
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(queue::STREAM)
            .cmd("XPENDING")
            .arg(queue::STREAM)
            .arg(queue::GROUP)
            .cmd("XLEN")
            .arg(queue::STREAM)
            .query_async(&mut conn)
            .await;
        let (groups, pending, len) = match result {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(anyhow!(e).context("while reading the group's state"));
            }
        };
        let group =
            find_group(&groups).ok_or_else(|| anyhow!("group {} not found", queue::GROUP))?;
        let last_delivered: EntryId = group
            .get("last-delivered-id")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("group without last-delivered-id"))?;
        let oldest_pending = match &pending {
            Value::Array(parts) => parts.get(1).and_then(text).and_then(|s| s.parse().ok()),
            _ => None,
        };
        let keep_from = match oldest_pending {
            Some(p) if p <= last_delivered => p,
            _ => last_delivered.successor(),
        };
        let _: i64 = self
            .query(
                redis::cmd("XTRIM")
                    .arg(queue::STREAM)
                    .arg("MINID")
                    .arg("~")
                    .arg(keep_from.to_string()),
            )
            .await?;
        let depth = match (
            group.get("lag").and_then(|v| v.parse::<i64>().ok()),
            group.get("pending"),
        ) {
            (Some(lag), Some(p)) => lag + p.parse::<i64>().unwrap_or(0),
            _ => len,
        };
        Ok(depth)
    }

    /// Removes consumers with nothing pending that have been idle for an
    /// hour: the names of workers that stopped.
    pub async fn forget_idle_consumers(&mut self) -> anyhow::Result<usize> {
        let value: Value = self
            .query(
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(queue::STREAM)
                    .arg(queue::GROUP),
            )
            .await?;
        let Value::Array(consumers) = value else {
            return Ok(0);
        };
        let mut removed = 0;
        for consumer in consumers.iter().filter_map(fields_map) {
            let idle_ms: u64 = consumer
                .get("idle")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let pending: u64 = consumer
                .get("pending")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let Some(name) = consumer.get("name") else {
                continue;
            };
            if pending == 0
                && idle_ms > FORGET_CONSUMER_AFTER.as_millis() as u64
                && *name != self.consumer
            {
                let _: i64 = self
                    .query(
                        redis::cmd("XGROUP")
                            .arg("DELCONSUMER")
                            .arg(queue::STREAM)
                            .arg(queue::GROUP)
                            .arg(name),
                    )
                    .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Creates the stream and the group, from the start of the stream so that
/// votes queued before any worker ever ran are not skipped.
///
/// When the group is there already, nothing is written: `XGROUP CREATE` is
/// refused (`OOM`) while Redis is at its memory limit, and the worker is
/// what frees that memory, so a reconnect must not depend on it.
async fn create_group(conn: &mut MultiplexedConnection) -> anyhow::Result<()> {
    let groups: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
        redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(queue::STREAM)
            .query_async(conn)
            .await;
    let exists = groups.is_ok_and(|groups| {
        groups.iter().any(|g| {
            g.get("name").is_some_and(|n| {
                redis::from_redis_value::<String>(n.clone()).is_ok_and(|n| n == queue::GROUP)
            })
        })
    });
    if exists {
        return Ok(());
    }
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(queue::STREAM)
        .arg(queue::GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(anyhow!(e).context("while creating the consumer group")),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A flat `[key, value, ...]` reply (XINFO) as a map of printable values.
fn fields_map(value: &Value) -> Option<std::collections::HashMap<String, String>> {
    let pairs: Vec<(&Value, &Value)> = match value {
        Value::Array(items) => items.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    Some(
        pairs
            .into_iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v).unwrap_or_default())))
            .collect(),
    )
}

fn find_group(groups: &Value) -> Option<std::collections::HashMap<String, String>> {
    let Value::Array(groups) = groups else {
        return None;
    };
    groups
        .iter()
        .filter_map(fields_map)
        .find(|g| g.get("name").map(String::as_str) == Some(queue::GROUP))
}

/// Parses an XREADGROUP reply: `[[stream, [entry, ...]]]`, or nil on timeout.
fn parse_read_reply(value: &Value) -> anyhow::Result<Vec<RawEntry>> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.first() {
            Some(Value::Array(stream)) if stream.len() == 2 => parse_entries(&stream[1]),
            None => Ok(Vec::new()),
            _ => bail!("unexpected XREADGROUP reply"),
        },
        Value::Map(streams) => match streams.first() {
            Some((_, entries)) => parse_entries(entries),
            None => Ok(Vec::new()),
        },
        _ => bail!("unexpected XREADGROUP reply"),
    }
}

/// Parses `[[id, [field, value, ...] | nil], ...]`.
fn parse_entries(value: &Value) -> anyhow::Result<Vec<RawEntry>> {
    let Value::Array(items) = value else {
        bail!("unexpected entry list");
    };
    items
        .iter()
        .map(|item| {
            let Value::Array(parts) = item else {
                bail!("unexpected entry");
            };
            let id = parts
                .first()
                .and_then(text)
                .ok_or_else(|| anyhow!("entry without id"))?;
            let fields = match parts.get(1) {
                Some(Value::Array(flat)) => Some(
                    flat.chunks(2)
                        .map(|pair| {
                            let bytes = |v: Option<&Value>| match v {
                                Some(Value::BulkString(b)) => b.clone(),
                                Some(other) => text(other).unwrap_or_default().into_bytes(),
                                None => Vec::new(),
                            };
                            (bytes(pair.first()), bytes(pair.get(1)))
                        })
                        .collect(),
                ),
                _ => None,
            };
            Ok(RawEntry { id, fields })
        })
        .collect()
}
