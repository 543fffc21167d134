//! The vote binary refuses a bad configuration, naming every problem.

#[test]
fn invalid_configuration_names_every_bad_variable() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vote"))
        .env_clear()
        .env("VOTE_MIN_REPLICAS", "two")
        .env("OPTION_A", "x".repeat(1000))
        .env("REDIS_PASSWORD", "a")
        .env("REDIS_PASSWORD_FILE", "/run/secrets/redis")
        .env("LISTEN_ADDR", "0.0.0.0")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "VOTE_MIN_REPLICAS",
        "OPTION_A",
        "REDIS_PASSWORD and REDIS_PASSWORD_FILE",
        "LISTEN_ADDR",
    ] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
    assert!(
        !stderr.contains(&"x".repeat(100)),
        "huge values are not echoed back"
    );
}
