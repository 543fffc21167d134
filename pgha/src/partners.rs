//! What the promote step saw, as the shell writes it for `pgha
//! before-promote`: one line for this node, one per partner.
//!
//! ```text
//! me 0/5000100
//! pg-1 failed
//! pg-3 standby stopped 0/50000D8
//! ```
//!
//! A partner is `failed`, `silent`, `down`, `primary`, or `standby
//! receiving|stopped LSN` (see [`Partner`]).

use anyhow::{bail, Context};

use crate::lsn::Lsn;
use crate::rules::Partner;

/// This node's WAL end and each partner as seen, in input order.
pub fn parse(input: &str) -> anyhow::Result<(Lsn, Vec<(String, Partner)>)> {
    let mut mine = None;
    let mut partners: Vec<(String, Partner)> = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let at = || {
            format!(
                "line {}: {:?}",
                n + 1,
                line.chars().take(80).collect::<String>()
            )
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&name, rest)) = words.split_first() else {
            continue;
        };
        if name == "me" {
            let [end] = rest else {
                bail!("{}: expected \"me LSN\"", at());
            };
            if mine.replace(end.parse::<Lsn>().with_context(at)?).is_some() {
                bail!("{}: \"me\" given twice", at());
            }
            continue;
        }
        check_name(name).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        let seen = match rest {
            ["failed"] => Partner::Failed,
            ["silent"] => Partner::Silent,
            ["down"] => Partner::Down,
            ["primary"] => Partner::Primary,
            ["standby", how @ ("receiving" | "stopped"), end] => Partner::Standby {
                receiving: *how == "receiving",
                end: end.parse().with_context(at)?,
            },
            _ => bail!(
                "{}: expected NAME failed|silent|down|primary, or NAME standby receiving|stopped LSN",
                at()
            ),
        };
        if partners.iter().any(|(known, _)| known == name) {
            bail!("{}: {name} given twice", at());
        }
        partners.push((name.to_owned(), seen));
    }
    let mine = mine.context("no \"me LSN\" line: this node's WAL end is needed")?;
    Ok((mine, partners))
}

/// A node name is a host name: letters, digits, '-', '_' or '.', at most 63.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("a node name is letters, digits, '-', '_' or '.' (at most 63)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_promote_step_writes() {
        let (mine, partners) =
            parse("me 0/5000100\npg-1 failed\n\npg-3 standby stopped 0/50000D8\npg-2 down\n")
                .expect("well formed");
        assert_eq!(mine, "0/5000100".parse().expect("an LSN"));
        assert_eq!(
            partners,
            vec![
                ("pg-1".to_owned(), Partner::Failed),
                (
                    "pg-3".to_owned(),
                    Partner::Standby {
                        receiving: false,
                        end: "0/50000D8".parse().expect("an LSN")
                    }
                ),
                ("pg-2".to_owned(), Partner::Down),
            ]
        );
    }

    #[test]
    fn wrong_or_hostile_lines_are_refused_with_the_line() {
        let huge = format!("me 0/1\n{} down\n", "x".repeat(100_000));
        let rows: &[(&str, &str)] = &[
            ("", "no \"me LSN\""),
            ("pg-1 failed\n", "no \"me LSN\""),
            ("me\n", "line 1"),
            ("me 0/1\nme 0/2\n", "given twice"),
            ("me zz\n", "16/B374D848"),
            ("me 0/1\npg-3 standby stopped\n", "line 2"),
            ("me 0/1\npg-3 standby sleeping 0/1\n", "line 2"),
            ("me 0/1\npg-3 standby stopped 1/2/3\n", "16/B374D848"),
            ("me 0/1\npg-3 leader\n", "expected NAME"),
            ("me 0/1\npg-3 down\npg-3 silent\n", "pg-3 given twice"),
            ("me 0/1\npg;rm down\n", "letters, digits"),
            ("me 0/1\n$(reboot) down\n", "letters, digits"),
            (&huge, "at most 63"),
        ];
        for (input, want) in rows {
            let err = format!("{:#}", parse(input).expect_err(input));
            assert!(err.contains(want), "{input:.60?}: {err}");
        }
    }
}
