//! `/events`: live updates, their cost to the database, and shutdown.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use support::{config, migrated_postgres, set_counts, votes, App, SseClient, PATIENCE};

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gets_the_tally_at_once_and_then_each_change() {
    let pg = migrated_postgres().await;
    set_counts(&pg, 3, 4);
    let app = App::spawn(config(&pg, "گندم", "عمو", 20)).await;
    app.wait_for_counts(3, 4).await;

    let mut client = SseClient::connect(&app).await;
    let first = client.next_tally().await;
    assert_eq!(votes(&first), (3, 4));
    // The same document as the API serves.
    let (_, api) = app.text("/api/results").await;
    assert_eq!(
        first,
        serde_json::from_str::<serde_json::Value>(&api).expect("JSON")
    );

    set_counts(&pg, 10, 4);
    assert_eq!(votes(&client.next_tally().await), (10, 4));
    set_counts(&pg, 10, 5);
    let third = client.next_tally().await;
    assert_eq!(votes(&third), (10, 5));
    assert_eq!(third["total"], 15);
    assert_eq!(third["options"][1]["label"], "عمو");
    app.stop().await.expect("clean stop");
}

/// Two hundred viewers, and a change every one of them sees: if viewers
/// caused queries (one each on connect, or per change, or per tick), the
/// database would see at least 400 transactions. One poller sees one per
/// tick, whatever the number of viewers.
#[tokio::test(flavor = "multi_thread")]
async fn many_viewers_cost_no_more_queries_than_ticks() {
    const VIEWERS: usize = 200;
    const POLL_MS: u64 = 250;
    let pg = migrated_postgres().await;
    set_counts(&pg, 1, 1);
    let app = App::spawn(config(&pg, "Cats", "Dogs", POLL_MS)).await;
    app.wait_for_counts(1, 1).await;

    let commits = || -> i64 {
        let out = pg.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'votes'");
        out.parse().expect("a number")
    };
    let started = Instant::now();
    let commits_before = commits();
    let reads_before = app.metric("tally_reads_total").await;

    let mut clients = join_all((0..VIEWERS).map(|_| SseClient::connect(&app))).await;
    for tally in join_all(clients.iter_mut().map(SseClient::next_tally)).await {
        assert_eq!(votes(&tally), (1, 1));
    }
    assert_eq!(app.metric("sse_clients").await, VIEWERS as f64);
    set_counts(&pg, 2, 1);
    for tally in join_all(clients.iter_mut().map(SseClient::next_tally)).await {
        assert_eq!(votes(&tally), (2, 1));
    }
    let connections =
        pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'result'");
    assert_eq!(
        connections, "1",
        "one connection per replica, not per viewer"
    );

    let reads = app.metric("tally_reads_total").await - reads_before;
    let commits_after = commits();
    let elapsed = started.elapsed();
    // Upper bounds only: a slow machine makes fewer ticks, never more.
    let ticks = elapsed.as_millis() as f64 / POLL_MS as f64 + 1.0;
    assert!(reads <= ticks + 1.0, "{reads} reads in {ticks:.0} ticks");
    // Statistics reach pg_stat_database up to a second or so late, and the
    // psql calls above are transactions too: allow for both.
    let slack = 50.0;
    let transactions = (commits_after - commits_before) as f64;
    assert!(
        transactions <= ticks + slack,
        "{transactions} transactions in {ticks:.0} ticks with {VIEWERS} viewers"
    );
    drop(clients);
    app.stop().await.expect("clean stop");
}

/// A stream that never ended would hold the server until the drain timeout
/// and then be cut off; instead every stream ends cleanly and `run` returns.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_open_streams_and_run_returns() {
    const VIEWERS: usize = 20;
    let pg = migrated_postgres().await;
    set_counts(&pg, 5, 6);
    let app = App::spawn(config(&pg, "Cats", "Dogs", 20)).await;
    app.wait_for_counts(5, 6).await;

    let mut clients = join_all((0..VIEWERS).map(|_| SseClient::connect(&app))).await;
    join_all(clients.iter_mut().map(SseClient::next_tally)).await;
    assert_eq!(app.metric("sse_clients").await, VIEWERS as f64);

    app.stop().await.expect("run returns Ok after shutdown");
    for client in &mut clients {
        let end = tokio::time::timeout(PATIENCE, client.next_event()).await;
        assert_eq!(
            end.expect("the stream ends"),
            None,
            "a clean end, no more events"
        );
    }
}

/// A viewer that leaves is no longer counted.
#[tokio::test(flavor = "multi_thread")]
async fn the_gauge_follows_viewers_that_leave() {
    let pg = migrated_postgres().await;
    let app = App::spawn(config(&pg, "Cats", "Dogs", 20)).await;
    app.wait_for_counts(0, 0).await;
    let mut client = SseClient::connect(&app).await;
    client.next_tally().await;
    assert_eq!(app.metric("sse_clients").await, 1.0);
    drop(client);
    testkit::eventually(Duration::from_secs(30), "the gauge to drop", || async {
        (app.metric("sse_clients").await == 0.0).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
}

/// Beyond `RESULT_MAX_STREAMS` a new stream is refused at once with 503 and
/// a Retry-After; a viewer who leaves makes room for the next.
#[tokio::test(flavor = "multi_thread")]
async fn streams_beyond_the_cap_are_refused_until_one_leaves() {
    let pg = migrated_postgres().await;
    let mut settings = config(&pg, "Cats", "Dogs", 20);
    settings.max_streams = 3;
    let app = App::spawn(settings).await;
    app.wait_for_counts(0, 0).await;
    let mut clients = join_all((0..3).map(|_| SseClient::connect(&app))).await;
    join_all(clients.iter_mut().map(SseClient::next_tally)).await;
    let refused = app.get("/events").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let text = refused.text().await.expect("body");
    assert!(
        text.contains("as many live viewers as it can serve"),
        "{text}"
    );
    assert_eq!(app.metric("sse_refused_total").await, 1.0);
    assert_eq!(app.metric("sse_clients").await, 3.0);
    // The page and the API still answer while the streams are full.
    assert_eq!(app.text("/api/results").await.0, 200);
    drop(clients.pop());
    testkit::eventually(Duration::from_secs(30), "room for a new viewer", || async {
        (app.get("/events").await.status() == 200).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
}
