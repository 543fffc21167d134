//! Connecting to Redis.
//!
//! Every connection is made from the host *name*, so a reconnect after a
//! failover or a restarted task resolves it again (Swarm's `dnsrr` endpoints
//! change address when a task is replaced).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::config::{Env, Secret};

/// Where Redis is and how to log in.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Host name of the Redis primary (in the HA stack, the HAProxy in front
    /// of whichever node is primary).
    pub host: String,
    pub port: u16,
    /// The ACL user to log in as; empty for Redis's `default` user.
    pub username: String,
    /// That user's password; empty when Redis has no password.
    pub password: Secret,
    /// Longest wait for a TCP connection and the AUTH handshake.
    pub connect_timeout: Duration,
}

impl RedisConfig {
    /// Reads `REDIS_HOST`, `REDIS_PORT`, `REDIS_USERNAME`, `REDIS_PASSWORD` /
    /// `REDIS_PASSWORD_FILE`.
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            host: env.string("REDIS_HOST", "redis-master"),
            port: env.parse("REDIS_PORT", 6379, "a TCP port number"),
            username: env.string("REDIS_USERNAME", ""),
            password: env.secret("REDIS_PASSWORD", false),
            connect_timeout: Duration::from_millis(env.int_in(
                "REDIS_CONNECT_TIMEOUT_MS",
                2000,
                50..=60_000,
            )),
        }
    }

    pub fn connection_info(&self) -> redis::RedisResult<ConnectionInfo> {
        let info = ConnectionAddr::Tcp(self.host.clone(), self.port).into_connection_info()?;
        // No CLIENT SETINFO: Redis 7.0 has no such command, and each ACL
        // user may run only what it needs.
        let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
        if !self.username.is_empty() {
            settings = settings.set_username(&self.username);
        }
        if !self.password.expose().is_empty() {
            settings = settings.set_password(self.password.expose());
        }
        Ok(info.set_redis_settings(settings))
    }

    /// Opens a new multiplexed connection. `response_timeout` bounds every
    /// command, so a hung or isolated server is noticed instead of waited on.
    pub async fn connect(
        &self,
        response_timeout: Duration,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let client = redis::Client::open(self.connection_info()?)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(response_timeout));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}
