//! The container binaries outside a container: `vidscope-api` started from any working
//! directory writes its telemetry files under its data dir, where its own trace viewer reads
//! them. (Its file exporter used to write under the working directory, which agreed with the
//! viewer only in the images, where the working directory is the data dir.)

mod common;

use std::time::{Duration, Instant};

use common::ADMIN;
use serde_json::Value;
use vidscope_testkit::files::files_under;

#[tokio::test]
async fn the_api_binary_writes_its_traces_where_its_trace_viewer_reads_them() {
    let db = vidscope_testkit::db::fresh_db().await;
    let data = tempfile::tempdir().unwrap();
    let working_dir = tempfile::tempdir().unwrap();
    let mut api = common::api_command(&db.url, data.path(), ADMIN);
    api.current_dir(working_dir.path())
        .env_remove("VIDSCOPE_TELEMETRY_DIR")
        .env_remove("VIDSCOPE_TRACE_VIEWER_FILES")
        .env("OTEL_TRACES_EXPORTER", "file")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let (api, port) = common::spawn_api(api).await;
    let base = format!("http://127.0.0.1:{port}");

    let client = reqwest::Client::new();
    let test_otel = client.get(format!("{base}/api/test-otel")).send().await;
    let answer: Value = test_otel.unwrap().json().await.unwrap();
    let trace_id = answer["trace_id"].as_str().expect("a trace id").to_owned();
    let cookie = common::session_cookie(port, ADMIN).await;

    // The batch is written within its 100 ms delay; the viewer reads the files on each request.
    let deadline = Instant::now() + Duration::from_secs(15);
    let trace: Value = loop {
        let resp = client
            .get(format!("{base}/api/trace-viewer/traces/{trace_id}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break resp.json().await.unwrap();
        }
        assert_eq!(resp.status(), 404, "{}", resp.text().await.unwrap());
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} not in the trace viewer after 15 s; files under the data dir: \
             {:?}, under the working directory: {:?}",
            files_under(data.path()),
            files_under(working_dir.path()),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let spans = trace["spans"].as_array().expect("spans");
    assert!(
        spans.iter().any(|s| s["name"] == "test-otel"),
        "the viewer's trace lacks the request's test-otel span: {trace}"
    );
    assert!(
        data.path().join("telemetry").join("traces.json").is_file(),
        "{:?}",
        files_under(data.path())
    );
    assert!(
        !working_dir.path().join("telemetry").exists(),
        "telemetry written under the working directory: {:?}",
        files_under(working_dir.path())
    );
    assert!(api.stop().success());
}
