//! Starts the result service: configuration from the environment, a
//! listener, SIGTERM/SIGINT for shutdown. Everything else is in the library.

use anyhow::Context;
use common::config::Env;
use common::http::Shutdown;
use result::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("result");
    let mut env = Env::from_process();
    let config = Config::from_env(&mut env);
    if let Err(e) = env.finish() {
        // Exit code 2, like a usage error: restarting will not fix it.
        eprintln!("result: {e}");
        std::process::exit(2);
    }
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("while binding LISTEN_ADDR {}", config.listen_addr))?;
    let shutdown = Shutdown::on_signals().context("while installing signal handlers")?;
    result::run(config, listener, shutdown).await
}
