//! What a proxy's reconciler saw of each node, as the shell writes it for
//! `pgha primary`: one line per node.
//!
//! ```text
//! pg-1 down
//! pg-2 primary 3
//! pg-3 standby
//! ```
//!
//! A node is `primary TIMELINE` (runs as a primary writing on that
//! timeline), `standby` (runs in recovery) or `down` (did not answer).

use anyhow::bail;

use crate::rules::{Data, NodeState, Running};
use crate::Lsn;

/// The nodes as [`crate::rules::primary`] takes them, in input order.
pub fn parse(input: &str) -> anyhow::Result<Vec<NodeState>> {
    let mut nodes: Vec<NodeState> = Vec::new();
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
        crate::partners::check_name(name).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        let (running, data) = match rest {
            ["primary", tli] => {
                let Ok(timeline) = tli.parse::<u32>() else {
                    bail!("{}: a timeline is a number", at());
                };
                let data = Data {
                    system_id: 0,
                    timeline,
                    end: Lsn::default(),
                    standby: false,
                };
                (Some(Running::Primary), Some(data))
            }
            ["standby"] => (Some(Running::Standby), None),
            ["down"] => (None, None),
            _ => bail!(
                "{}: expected NAME primary TIMELINE, NAME standby or NAME down",
                at()
            ),
        };
        if nodes.iter().any(|known| known.name == name) {
            bail!("{}: {name} given twice", at());
        }
        nodes.push(NodeState {
            name: name.to_owned(),
            data,
            running,
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{primary, Primary};

    #[test]
    fn the_primary_is_named_from_what_the_reconciler_saw() {
        let rows: &[(&str, Primary)] = &[
            (
                "pg-1 primary 1\npg-2 standby\npg-3 standby\n",
                Primary::One("pg-1".into()),
            ),
            (
                "pg-1 down\npg-2 primary 2\npg-3 standby\n",
                Primary::One("pg-2".into()),
            ),
            (
                "pg-1 primary 1\npg-2 primary 2\npg-3 standby\n",
                Primary::One("pg-2".into()),
            ),
            ("pg-1 down\npg-2 standby\npg-3 standby\n", Primary::None),
            (
                "pg-1 primary 2\npg-2 primary 2\npg-3 down\n",
                Primary::Ambiguous(vec!["pg-1".into(), "pg-2".into()]),
            ),
            ("", Primary::None),
        ];
        for (seen, want) in rows {
            assert_eq!(&primary(&parse(seen).expect(seen)), want, "{seen:?}");
        }
    }

    #[test]
    fn wrong_or_hostile_lines_are_refused_with_the_line() {
        let rows: &[(&str, &str)] = &[
            ("pg-1 primary\n", "line 1"),
            ("pg-1 primary two\n", "a timeline is a number"),
            ("pg-1 primary -1\n", "a timeline is a number"),
            ("pg-1 leader 3\n", "expected NAME"),
            ("pg-1 down\npg-1 standby\n", "pg-1 given twice"),
            ("pg-1\n", "expected NAME"),
            ("`id` down\n", "letters, digits"),
        ];
        for (input, want) in rows {
            let err = format!("{:#}", parse(input).expect_err(input));
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }
}
