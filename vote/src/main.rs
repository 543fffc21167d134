//! Starts the vote service; everything but the wiring is in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::service::main("vote", vote::Config::from_env, |c| c.listen, vote::run).await
}
