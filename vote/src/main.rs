//! Starts the vote service; everything but the wiring is in the library.

/// mimalloc: the vote path allocates a few small strings per request (ids,
/// cookies, headers); measured with bench/run.sh it lowers CPU per request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::service::main(
        "vote",
        common::http::LAME_DUCK,
        vote::Config::from_env,
        |c| c.listen,
        vote::run,
    )
    .await
}
