//! Slow statements and N+1 repeats become events on the captured spans.

use std::time::Duration;

use tracing::Instrument;
use vidscope_core::db::{InDbSpan, query_span};
use vidscope_testkit::TestApp;

use crate::helpers::span_with_event;

#[tokio::test]
async fn repeated_statement_is_marked_once_and_slow_ones_are_flagged() {
    let app = TestApp::builder()
        .telemetry(|mut c, _| {
            c.n_plus_one_threshold = 3;
            c.slow_query = Duration::from_millis(250);
            c
        })
        .spawn()
        .await;
    const SQL: &str = "SELECT 1";
    let root = tracing::info_span!("job.test-n-plus-one");
    let work = async {
        for _ in 0..6 {
            let _: i32 = sqlx::query_scalar(SQL)
                .fetch_one(app.state.db.pool())
                .in_db_span(query_span(app.state.db.backend(), "SELECT", "", SQL))
                .await
                .unwrap();
        }
        // One statement that takes longer than the threshold.
        let slow = query_span(app.state.db.backend(), "SELECT", "", "SELECT 2");
        let _e = slow.enter();
        std::thread::sleep(Duration::from_millis(300));
    }
    .instrument(root);
    vidscope_telemetry::db_watch::scope(work).await;

    // Found through a statement span, not the root: sqlx-sqlite's worker thread keeps the
    // caller's current span until it takes its next command, so the root may close (and be
    // exported) after the flush.
    let marked = span_with_event(&app, "SELECT", "db.n_plus_one").await;
    let spans = app.otlp.spans_in_trace(&marked.trace_id);
    let marks: Vec<_> = spans
        .iter()
        .flat_map(|s| s.events.iter())
        .filter(|e| e.name == "db.n_plus_one")
        .collect();
    assert_eq!(marks.len(), 1, "one marker per statement");
    assert_eq!(marks[0].attr_str("db.query.text"), Some(SQL));
    assert_eq!(marks[0].attr_i64("count"), Some(4));

    // The rule, not a count: on a loaded machine (the CI's fuzz build runs beside the Postgres
    // phase) a `SELECT 1` once took longer than 250 ms and was rightly flagged. A statement
    // well under the threshold is not flagged, one well over it is (the span's exported
    // times and the watcher's clock differ by a little, hence the margins).
    for s in spans.iter().filter(|s| s.name == "SELECT") {
        let took = s.duration();
        let flagged = s.event("db.slow_query").is_some();
        if took < Duration::from_millis(200) {
            assert!(!flagged, "{took:?} is under the threshold: {s:#?}");
        } else if took > Duration::from_millis(300) {
            assert!(flagged, "{took:?} is over the threshold: {s:#?}");
        }
    }
    let slow = spans
        .iter()
        .find(|s| s.attr_str("db.query.text") == Some("SELECT 2"))
        .expect("the slow statement's span");
    let ev = slow
        .event("db.slow_query")
        .expect("the slow statement is flagged");
    assert!(ev.attr_i64("duration_ms").unwrap() >= 300);
    assert_eq!(ev.attr_i64("threshold_ms"), Some(250));
    app.stop().await;
}
