//! The service outlives its database: restarts, outages, and a database
//! that is not there yet (or has no schema yet) when the service starts.

mod support;

use support::{config, migrate, migrated_postgres, set_counts, votes, App, SseClient};
use testkit::Postgres;

#[tokio::test(flavor = "multi_thread")]
async fn survives_a_postgres_restart_and_an_outage() {
    let mut pg = migrated_postgres().await;
    set_counts(&pg, 1, 0);
    let app = App::spawn(config(&pg, "Cats", "Dogs", 20)).await;
    app.wait_for_counts(1, 0).await;
    app.wait_for_status("/readyz", 200).await;

    // A quick restart, like `docker restart` of the database container.
    tokio::task::block_in_place(|| pg.restart());
    set_counts(&pg, 2, 0);
    app.wait_for_counts(2, 0).await;
    app.wait_for_status("/readyz", 200).await;
    assert!(
        app.metric("tally_read_errors_total").await >= 1.0,
        "the old connection died with the server, and was replaced"
    );

    // A longer outage: not ready, but the last tally is still served.
    tokio::task::block_in_place(|| pg.stop());
    app.wait_for_status("/readyz", 503).await;
    let (_, readiness) = app.text("/readyz").await;
    assert!(readiness.contains("postgres: down"), "{readiness}");
    let (status, body) = app.text("/api/results").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get("/").await.status(), 200);

    tokio::task::block_in_place(|| pg.start_again());
    set_counts(&pg, 3, 1);
    app.wait_for_counts(3, 1).await;
    app.wait_for_status("/readyz", 200).await;
    assert!(!app.handle.is_finished(), "run is still going");
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_before_postgres_and_before_the_schema() {
    let mut pg = Postgres::start();
    tokio::task::block_in_place(|| pg.stop());
    let app = App::spawn(config(&pg, "Cats", "Dogs", 20)).await;

    // Nothing read yet: a clear error, not made-up zeros.
    let response = app.get("/api/results").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: serde_json::Value = response.json().await.expect("a JSON error");
    let message = error["error"].as_str().unwrap_or_default();
    assert!(message.contains("not available yet"), "{error}");
    let (status, page) = app.text("/").await;
    assert_eq!(status, 503);
    assert!(page.contains("Waiting for the first count"), "{page}");
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
    // A viewer who comes early gets the first tally when there is one.
    let mut early = SseClient::connect(&app).await;

    // The database is back but the worker has not created the schema yet.
    tokio::task::block_in_place(|| pg.start_again());
    let errors = app.metric("tally_read_errors_total").await;
    testkit::eventually(support::PATIENCE, "a read of the missing table", || async {
        (app.metric("tally_read_errors_total").await > errors).then_some(())
    })
    .await;
    assert_eq!(app.get("/api/results").await.status(), 503);
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'totals'"),
        "0",
        "the result service only reads; it never creates the schema"
    );

    migrate(&pg).await;
    set_counts(&pg, 4, 2);
    app.wait_for_counts(4, 2).await;
    app.wait_for_status("/readyz", 200).await;
    let first = early.next_tally().await;
    assert!(
        matches!(votes(&first), (0, 0) | (4, 2)),
        "the first tally there was: {first}"
    );
    app.stop().await.expect("clean stop");
}
