//! The vote service's settings, all from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::Env;
use common::redis_conn::RedisConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens (`LISTEN_ADDR`, default `0.0.0.0:8080`:
    /// a non-root process cannot bind port 80).
    pub listen: SocketAddr,
    /// Labels of the two options (`OPTION_A`, `OPTION_B`), any UTF-8.
    pub labels: [String; 2],
    /// How many replicas must hold a vote before it is acknowledged
    /// (`VOTE_MIN_REPLICAS`): 0 with a single Redis, 1 in the HA stack, so a
    /// failover can never lose an acknowledged vote.
    pub min_replicas: u32,
    /// How long to wait for those replicas (`VOTE_WAIT_TIMEOUT_MS`) before
    /// answering 503.
    pub wait_timeout: Duration,
    pub redis: RedisConfig,
}

impl Config {
    pub fn from_env(env: &mut Env) -> Config {
        let labels = [env.label("OPTION_A", "Cats"), env.label("OPTION_B", "Dogs")];
        if labels[0].is_empty() || labels[1].is_empty() {
            env.error("OPTION_A and OPTION_B must not be blank");
        }
        if labels[0] == labels[1] {
            env.error("OPTION_A and OPTION_B must differ, or voters cannot tell them apart");
        }
        Config {
            listen: env.parse(
                "LISTEN_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 8080)),
                "an address like 0.0.0.0:8080",
            ),
            labels,
            min_replicas: u32::try_from(env.int_in("VOTE_MIN_REPLICAS", 0, 0..=10))
                .unwrap_or_default(),
            wait_timeout: Duration::from_millis(env.int_in(
                "VOTE_WAIT_TIMEOUT_MS",
                1000,
                10..=30_000,
            )),
            redis: RedisConfig::from_env(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_an_empty_environment() {
        let mut env = Env::from_pairs([]);
        let config = Config::from_env(&mut env);
        env.finish().expect("defaults are valid");
        assert_eq!(config.min_replicas, 0);
        assert_eq!(config.labels, ["Cats".to_owned(), "Dogs".to_owned()]);
        assert_eq!(config.redis.host, "redis-master");
    }

    #[test]
    fn names_each_bad_variable() {
        let mut env = Env::from_pairs([
            ("VOTE_MIN_REPLICAS", "-1"),
            ("LISTEN_ADDR", "everywhere"),
            ("OPTION_A", "Same"),
            ("OPTION_B", "Same"),
            ("REDIS_PORT", "70000"),
        ]);
        let _ = Config::from_env(&mut env);
        let text = env.finish().expect_err("four problems").to_string();
        for name in [
            "VOTE_MIN_REPLICAS",
            "LISTEN_ADDR",
            "must differ",
            "REDIS_PORT",
        ] {
            assert!(text.contains(name), "{name} missing in: {text}");
        }
    }
}
