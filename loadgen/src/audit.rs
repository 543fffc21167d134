//! Compares what PostgreSQL holds with what the vote service acknowledged,
//! and how long a fault kept votes from being acknowledged.

use std::collections::HashMap;

use crate::record::Record;

/// The verdict of one audit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Requests answered "recorded".
    pub acknowledged: usize,
    /// Voters with at least one acknowledged vote.
    pub voters: usize,
    /// Of those, the voters whose stored vote is their latest.
    pub found: usize,
    /// Voters with an acknowledged vote and no row at all.
    pub lost: Vec<String>,
    /// Voters whose row holds something other than their latest vote:
    /// (voter, stored, expected).
    pub wrong: Vec<(String, char, char)>,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.lost.is_empty() && self.wrong.is_empty() && self.found == self.voters
    }
}

/// Audits `records` against `stored` (voter → vote). A voter's expected vote
/// is their last acknowledged one; a request after it that was not
/// acknowledged (503, timeout) may still have been recorded -- the service
/// promised nothing either way -- so its vote is accepted too.
pub fn audit(records: &[Record], stored: &HashMap<String, char>) -> Audit {
    let mut by_voter: HashMap<&str, Vec<&Record>> = HashMap::new();
    for record in records {
        if let Some(voter) = &record.voter {
            by_voter.entry(voter).or_default().push(record);
        }
    }
    let mut result = Audit {
        acknowledged: records.iter().filter(|r| r.acked).count(),
        ..Audit::default()
    };
    for (voter, mut requests) in by_voter {
        requests.sort_by_key(|r| r.start_ms);
        let Some(last_ack) = requests.iter().rposition(|r| r.acked) else {
            continue;
        };
        result.voters += 1;
        let expected = requests[last_ack].vote;
        let Some(&got) = stored.get(voter) else {
            result.lost.push(voter.to_owned());
            continue;
        };
        let acceptable = got == expected || requests[last_ack + 1..].iter().any(|r| r.vote == got);
        if acceptable {
            result.found += 1;
        } else {
            result.wrong.push((voter.to_owned(), got, expected));
        }
    }
    result.lost.sort();
    result.wrong.sort();
    result
}

/// Parses `voter vote` lines (psql -At output with a space separator).
pub fn parse_stored(text: &str) -> anyhow::Result<HashMap<String, char>> {
    let mut stored = HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (voter, vote) = line
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("stored votes line {}: expected 'voter vote'", n + 1))?;
        let vote = match vote.trim() {
            "a" => 'a',
            "b" => 'b',
            other => anyhow::bail!("stored votes line {}: vote {other:?}", n + 1),
        };
        stored.insert(voter.to_owned(), vote);
    }
    Ok(stored)
}

/// How a fault showed to voters.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Requests answered in the window that were not acknowledged.
    pub failed: usize,
    /// From the fault to the first acknowledged vote after the last failed
    /// request of the window; 0 when none failed; `None` when no vote was
    /// acknowledged after the last failure.
    pub recovered_after_ms: Option<u64>,
}

/// Looks at the requests answered from `fault_ms` until `until_ms` (the
/// moment the fault was healed, whose own disturbance is not the fault's).
pub fn recovery(records: &[Record], fault_ms: u64, until_ms: Option<u64>) -> Recovery {
    let in_window = |r: &&Record| r.end_ms >= fault_ms && until_ms.is_none_or(|u| r.end_ms < u);
    let failures: Vec<&Record> = records
        .iter()
        .filter(in_window)
        .filter(|r| !r.acked)
        .collect();
    let Some(last_failure) = failures.iter().map(|r| r.end_ms).max() else {
        return Recovery {
            failed: 0,
            recovered_after_ms: Some(0),
        };
    };
    let first_ack = records
        .iter()
        .filter(|r| r.acked && r.end_ms > last_failure)
        .map(|r| r.end_ms)
        .min();
    Recovery {
        failed: failures.len(),
        recovered_after_ms: first_ack.map(|t| t - fault_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(start: u64, acked: bool, voter: &str, vote: char) -> Record {
        Record {
            start_ms: start,
            end_ms: start + 5,
            status: if acked { 200 } else { 503 },
            acked,
            voter: Some(voter.to_owned()),
            vote,
        }
    }

    fn stored(pairs: &[(&str, char)]) -> HashMap<String, char> {
        pairs.iter().map(|(v, c)| ((*v).to_owned(), *c)).collect()
    }

    #[test]
    fn the_latest_acknowledged_vote_must_be_stored() {
        let log = [
            rec(1, true, "x", 'a'),
            rec(10, true, "x", 'b'),
            rec(20, true, "y", 'a'),
        ];
        let good = audit(&log, &stored(&[("x", 'b'), ("y", 'a')]));
        assert!(good.passed(), "{good:?}");
        assert_eq!((good.acknowledged, good.voters, good.found), (3, 2, 2));

        let stale = audit(&log, &stored(&[("x", 'a'), ("y", 'a')]));
        assert_eq!(stale.wrong, vec![("x".to_owned(), 'a', 'b')]);
        assert!(!stale.passed());

        let lost = audit(&log, &stored(&[("x", 'b')]));
        assert_eq!(lost.lost, vec!["y".to_owned()]);
        assert!(!lost.passed());
    }

    #[test]
    fn an_unacknowledged_later_vote_may_or_may_not_count() {
        let log = [rec(1, true, "x", 'a'), rec(10, false, "x", 'b')];
        assert!(audit(&log, &stored(&[("x", 'a')])).passed());
        assert!(audit(&log, &stored(&[("x", 'b')])).passed());
        // ...but an unacknowledged vote *before* the acknowledged one may not win.
        let log = [rec(1, false, "x", 'b'), rec(10, true, "x", 'a')];
        assert!(!audit(&log, &stored(&[("x", 'b')])).passed());
    }

    #[test]
    fn voters_never_acknowledged_are_not_audited() {
        let log = [rec(1, false, "x", 'a')];
        let result = audit(&log, &HashMap::new());
        assert_eq!(result.voters, 0);
        assert!(result.passed());
    }

    #[test]
    fn recovery_runs_from_the_fault_to_the_first_ack_after_the_last_failure() {
        let log = [
            rec(0, true, "a", 'a'),
            rec(100, false, "b", 'a'),
            rec(200, true, "c", 'a'), // a lucky one in the middle of the outage
            rec(300, false, "d", 'a'),
            rec(400, true, "e", 'a'),
            rec(900, false, "f", 'a'), // the heal's own disturbance
        ];
        let r = recovery(&log, 50, Some(800));
        assert_eq!(r.failed, 2);
        assert_eq!(r.recovered_after_ms, Some(405 - 50));
        assert_eq!(recovery(&log, 500, Some(800)).recovered_after_ms, Some(0));
        assert_eq!(recovery(&log, 50, None).recovered_after_ms, None);
    }

    #[test]
    fn stored_votes_parse_strictly() {
        assert_eq!(
            parse_stored("x a\ny b\n\n").expect("parses"),
            stored(&[("x", 'a'), ("y", 'b')])
        );
        assert!(parse_stored("x c").is_err());
        assert!(parse_stored("xa").is_err());
    }
}
