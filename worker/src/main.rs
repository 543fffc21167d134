//! Starts the worker service; everything but the wiring is in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::service::main(
        "worker",
        std::time::Duration::ZERO,
        worker::Config::from_env,
        |c| c.listen,
        worker::run,
    )
    .await
}
