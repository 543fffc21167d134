//! The result service's settings, read from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::Env;
use common::db::PgConfig;
use common::Choice;

/// Everything the result service needs to know at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`: where HTTP is served (default `0.0.0.0:8080`). `main`
    /// binds it; `run` takes a bound listener so tests can use port 0.
    pub listen_addr: SocketAddr,
    /// `OPTION_A` / `OPTION_B`: what the two options are called on the page
    /// and in the API. Must match the vote service's, which reads the same
    /// variables; the database only knows `a` and `b`.
    pub labels: Labels,
    /// `RESULT_POLL_INTERVAL_MS` (10..=10000, default 100): how often the tally
    /// is read. Also the worst-case delay before a vote shows on the page, and
    /// the database load per replica: one two-row read per interval, however
    /// many people are watching.
    pub poll_interval: Duration,
    /// `POSTGRESQL_*`: the database the worker writes the tally to.
    pub postgres: PgConfig,
    /// `RESULT_MAX_STREAMS` (1..=100000, default 2000): live streams this
    /// replica serves at once; one more is answered 503 at once, so many
    /// idle connections cannot take the replica's memory or file handles.
    pub max_streams: usize,
}

impl Config {
    /// Reads every setting; problems are collected in `env` and reported by
    /// `env.finish()`, all at once.
    pub fn from_env(env: &mut Env) -> Config {
        let listen_addr = env.parse(
            "LISTEN_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
            "an address like 0.0.0.0:8080",
        );
        let labels = Labels {
            a: env.label("OPTION_A", "Cats"),
            b: env.label("OPTION_B", "Dogs"),
        };
        if labels.a == labels.b {
            // Two bars with the same name cannot be told apart.
            env.error(format!(
                "OPTION_A and OPTION_B: must differ, both are {:?}",
                labels.a
            ));
        }
        let poll_interval =
            Duration::from_millis(env.int_in("RESULT_POLL_INTERVAL_MS", 100, 10..=10_000));
        Config {
            listen_addr,
            labels,
            poll_interval,
            postgres: PgConfig::from_env(env),
            max_streams: usize::try_from(env.int_in("RESULT_MAX_STREAMS", 2000, 1..=100_000))
                .unwrap_or(2000),
        }
    }
}

/// The display names of the two options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub a: String,
    pub b: String,
}

impl Labels {
    pub fn get(&self, choice: Choice) -> &str {
        match choice {
            Choice::A => &self.a,
            Choice::B => &self.b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_variables() {
        let mut env = Env::from_pairs([]);
        let config = Config::from_env(&mut env);
        env.finish().expect("defaults are valid");
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.labels.get(Choice::A), "Cats");
        assert_eq!(config.labels.get(Choice::B), "Dogs");
        assert_eq!(config.poll_interval, Duration::from_millis(100));
    }

    #[test]
    fn reads_unicode_labels_and_the_interval() {
        let mut env = Env::from_pairs([
            ("OPTION_A", "گندم"),
            ("OPTION_B", "عمو"),
            ("RESULT_POLL_INTERVAL_MS", "250"),
            ("LISTEN_ADDR", "127.0.0.1:9000"),
        ]);
        let config = Config::from_env(&mut env);
        env.finish().expect("valid");
        assert_eq!(config.labels.a, "گندم");
        assert_eq!(config.labels.b, "عمو");
        assert_eq!(config.poll_interval, Duration::from_millis(250));
        assert_eq!(config.listen_addr.port(), 9000);
    }

    #[test]
    fn every_problem_names_its_variable() {
        let mut env = Env::from_pairs([
            ("LISTEN_ADDR", "everywhere"),
            ("RESULT_POLL_INTERVAL_MS", "5"),
            ("OPTION_A", "Same"),
            ("OPTION_B", "Same"),
        ]);
        let _ = Config::from_env(&mut env);
        let text = env.finish().expect_err("three problems").to_string();
        for name in [
            "LISTEN_ADDR",
            "RESULT_POLL_INTERVAL_MS",
            "OPTION_A and OPTION_B",
        ] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
    }
}
