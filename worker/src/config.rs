//! The worker's settings, all from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::Env;
use common::db::PgConfig;
use common::redis_conn::RedisConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` listen (`LISTEN_ADDR`,
    /// default `0.0.0.0:9090`).
    pub listen: SocketAddr,
    /// Name of this consumer in the group (`WORKER_CONSUMER`). The default,
    /// host name plus a random suffix, is new on every start, so a restarted
    /// worker never mistakes a dead predecessor's entries for its own. If
    /// set, it must differ between processes: two processes with one name are
    /// one consumer to Redis and would do each other's work twice.
    pub consumer: String,
    /// Most entries per batch (`WORKER_BATCH_SIZE`): bigger batches amortise
    /// the commit, smaller ones bound the work a crash hands to others.
    pub batch_size: usize,
    /// How long one read waits for new entries (`WORKER_BLOCK_MS`); also the
    /// longest a shutdown waits for an idle worker.
    pub block: Duration,
    /// After a batch that was not full, how long votes gather before the
    /// next read (`WORKER_LINGER_MS`, 0..=1000, default 50). Under load this
    /// makes transactions fewer and bigger (each costs a synchronous commit
    /// on the standbys); it adds at most this much to a vote's way to
    /// PostgreSQL. Full batches are read again at once.
    pub linger: Duration,
    /// Entries pending this long on another consumer are taken over
    /// (`WORKER_CLAIM_IDLE_MS`): that consumer is presumed dead. Too short and
    /// a slow but live worker's batch is done twice (harmless, wasted).
    pub claim_idle: Duration,
    pub redis: RedisConfig,
    pub postgres: PgConfig,
}

impl Config {
    pub fn from_env(env: &mut Env) -> Config {
        let host = common::html::hostname();
        let default_consumer = format!("{host}-{}", &common::VoterId::generate().as_str()[..8]);
        let consumer = env.string("WORKER_CONSUMER", &default_consumer);
        if consumer.len() > 200 {
            env.error("WORKER_CONSUMER: at most 200 bytes");
        }
        Config {
            listen: env.parse(
                "LISTEN_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 9090)),
                "an address like 0.0.0.0:9090",
            ),
            consumer,
            batch_size: usize::try_from(env.int_in("WORKER_BATCH_SIZE", 1000, 1..=10_000))
                .unwrap_or(1000),
            block: Duration::from_millis(env.int_in("WORKER_BLOCK_MS", 1000, 1..=60_000)),
            linger: Duration::from_millis(env.int_in("WORKER_LINGER_MS", 50, 0..=1000)),
            claim_idle: Duration::from_millis(env.int_in(
                "WORKER_CLAIM_IDLE_MS",
                15_000,
                100..=3_600_000,
            )),
            redis: RedisConfig::from_env(env),
            postgres: PgConfig::from_env(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_and_consumers_are_unique() {
        let mut env = Env::from_pairs([]);
        let a = Config::from_env(&mut env);
        let b = Config::from_env(&mut env);
        env.finish().expect("defaults are valid");
        assert_ne!(a.consumer, b.consumer);
        assert_eq!(a.batch_size, 1000);
        assert_eq!(a.linger, Duration::from_millis(50));
        assert_eq!(a.postgres.host, "db");
    }

    #[test]
    fn names_each_bad_variable() {
        let mut env = Env::from_pairs([
            ("WORKER_BATCH_SIZE", "0"),
            ("WORKER_CLAIM_IDLE_MS", "soon"),
            ("WORKER_LINGER_MS", "1001"),
            ("POSTGRESQL_PORT", "-5"),
        ]);
        let _ = Config::from_env(&mut env);
        let text = env.finish().expect_err("four problems").to_string();
        for name in [
            "WORKER_BATCH_SIZE",
            "WORKER_CLAIM_IDLE_MS",
            "WORKER_LINGER_MS",
            "POSTGRESQL_PORT",
        ] {
            assert!(text.contains(name), "{name} missing in: {text}");
        }
    }
}
