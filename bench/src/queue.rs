//! The worker benchmark's input: a deterministic list of votes, queued on
//! the stream in pipelined `XADD`s, and the wait until a group has drained it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::queue::{self, EntryId};
use common::{Choice, VoterId};
use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::services::Service;

/// `XADD`s per pipeline: big enough to amortise round trips, small enough
/// to keep each reply well under a second.
const PIPELINE: usize = 10_000;
/// Entries per stream millisecond of the generated ids.
const PER_MS: usize = 100;

/// One queued vote, with the stream id it is given.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: EntryId,
    pub voter: VoterId,
    pub choice: Choice,
}

/// A small, fixed pseudo-random sequence (splitmix64): the same input every
/// run, without a dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias of `%` is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `entries` votes from exactly `voters` distinct voters, the repeat votes
/// (changed minds, or the same choice again) spread over the whole stream.
pub fn generate(entries: usize, voters: usize) -> anyhow::Result<Vec<Entry>> {
    if voters == 0 || voters > entries {
        bail!("need 0 < voters <= entries, got {voters} voters for {entries} entries");
    }
    let mut rng = Rng(0x5357_4152_4d56_4f54);
    let base_ms = 1_700_000_000_000_i64;
    let mut known: Vec<VoterId> = Vec::with_capacity(voters);
    let mut out = Vec::with_capacity(entries);
    for i in 0..entries {
        // A new voter with the probability that leaves exactly `voters` at the end.
        let new_left = voters - known.len();
        let voter = if new_left > 0 && rng.below(entries - i) < new_left {
            let hex = format!("{:016x}{:016x}", rng.next(), rng.next());
            let id = VoterId::parse(&hex).context("generated voter id")?;
            known.push(id.clone());
            id
        } else {
            known[rng.below(known.len())].clone()
        };
        let choice = if rng.next() & 1 == 0 {
            Choice::A
        } else {
            Choice::B
        };
        out.push(Entry {
            id: EntryId {
                ms: base_ms + (i / PER_MS) as i64,
                seq: (i % PER_MS) as i64,
            },
            voter,
            choice,
        });
    }
    Ok(out)
}

/// What PostgreSQL must hold once every entry is stored: each voter's
/// last vote, counted per option.
pub fn expected_totals(entries: &[Entry]) -> (i64, i64) {
    let mut last = std::collections::HashMap::with_capacity(entries.len());
    for e in entries {
        last.insert(e.voter.as_str(), e.choice);
    }
    let a = last.values().filter(|c| **c == Choice::A).count() as i64;
    (a, last.len() as i64 - a)
}

/// Appends every entry to the stream, with its own id.
pub async fn fill(conn: &mut MultiplexedConnection, entries: &[Entry]) -> anyhow::Result<()> {
    for chunk in entries.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for e in chunk {
            pipe.cmd("XADD")
                .arg(queue::STREAM)
                .arg(e.id.to_string())
                .arg(&queue::encode(&e.voter, e.choice)[..])
                .ignore();
        }
        let () = pipe
            .query_async(conn)
            .await
            .context("while queueing votes")?;
    }
    Ok(())
}

/// The group's view of the stream: `None` while the group does not exist.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub last_delivered: String,
    pub pending: i64,
    /// `None` when Redis cannot tell (it then answers nil).
    pub lag: Option<i64>,
}

pub async fn group_state(conn: &mut MultiplexedConnection) -> anyhow::Result<Option<GroupState>> {
    let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(queue::STREAM)
        .query_async(conn)
        .await;
    let groups = match reply {
        Ok(Value::Array(groups)) => groups,
        Ok(_) => return Ok(None),
        // No stream yet: the worker has not created it.
        Err(e) if e.code() == Some("ERR") => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for group in groups {
        let Value::Array(flat) = group else { continue };
        let mut state = GroupState::default();
        let mut name = String::new();
        for pair in flat.chunks_exact(2) {
            let key = text(&pair[0]).unwrap_or_default();
            match key.as_str() {
                "name" => name = text(&pair[1]).unwrap_or_default(),
                "last-delivered-id" => state.last_delivered = text(&pair[1]).unwrap_or_default(),
                "pending" => state.pending = int(&pair[1]).unwrap_or(-1),
                "lag" => state.lag = int(&pair[1]),
                _ => {}
            }
        }
        if name == queue::GROUP {
            return Ok(Some(state));
        }
    }
    Ok(None)
}

/// Waits until the group has delivered `last` and nothing is pending, that
/// is until every entry is committed and acknowledged. Polls every 10 ms,
/// fails if a worker dies or `timeout` passes. Returns when it happened.
pub async fn wait_drained(
    conn: &mut MultiplexedConnection,
    last: EntryId,
    workers: &mut [Service],
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let last = last.to_string();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(state) = group_state(conn).await? {
            if state.last_delivered == last && state.pending == 0 && state.lag.unwrap_or(0) == 0 {
                return Ok(Instant::now());
            }
        }
        for worker in workers.iter_mut() {
            worker.proc.ensure_running()?;
        }
        if Instant::now() > deadline {
            bail!(
                "the queue was not drained within {timeout:?}: {:?}",
                group_state(conn).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
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

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_asked_mix_in_stream_order() {
        let entries = generate(10_000, 8_000).expect("valid sizes");
        assert_eq!(entries.len(), 10_000);
        let voters: std::collections::HashSet<_> = entries.iter().map(|e| &e.voter).collect();
        assert_eq!(voters.len(), 8_000);
        assert!(entries.windows(2).all(|w| w[0].id < w[1].id));
        // Repeats are spread out, not all at the end.
        let first_half: std::collections::HashSet<_> =
            entries[..5_000].iter().map(|e| &e.voter).collect();
        assert!(first_half.len() < 5_000);
        let (a, b) = expected_totals(&entries);
        assert_eq!(a + b, 8_000);
        assert!(a > 3_000 && b > 3_000);
    }
}
