use std::time::Duration;

use vidscope_testkit::TestApp;

fn read_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn file_mode_writes_collector_format_lines() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry_dir = dir.path().to_path_buf();
    let app = TestApp::builder()
        .telemetry(move |c, _| c.with_file_exporters(&telemetry_dir))
        .spawn()
        .await;

    let resp = app.get("/api/test-otel").await;
    let trace_id = resp.json::<serde_json::Value>().await.unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // One request that fails with a 5xx: the database goes away under the app.
    app.state.db.close().await;
    let resp = app.get("/api/test-otel").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");

    // Written within seconds without any flush (batch delay + metric interval).
    let traces = dir.path().join("traces.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&traces)
        .unwrap_or_default()
        .contains(&trace_id)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "trace not in {traces:?} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.flush_telemetry().await;

    // Every line is an OTLP-JSON export request with hex ids and integer enums.
    let lines = read_lines(&traces);
    assert!(!lines.is_empty());
    let mut found = false;
    for line in &lines {
        for rs in line["resourceSpans"].as_array().expect("resourceSpans") {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for span in ss["spans"].as_array().unwrap() {
                    let id = span["traceId"].as_str().unwrap();
                    assert!(
                        id.len() == 32
                            && id
                                .chars()
                                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                    );
                    assert!(span["kind"].is_i64(), "enums are integers: {span}");
                    assert!(
                        span["startTimeUnixNano"].is_string(),
                        "64-bit ints are strings"
                    );
                    found |= id == trace_id;
                }
            }
        }
    }
    assert!(found, "the request's trace is in the file");
    for (name, key) in [
        ("metrics.json", "resourceMetrics"),
        ("logs.json", "resourceLogs"),
    ] {
        let lines = read_lines(&dir.path().join(name));
        assert!(!lines.is_empty(), "{name} is empty");
        assert!(
            lines.iter().all(|l| l.get(key).is_some()),
            "{name} lines carry {key}"
        );
    }

    app.stop().await;
}

#[test]
fn files_rotate_by_size_and_keep_the_configured_backups() {
    use vidscope_telemetry::config::{FileConfig, Signal};
    use vidscope_telemetry::file::JsonLinesFile;
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileConfig {
        dir: dir.path().to_path_buf(),
        max_bytes: 1024,
        backups: 3,
    };
    let f = JsonLinesFile::open(&cfg, Signal::Traces).unwrap();
    let payload = serde_json::json!({"resourceSpans": [], "pad": "x".repeat(300)});
    for _ in 0..40 {
        f.write_json(&payload).unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "traces.json",
            "traces.json.1",
            "traces.json.2",
            "traces.json.3"
        ]
    );
    for n in &names {
        let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("no line is cut by rotation");
        }
    }
}
