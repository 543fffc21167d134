//! Wires the vote service: configuration, logging, listener, signals.

use common::config::Env;
use common::http::Shutdown;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::telemetry::init("vote");
    let mut env = Env::from_process();
    let config = vote::Config::from_env(&mut env);
    if let Err(e) = env.finish() {
        eprintln!("vote: {e}");
        return std::process::ExitCode::from(2);
    }
    let result = async {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        vote::run(config, listener, Shutdown::on_signals()?).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "vote stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
