//! One line of the load log per request: what was asked and what came back.

use anyhow::{bail, Context};

/// A vote request and its outcome. A voter is used by one task at a time,
/// so a voter's records, ordered by `start_ms`, are the order of their votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the request was sent and answered (or failed), in ms since the
    /// Unix epoch, so that shell scripts can compare them with `date +%s%3N`.
    pub start_ms: u64,
    pub end_ms: u64,
    /// The HTTP status, or 0 when no answer came (connection error, timeout).
    pub status: u16,
    /// The service said "recorded": status 200 with `"recorded":true`.
    pub acked: bool,
    /// The voter's id (the `voter_id` cookie), `None` when a new voter's
    /// request got no cookie back.
    pub voter: Option<String>,
    /// 'a' or 'b'.
    pub vote: char,
}

impl Record {
    /// The log line: `start end status acked voter vote`.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.start_ms,
            self.end_ms,
            self.status,
            u8::from(self.acked),
            self.voter.as_deref().unwrap_or("-"),
            self.vote
        )
    }

    pub fn parse(line: &str) -> anyhow::Result<Record> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [start, end, status, acked, voter, vote] = fields[..] else {
            bail!("expected 6 fields, got {}", fields.len());
        };
        let vote = match vote {
            "a" => 'a',
            "b" => 'b',
            other => bail!("vote must be a or b, got {other:?}"),
        };
        Ok(Record {
            start_ms: start.parse().context("start")?,
            end_ms: end.parse().context("end")?,
            status: status.parse().context("status")?,
            acked: match acked {
                "1" => true,
                "0" => false,
                other => bail!("acked must be 0 or 1, got {other:?}"),
            },
            voter: (voter != "-").then(|| voter.to_owned()),
            vote,
        })
    }
}

/// Parses a whole log; names the line of the first bad one.
pub fn parse_log(text: &str) -> anyhow::Result<Vec<Record>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| Record::parse(l).with_context(|| format!("load log line {}", n + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips() {
        let record = Record {
            start_ms: 1,
            end_ms: 2,
            status: 200,
            acked: true,
            voter: Some("ab".repeat(16)),
            vote: 'b',
        };
        assert_eq!(Record::parse(&record.to_line()).expect("parses"), record);
        let anonymous = Record {
            voter: None,
            acked: false,
            status: 0,
            ..record
        };
        assert_eq!(
            Record::parse(&anonymous.to_line()).expect("parses"),
            anonymous
        );
    }

    #[test]
    fn bad_lines_are_named() {
        for bad in [
            "1 2 200 1 x",
            "1 2 200 1 x c",
            "1 2 200 2 x a",
            "x 2 200 1 x a",
        ] {
            assert!(Record::parse(bad).is_err(), "{bad}");
        }
        let err = parse_log("1 2 200 1 x a\n\n1 2 200 1 x z\n").expect_err("must fail");
        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
    }
}
