//! Wires the worker: configuration, logging, listener, signals.

use common::config::Env;
use common::http::Shutdown;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::telemetry::init("worker");
    let mut env = Env::from_process();
    let config = worker::Config::from_env(&mut env);
    if let Err(e) = env.finish() {
        eprintln!("worker: {e}");
        return std::process::ExitCode::from(2);
    }
    let result = async {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        worker::run(config, listener, Shutdown::on_signals()?).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
