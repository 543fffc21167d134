//! Starts the result service; everything but the wiring is in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::service::main(
        "result",
        common::http::LAME_DUCK,
        result::Config::from_env,
        |c| c.listen_addr,
        result::run,
    )
    .await
}
