//! The vote service's settings, all from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::Env;
use common::redis_conn::RedisConfig;

use crate::identity::CookieKey;
use crate::sentinels::{parse_sentinels, SentinelConfig};

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
    /// The Sentinels to ask before acknowledging (`REDIS_SENTINELS`, e.g.
    /// `sentinel-1:26379,sentinel-2:26379,sentinel-3:26379`; empty: a single
    /// Redis, `VOTE_MIN_REPLICAS` alone decides) and the name they watch
    /// (`REDIS_MASTER_NAME`, default `swarmvote`).
    pub sentinels: Option<SentinelConfig>,
    /// The key voter ids are signed with (`VOTE_COOKIE_KEY` or
    /// `VOTE_COOKIE_KEY_FILE`, at least 16 bytes; every replica needs the
    /// same one). Unset: a random key for this process only, with a warning.
    pub cookie_key: Option<CookieKey>,
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
            sentinels: sentinels_from_env(env),
            cookie_key: cookie_key_from_env(env),
        }
    }
}

fn cookie_key_from_env(env: &mut Env) -> Option<CookieKey> {
    let secret = env.secret("VOTE_COOKIE_KEY", false);
    if secret.expose().is_empty() {
        return None;
    }
    let key = CookieKey::new(secret.expose().as_bytes());
    if key.is_none() {
        env.error("VOTE_COOKIE_KEY: at least 16 characters (deploy.sh generates one)");
    }
    key
}

fn sentinels_from_env(env: &mut Env) -> Option<SentinelConfig> {
    let list = env.string("REDIS_SENTINELS", "");
    let master = env.string("REDIS_MASTER_NAME", "swarmvote");
    if master.is_empty()
        || !master
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        env.error(format!(
            "REDIS_MASTER_NAME: {master:?} is not a Sentinel master name (letters, digits, - _ .)"
        ));
    }
    match parse_sentinels(&list) {
        Ok(sentinels) if sentinels.is_empty() => None,
        Ok(sentinels) => Some(SentinelConfig { sentinels, master }),
        Err(e) => {
            env.error(format!("REDIS_SENTINELS: {e}"));
            None
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
        assert!(config.sentinels.is_none());
    }

    #[test]
    fn reads_the_sentinels() {
        let mut env = Env::from_pairs([("REDIS_SENTINELS", "sentinel-1,sentinel-2:26380")]);
        let config = Config::from_env(&mut env);
        env.finish().expect("valid");
        let sentinels = config.sentinels.expect("configured");
        assert_eq!(sentinels.master, "swarmvote");
        assert_eq!(sentinels.sentinels[1], ("sentinel-2".to_owned(), 26380));
        let mut env = Env::from_pairs([
            ("REDIS_SENTINELS", "sentinel-1:http"),
            ("REDIS_MASTER_NAME", "a b"),
        ]);
        let _ = Config::from_env(&mut env);
        let text = env.finish().expect_err("two problems").to_string();
        assert!(
            text.contains("REDIS_SENTINELS") && text.contains("REDIS_MASTER_NAME"),
            "{text}"
        );
    }

    #[test]
    fn names_each_bad_variable() {
        let mut env = Env::from_pairs([
            ("VOTE_MIN_REPLICAS", "-1"),
            ("LISTEN_ADDR", "everywhere"),
            ("OPTION_A", "Same"),
            ("OPTION_B", "Same"),
            ("REDIS_PORT", "70000"),
            ("VOTE_COOKIE_KEY", "short"),
        ]);
        let _ = Config::from_env(&mut env);
        let text = env.finish().expect_err("four problems").to_string();
        for name in [
            "VOTE_MIN_REPLICAS",
            "LISTEN_ADDR",
            "must differ",
            "REDIS_PORT",
            "VOTE_COOKIE_KEY",
        ] {
            assert!(text.contains(name), "{name} missing in: {text}");
        }
    }
}
