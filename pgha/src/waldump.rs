//! What `pg_waldump` shows of a node's WAL past a point: how many records,
//! and how many of them commit a transaction.

use crate::lsn::Lsn;

/// The records of a WAL listing that start at or after a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tail {
    pub records: usize,
    /// Transaction commits (`COMMIT` and `COMMIT_PREPARED`): the records a
    /// client could have been told had succeeded.
    pub commits: usize,
    /// The start of the last record listed.
    pub last: Option<Lsn>,
}

/// Counts the records of `listing` (pg_waldump's standard output, one
/// record per line: `rmgr: ... lsn: 0/015261F0, prev ..., desc: COMMIT ...`)
/// that start at or after `from`. Lines that are not records are skipped.
pub fn tail(listing: &str, from: Lsn) -> Tail {
    let mut tail = Tail::default();
    for line in listing.lines() {
        let Some(lsn) = field(line, "lsn: ").and_then(|v| v.parse::<Lsn>().ok()) else {
            continue;
        };
        if lsn < from {
            continue;
        }
        tail.records += 1;
        tail.last = Some(tail.last.map_or(lsn, |l| l.max(lsn)));
        let desc = line.split_once("desc: ").map_or("", |(_, d)| d);
        if line.contains("rmgr: Transaction")
            && (desc.starts_with("COMMIT ") || desc.starts_with("COMMIT_PREPARED "))
        {
            tail.commits += 1;
        }
    }
    tail
}

/// The value after `key` up to the next comma.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(key)?;
    Some(rest.split(',').next().unwrap_or(rest).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    // As pg_waldump 15 prints them (shortened descriptions).
    const LISTING: &str = "\
rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/03000110, prev 0/030000D8, desc: INSERT off 5 flags 0x00, blkref #0: rel 1663/16384/16390 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/03000150, prev 0/03000110, desc: COMMIT 2026-12-01 19:20:01.123456 UTC
rmgr: Heap        len (rec/tot):     59/    59, tx:        736, lsn: 0/03000178, prev 0/03000150, desc: INSERT off 6 flags 0x00, blkref #0: rel 1663/16384/16390 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/030001B8, prev 0/03000178, desc: COMMIT 2026-12-01 19:20:01.223456 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        737, lsn: 0/030001E0, prev 0/030001B8, desc: ABORT 2026-12-01 19:20:01.323456 UTC
rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/03000208, prev 0/030001E0, desc: CHECKPOINT_SHUTDOWN redo 0/3000208; tli 1; prev tli 1; fpw true; xid 0:738; shutdown
";

    fn lsn(s: &str) -> Lsn {
        s.parse().expect("a WAL position")
    }

    #[test]
    fn counts_records_and_commits_from_a_point() {
        let rows = [
            ("0/3000110", 6, 2, Some("0/3000208")),
            ("0/3000151", 4, 1, Some("0/3000208")),
            ("0/30001E0", 2, 0, Some("0/3000208")),
            ("0/3000209", 0, 0, None),
            ("1/0", 0, 0, None),
        ];
        for (from, records, commits, last) in rows {
            let want = Tail {
                records,
                commits,
                last: last.map(lsn),
            };
            assert_eq!(tail(LISTING, lsn(from)), want, "from {from}");
        }
    }

    #[test]
    fn skips_what_is_not_a_record() {
        let noise = "pg_waldump: error: error in WAL record at 0/3000208: invalid record length at 0/3000280\n\
                     rmgr: Heap lsn: not-a-position, desc: COMMIT x\n\n";
        assert_eq!(tail(noise, Lsn(0)), Tail::default());
    }
}
