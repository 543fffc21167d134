//! The poller driven one step at a time: what each step reads and publishes.

use common::http::Readiness;
use result::{channel, Labels, PollOutcome, Poller, ResultMetrics};
use testkit::Postgres;

#[tokio::test]
async fn publishes_only_changes_and_recovers_from_a_missing_table() {
    let pg = Postgres::start();
    let (sender, tally) = channel();
    let readiness = Readiness::new(&["postgres", "snapshot"]);
    let metrics = ResultMetrics::new();
    let labels = Labels {
        a: "Gandom".to_owned(),
        b: "Amoo".to_owned(),
    };
    let mut poller = Poller::new(
        pg.config(),
        labels,
        sender,
        readiness.clone(),
        metrics.clone(),
    );

    // No schema yet: an error, nothing published, not ready.
    let error = poller.step().await.expect_err("no totals table");
    assert!(format!("{error:#}").contains("totals"), "{error:#}");
    assert!(tally.borrow().is_none());
    assert!(!readiness.is_ready());

    let mut client = pg.config().connect("test").await.expect("connect");
    common::schema::migrate(&mut client).await.expect("migrate");
    assert_eq!(poller.step().await.expect("read"), PollOutcome::Changed);
    assert!(readiness.is_ready());
    assert_eq!(poller.step().await.expect("read"), PollOutcome::Unchanged);

    pg.psql("UPDATE totals SET votes = 12 WHERE vote = 'a'");
    pg.psql("UPDATE totals SET votes = 7 WHERE vote = 'b'");
    assert_eq!(poller.step().await.expect("read"), PollOutcome::Changed);
    let snapshot = tally.borrow().clone().expect("a snapshot");
    assert_eq!((snapshot.counts.a, snapshot.counts.b), (12, 7));
    assert_eq!(
        &*snapshot.json,
        r#"{"options":[{"id":"a","label":"Gandom","votes":12},{"id":"b","label":"Amoo","votes":7}],"total":19}"#
    );

    // One query per step, no more.
    assert_eq!(metrics.tally_reads.get(), 4);
    assert_eq!(metrics.tally_read_errors.get(), 1);
    assert_eq!(metrics.tally_updates.get(), 2);
}
