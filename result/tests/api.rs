//! The page and the JSON API, against a real PostgreSQL.

mod support;

use support::{config, migrated_postgres, set_counts, App};

#[tokio::test(flavor = "multi_thread")]
async fn api_has_the_documented_shape_with_persian_labels() {
    let pg = migrated_postgres().await;
    set_counts(&pg, 12, 7);
    let app = App::spawn(config(&pg, "گندم", "عمو", 20)).await;
    app.wait_for_counts(12, 7).await;

    let response = app.get("/api/results").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"options":[{"id":"a","label":"گندم","votes":12},{"id":"b","label":"عمو","votes":7}],"total":19}"#
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn page_shows_labels_counts_shares_and_host() {
    let pg = migrated_postgres().await;
    set_counts(&pg, 12, 7);
    let app = App::spawn(config(&pg, "گندم", "عمو", 20)).await;
    app.wait_for_counts(12, 7).await;

    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap_or("");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.expect("body");
    for expected in [
        r#"<meta name="viewport""#,
        "<bdi>گندم</bdi>",
        "<bdi>عمو</bdi>",
        r#"<td id="votes-a">12</td>"#,
        r#"<td id="votes-b">7</td>"#,
        r#"<td id="share-a">63.2%</td>"#,
        r#"<td id="share-b">36.8%</td>"#,
        r#"<td id="total">19</td>"#,
        r#"style="width:63.2%""#,
        r#"new EventSource("events")"#,
    ] {
        assert!(page.contains(expected), "{expected} missing from:\n{page}");
    }
    // Self-contained: nothing is loaded from another origin.
    assert!(!page.contains("http://") && !page.contains("https://"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert!(page.contains(&format!("Served by <bdi>{}</bdi>", host.trim())));
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_are_escaped_in_the_page_and_kept_in_the_json() {
    let pg = migrated_postgres().await;
    set_counts(&pg, 1, 2);
    let evil = "<script>alert(1)</script>";
    let app = App::spawn(config(&pg, evil, r#"Tom & "Jerry""#, 20)).await;
    let tally = app.wait_for_counts(1, 2).await;
    assert_eq!(tally["options"][0]["label"], evil);

    let (status, page) = app.text("/").await;
    assert_eq!(status, 200);
    assert!(!page.contains(evil), "the label must not be markup");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("Tom &amp; &quot;Jerry&quot;"));
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_and_methods_are_refused_and_ops_endpoints_answer() {
    let pg = migrated_postgres().await;
    let app = App::spawn(config(&pg, "Cats", "Dogs", 20)).await;
    app.wait_for_counts(0, 0).await;

    assert_eq!(app.get("/nope").await.status(), 404);
    assert_eq!(app.get("/api/results/extra").await.status(), 404);
    let post = app
        .http
        .post(app.url("/api/results"))
        .send()
        .await
        .expect("answers");
    assert_eq!(post.status(), 405);

    assert_eq!(app.text("/healthz").await.0, 200);
    app.wait_for_status("/readyz", 200).await;
    let (_, readiness) = app.text("/readyz").await;
    assert_eq!(readiness, "postgres: up\nsnapshot: up\n");

    // No votes: shares are 0, not a division by zero.
    let (_, page) = app.text("/").await;
    assert!(page.contains(r#"<td id="share-a">0%</td>"#), "{page}");

    let (_, metrics) = app.text("/metrics").await;
    for name in [
        "swarmvote_result_sse_clients",
        "swarmvote_result_tally_reads_total",
        "swarmvote_result_tally_read_errors_total",
        "swarmvote_result_tally_read_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    app.stop().await.expect("clean stop");
}
