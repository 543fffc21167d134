//! Configuration from the environment.
//!
//! Every service reads its settings through [`Env`], which collects *every*
//! problem before failing, so an operator fixes a broken `.env` in one pass
//! instead of one variable per restart. Passwords are read from `NAME` or from
//! the file named by `NAME_FILE` (Docker secrets) and held in [`Secret`], whose
//! `Debug` never prints the value.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Longest accepted option label, in characters: long enough for any real
/// label, short enough that a page still lays out on a phone.
const MAX_LABEL_CHARS: usize = 64;

/// A password or other credential. Prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every problem found in the environment, one line per variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// Reads variables and remembers each problem instead of stopping at the first.
pub struct Env {
    vars: HashMap<String, String>,
    errors: Vec<String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The map may hold passwords: show only what went wrong.
        f.debug_struct("Env").field("errors", &self.errors).finish()
    }
}

impl Env {
    /// The process environment. Variables that are not valid UTF-8 are
    /// reported as errors when read, not silently skipped.
    pub fn from_process() -> Self {
        let mut errors = Vec::new();
        let mut vars = HashMap::new();
        for (key, value) in std::env::vars_os() {
            match (key.into_string(), value.into_string()) {
                (Ok(k), Ok(v)) => {
                    vars.insert(k, v);
                }
                (Ok(k), Err(_)) => errors.push(format!("{k}: value is not valid UTF-8")),
                _ => {}
            }
        }
        Self { vars, errors }
    }

    /// A fixed set of variables, for tests and for embedding the services.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            vars,
            errors: Vec::new(),
        }
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A string with a default; an empty value counts as unset.
    pub fn string(&mut self, name: &str, default: &str) -> String {
        match self.raw(name).map(str::to_owned) {
            Some(v) if !v.is_empty() => {
                if v.chars().any(char::is_control) {
                    self.errors
                        .push(format!("{name}: must not contain control characters"));
                }
                v
            }
            _ => default.to_owned(),
        }
    }

    /// A value parsed with `FromStr`, with a default when unset.
    pub fn parse<T>(&mut self, name: &str, default: T, expected: &str) -> T
    where
        T: FromStr,
    {
        match self.raw(name).map(str::to_owned) {
            Some(v) if !v.is_empty() => match v.trim().parse() {
                Ok(parsed) => parsed,
                Err(_) => {
                    self.errors
                        .push(format!("{name}: expected {expected}, got {:?}", clip(&v)));
                    default
                }
            },
            _ => default,
        }
    }

    /// An integer within `range`, with a default when unset.
    pub fn int_in(
        &mut self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        let value = self.parse(name, default, &expected);
        if !range.contains(&value) {
            self.errors
                .push(format!("{name}: expected {expected}, got {value}"));
        }
        value
    }

    /// The label of a voting option: any UTF-8, non-empty, at most 64 characters.
    pub fn label(&mut self, name: &str, default: &str) -> String {
        let value = self.string(name, default);
        let value = value.trim().to_owned();
        if value.chars().count() > MAX_LABEL_CHARS {
            self.errors
                .push(format!("{name}: at most {MAX_LABEL_CHARS} characters"));
        }
        value
    }

    /// A credential from `NAME` or from the file named by `NAME_FILE`.
    ///
    /// Setting both is an error (which one wins would be a guess); a file's
    /// trailing newline is dropped because `echo pw > file` is how most
    /// secrets are made. With `required` false an unset credential is empty.
    pub fn secret(&mut self, name: &str, required: bool) -> Secret {
        let file_var = format!("{name}_FILE");
        let direct = self.raw(name).filter(|v| !v.is_empty()).map(str::to_owned);
        let path = self
            .raw(&file_var)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        match (direct, path) {
            (Some(_), Some(_)) => {
                self.errors
                    .push(format!("{name} and {file_var} are both set: set only one"));
                Secret::new("")
            }
            (Some(value), None) => Secret::new(value),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let value = text.strip_suffix('\n').unwrap_or(&text);
                    let value = value.strip_suffix('\r').unwrap_or(value);
                    if value.is_empty() && required {
                        self.errors
                            .push(format!("{file_var}: the file {path} is empty"));
                    }
                    Secret::new(value)
                }
                Err(e) => {
                    self.errors
                        .push(format!("{file_var}: cannot read {path}: {e}"));
                    Secret::new("")
                }
            },
            (None, None) => {
                if required {
                    self.errors
                        .push(format!("{name} (or {file_var}) is required but not set"));
                }
                Secret::new("")
            }
        }
    }

    /// Records a problem found by a check that spans several variables.
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    /// Ok when nothing went wrong; otherwise every problem at once.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.errors))
        }
    }
}

/// Shortens a hostile or huge value before it is echoed in an error.
fn clip(value: &str) -> String {
    const MAX: usize = 40;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_at_once() {
        let mut env = Env::from_pairs([("A_NUMBER", "many"), ("LIMIT", "99")]);
        let _ = env.parse::<u32>("A_NUMBER", 1, "an integer");
        let _ = env.int_in("LIMIT", 1, 0..=10);
        let _ = env.secret("DB_PASSWORD", true);
        let err = env.finish().expect_err("three problems");
        assert_eq!(err.0.len(), 3, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("A_NUMBER: expected an integer, got \"many\""),
            "{text}"
        );
        assert!(
            text.contains("LIMIT: expected an integer from 0 to 10, got 99"),
            "{text}"
        );
        assert!(
            text.contains("DB_PASSWORD (or DB_PASSWORD_FILE) is required"),
            "{text}"
        );
    }

    #[test]
    fn secret_from_file_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret \n").expect("write");
        let path = path.to_str().expect("utf-8 path");
        let mut env = Env::from_pairs([("PW_FILE", path)]);
        let secret = env.secret("PW", true);
        env.finish().expect("valid");
        assert_eq!(secret.expose(), "s3cret ");
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[test]
    fn secret_set_twice_or_unreadable_is_an_error() {
        let mut env = Env::from_pairs([("PW", "x"), ("PW_FILE", "/nonexistent/pw")]);
        let _ = env.secret("PW", true);
        let mut other = Env::from_pairs([("PW_FILE", "/nonexistent/pw")]);
        let _ = other.secret("PW", true);
        assert!(env
            .finish()
            .expect_err("both set")
            .to_string()
            .contains("both set"));
        assert!(other
            .finish()
            .expect_err("unreadable")
            .to_string()
            .contains("PW_FILE: cannot read /nonexistent/pw"));
    }

    #[test]
    fn labels_accept_any_script_but_not_huge_or_control_values() {
        let long = "x".repeat(65);
        let mut env = Env::from_pairs([("OPTION_A", "گندم"), ("OPTION_B", long.as_str())]);
        assert_eq!(env.label("OPTION_A", "Cats"), "گندم");
        let _ = env.label("OPTION_B", "Dogs");
        let mut ctl = Env::from_pairs([("OPTION_A", "a\nb")]);
        let _ = ctl.label("OPTION_A", "Cats");
        assert!(env.finish().is_err());
        assert!(ctl.finish().is_err());
    }

    #[test]
    fn huge_values_are_clipped_in_errors() {
        let huge = "9".repeat(10_000);
        let mut env = Env::from_pairs([("N", huge.as_str())]);
        let _ = env.parse::<u8>("N", 1, "a small integer");
        let text = env.finish().expect_err("invalid").to_string();
        assert!(text.len() < 200, "{text}");
    }
}
