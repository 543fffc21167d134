//! The line format the PostgreSQL entrypoint writes for `pgha start`,
//! `pgha fence` and `pgha stray`: one fact a line, a key and its words.
//! Read strictly: the words come from partners over the network.

use anyhow::{bail, Context};

/// Longer input is refused: what a three-node cluster writes is under 1 KiB.
pub const MAX_INPUT: usize = 16 * 1024;
/// Longer lines are refused: the longest, a partner line, is under 100 bytes.
const MAX_LINE: usize = 256;

/// One line: its key, its other words, and where it is for an error.
#[derive(Debug)]
pub struct Line<'a> {
    pub key: &'a str,
    pub words: Vec<&'a str>,
    at: String,
}

impl Line<'_> {
    /// "line N: TEXT", to begin an error about this line.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// An error about this line.
    pub fn err(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {what}", self.at)
    }

    /// This line's key among `keys` (key, the shape its words take), once:
    /// an unknown key or one already in `given` is refused; it is added.
    pub fn keyed(
        &self,
        keys: &[(&'static str, &'static str)],
        given: &mut Vec<&'static str>,
    ) -> anyhow::Result<(&'static str, &'static str)> {
        let Some(&(key, shape)) = keys.iter().find(|(key, _)| *key == self.key) else {
            return Err(self.err(format!("unknown key {:?}", self.key)));
        };
        if given.contains(&key) {
            return Err(self.err(format!("{key} given twice")));
        }
        given.push(key);
        Ok((key, shape))
    }

    /// `read`, its error said to be about this line.
    pub fn read<T>(&self, read: anyhow::Result<T>) -> anyhow::Result<T> {
        read.map_err(|e| self.err(e))
    }
}

/// The non-blank lines of `input`, split into words.
pub fn split(input: &str) -> anyhow::Result<Vec<Line<'_>>> {
    if input.len() > MAX_INPUT {
        bail!(
            "the input is {} bytes long, more than {MAX_INPUT}",
            input.len()
        );
    }
    let mut lines = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let at = format!(
            "line {}: {:?}",
            n + 1,
            line.chars().take(80).collect::<String>()
        );
        if line.len() > MAX_LINE {
            bail!("{at}: longer than {MAX_LINE} bytes");
        }
        if line.chars().any(char::is_control) {
            bail!("{at}: a control character");
        }
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else {
            continue;
        };
        lines.push(Line {
            key,
            words: words.collect(),
            at,
        });
    }
    Ok(lines)
}

/// A number as the shell writes it: decimal digits only (no sign, no '+').
pub fn number<T: std::str::FromStr>(word: &str, what: &str) -> anyhow::Result<T> {
    if word.is_empty() || word.len() > 20 || !word.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{what} must be a number, got {word:?}");
    }
    word.parse()
        .ok()
        .with_context(|| format!("{what} {word} is too large"))
}

/// `yes` or `no`.
pub fn yes_no(word: &str, what: &str) -> anyhow::Result<bool> {
    match word {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bail!("{what} must be yes or no, got {word:?}"),
    }
}

/// Each of `keys` given once: `given` are the keys read, in order.
pub fn require(given: &[&str], keys: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !given.contains(k))
        .collect();
    if !missing.is_empty() {
        bail!("missing: {} (each once)", missing.join(", "));
    }
    Ok(())
}
