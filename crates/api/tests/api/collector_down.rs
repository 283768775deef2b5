use vidscope_telemetry::{OtlpProtocol, Signal};
use vidscope_testkit::TestApp;

/// A port nothing listens on: bound, then released.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn requests_succeed_and_drops_are_counted_when_the_collector_is_down() {
    let dead = closed_port();
    let app = TestApp::builder()
        .telemetry(move |c, r| {
            // Traces and logs to a closed port; metrics still reach the receiver so the drop
            // counter can be observed the way an operator would see it.
            let mut c = c.with_otlp(OtlpProtocol::Grpc, &dead);
            c.endpoints.insert(Signal::Metrics, r.grpc_endpoint());
            c
        })
        .spawn()
        .await;

    for i in 0..500 {
        let resp = app.get("/api/test-otel").await;
        assert_eq!(resp.status(), 200, "request {i}");
    }
    app.flush_telemetry().await;

    let stats = app.telemetry.stats();
    let dropped_traces = stats.dropped(Signal::Traces);
    assert!(dropped_traces >= 900, "spans dropped: {dropped_traces}");
    let dropped_logs = stats.dropped(Signal::Logs);
    assert!(dropped_logs >= 500, "logs dropped: {dropped_logs}");
    assert_eq!(stats.exported(Signal::Traces), 0);

    app.metric_point("telemetry.export.dropped", |p| {
        p.attr_str("signal") == Some("traces") && p.value.as_i64() >= Some(900)
    })
    .await;

    // One warning per signal, not one per failed batch.
    // (The warning itself is logged on the exporter thread, outside this test's subscriber.)
    assert_eq!(
        stats.warnings(Signal::Traces),
        1,
        "rate-limited warning count"
    );
    assert_eq!(
        stats.warnings(Signal::Logs),
        1,
        "rate-limited warning count"
    );
    app.stop().await;
}

#[tokio::test]
async fn refused_batches_go_to_the_fallback_file() {
    let app = TestApp::builder()
        .telemetry(|mut c, _| {
            c.fallback_to_file = true;
            c.file.dir = tempfile::tempdir().unwrap().keep();
            c
        })
        .spawn()
        .await;
    app.otlp.set_reject(true);
    let dir = app.config.file.dir.clone();
    let resp = app.get("/api/test-otel").await;
    assert_eq!(resp.status(), 200);
    let trace_id = resp.json::<serde_json::Value>().await.unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.flush_telemetry().await;
    let stats = app.telemetry.stats();
    let fallback_traces = stats.fallback(Signal::Traces);
    assert!(fallback_traces >= 2, "fallback count {fallback_traces}");
    assert_eq!(stats.dropped(Signal::Traces), 0);
    let file = std::fs::read_to_string(dir.join("traces.json")).unwrap();
    assert!(file.contains(&trace_id));
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}
