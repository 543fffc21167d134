//! Logging: one subscriber per process, built once at start.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `LOG_LEVEL` (or `RUST_LOG`) takes an
/// `EnvFilter` directive such as `info` or `worker=debug,info`; `LOG_FORMAT`
/// is `json` (the default: one object per line, for log collectors) or `text`.
pub fn init(service: &'static str) {
    let directive = std::env::var("LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        eprintln!("LOG_LEVEL: invalid filter {directive:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("LOG_FORMAT").map_or(true, |f| f != "text");
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if result.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}
