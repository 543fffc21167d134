//! Connecting to PostgreSQL (through Pgpool-II in the HA stack).

use std::time::Duration;

use anyhow::Context;
use tokio_postgres::config::LoadBalanceHosts;
use tokio_postgres::{Client, NoTls};

use crate::config::{Env, Secret};

/// Longest wait for one address to accept the TCP connection. `db` names
/// several Pgpool-II instances; one that died must cost a client this long,
/// not its whole `timeout`, before it tries the next. A live server's kernel
/// answers within milliseconds, however busy the server is.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where PostgreSQL is and how to log in.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Host name of the database endpoint (`db`, Pgpool-II, in the stack).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub database: String,
    /// Longest wait for a connection; also the bound on each query, so a hung
    /// or isolated server is abandoned instead of waited on forever.
    pub timeout: Duration,
}

impl PgConfig {
    /// Reads the seed's `POSTGRESQL_*` variables.
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            host: env.string("POSTGRESQL_HOST", "db"),
            port: env.parse("POSTGRESQL_PORT", 5432, "a TCP port number"),
            user: env.string("POSTGRESQL_USERNAME", "votes"),
            password: env.secret("POSTGRESQL_PASSWORD", false),
            database: env.string("POSTGRESQL_DATABASE", "votes"),
            timeout: Duration::from_millis(env.int_in(
                "POSTGRESQL_TIMEOUT_MS",
                5000,
                100..=300_000,
            )),
        }
    }

    /// Opens a connection; `application_name` shows in `pg_stat_activity`.
    /// The host name is resolved anew on every call, and its addresses are
    /// tried in random order until one lets the client in (the resolver
    /// may sort them, which would send every client to the same instance).
    pub async fn connect(&self, application_name: &str) -> anyhow::Result<Client> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name(application_name)
            .load_balance_hosts(LoadBalanceHosts::Random)
            .connect_timeout(self.timeout.min(TCP_CONNECT_TIMEOUT))
            .keepalives_idle(Duration::from_secs(10));
        if !self.password.expose().is_empty() {
            config.password(self.password.expose());
        }
        let (client, connection) = tokio::time::timeout(self.timeout, config.connect(NoTls))
            .await
            .with_context(|| format!("timed out connecting to {}:{}", self.host, self.port))?
            .with_context(|| format!("while connecting to {}:{}", self.host, self.port))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }
}
