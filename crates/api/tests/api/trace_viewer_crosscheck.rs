//! `/api/trace-viewer/*` and `/trace-viewer`: the app's own telemetry file (written by real
//! requests in file mode) plus a Collector-style `traces.json` the test writes, read together.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header;
use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_testkit::{TestApp, TestUser, TraceResponse, expect_error};

use crate::trace_viewer::{each, get, get_json, ids, listed as trace};

const T1: &str = "11111111111111111111111111111111"; // api + worker, worker span errors
const T2: &str = "22222222222222222222222222222222"; // api, an auth.failed event
const T3: &str = "33333333333333333333333333333333"; // worker only, video v-2
const T4: &str = "44444444444444444444444444444444"; // api, in the rotated backup
const GRAFANA: &str = "http://grafana.test:3000";

fn kv(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) => json!({"intValue": n.to_string()}),
        Value::Bool(b) => json!({"boolValue": b}),
        other => panic!("{other}"),
    };
    json!({"key": key, "value": v})
}

/// One export request line of one service, as the Collector's file exporter writes it.
fn line(service: &str, spans: Vec<Value>) -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", json!(service))]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }]})
    .to_string()
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    start: u64,
    ms: u64,
    code: i64,
    attrs: Vec<Value>,
    events: Vec<Value>,
) -> Value {
    json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": 2,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + ms * 1_000_000).to_string(),
        "attributes": attrs, "events": events, "status": {"code": code},
    })
}

/// Writes the Collector-style file (and a rotated backup); returns the file.
fn write_collector_file(dir: &Path) -> PathBuf {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let s = |secs_ago: u64| now - secs_ago * 1_000_000_000;
    let lines = [
        line(
            "vidscope-api",
            vec![span(
                T1,
                "a000000000000001",
                "",
                "POST /api/upload",
                s(20),
                40,
                0,
                vec![
                    kv("user.id", json!("u-1")),
                    kv("http.response.status_code", json!(201)),
                ],
                vec![],
            )],
        ),
        "{this is not json".to_owned(),
        line(
            "vidscope-worker",
            vec![span(
                T1,
                "b000000000000001",
                "a000000000000001",
                "job thumbnail",
                s(20) + 10_000_000,
                25,
                2,
                vec![kv("video.id", json!("v-1"))],
                vec![
                    json!({"timeUnixNano": (s(20) + 20_000_000).to_string(), "name": "job.failed",
                            "attributes": [kv("error.type", json!("ffmpeg"))]}),
                ],
            )],
        ),
        line(
            "vidscope-api",
            vec![span(
                T2,
                "a000000000000002",
                "",
                "GET /api/progress/{video_id}",
                s(10),
                3,
                0,
                // The event alone marks it (the unit test covers a bare 401).
                vec![kv("http.response.status_code", json!(200))],
                vec![
                    json!({"timeUnixNano": (s(10) + 1_000_000).to_string(), "name": "auth.failed",
                            "attributes": [kv("hasCookie", json!(false))]}),
                ],
            )],
        ),
        line(
            "vidscope-worker",
            vec![span(
                T3,
                "b000000000000003",
                "",
                "job probe",
                s(30),
                5,
                0,
                // pdata writes an empty value as `{}` and an infinite double as a string: the
                // line is still read (T3 listed with its lesson).
                vec![
                    kv("lesson.id", json!("v-2")),
                    json!({"key": "empty", "value": {}}),
                    json!({"key": "ratio", "value": {"doubleValue": "+Inf"}}),
                ],
                vec![],
            )],
        ),
    ];
    let file = dir.join("traces.json");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let backup = line(
        "vidscope-api",
        vec![span(
            T4,
            "a000000000000004",
            "",
            "GET /healthz",
            s(40),
            1,
            0,
            vec![],
            vec![],
        )],
    );
    std::fs::write(dir.join("traces.json.1"), backup + "\n").unwrap();
    file
}

struct Fixture {
    app: TestApp,
    admin: TestUser,
    viewer: TestUser,
    collector: PathBuf,
    missing: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn fixture() -> Fixture {
    let own = tempfile::tempdir().unwrap();
    let coll = tempfile::tempdir().unwrap();
    let collector = write_collector_file(coll.path());
    let missing = coll.path().join("gone/traces.json");
    let own_dir = own.path().to_path_buf();
    let files = vec![
        own.path().join("traces.json"),
        collector.clone(),
        missing.clone(),
    ];
    let app = TestApp::builder()
        .telemetry(move |c, _| c.with_file_exporters(&own_dir))
        .settings(move |mut s| {
            s.trace_viewer.files = files;
            s.trace_viewer.grafana_url = Some(GRAFANA.into());
            s
        })
        .spawn()
        .await;
    let admin = app.create_user(Role::Admin).await;
    let viewer = app.create_user(Role::Viewer).await;
    Fixture {
        app,
        admin,
        viewer,
        collector,
        missing,
        _dirs: (own, coll),
    }
}

async fn list(f: &Fixture, query: &str) -> Value {
    let resp = get(
        &f.app,
        Some(&f.admin),
        &format!("/api/trace-viewer/traces{query}"),
    )
    .await;
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().await.unwrap()
}

/// Waits until the app's own file holds `trace_id` as the viewer sees it.
async fn wait_listed(f: &Fixture, trace_id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = list(f, "?limit=1000").await;
        if ids(&body).iter().any(|i| i == trace_id) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{trace_id} never listed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn lists_the_own_file_and_the_collector_file_merged_marked_and_ordered() {
    let f = fixture().await;

    // Real telemetry: a request that succeeds and one refused for want of a session.
    let ok = f.app.get("/api/test-otel").await;
    let ok_trace = TraceResponse::of(ok.headers()).trace_id;
    let refused = get(&f.app, None, "/api/progress/0000000000000000").await;
    assert_eq!(refused.status(), 401);
    let refused_trace = TraceResponse::of(refused.headers()).trace_id;
    wait_listed(&f, &ok_trace).await;
    let body = wait_listed(&f, &refused_trace).await;

    // Newest first: the real requests, then the file's traces by start time.
    let listed = ids(&body);
    let starts = each(&body, "startTime");
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");
    let fake: Vec<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|i| [T1, T2, T3, T4].contains(i))
        .collect();
    assert_eq!(fake, [T2, T1, T3, T4]);

    // The app's own spans (service `vidscope-test`) and the marks of a real 401.
    let real = trace(&body, &refused_trace);
    assert_eq!(real["services"], json!(["vidscope-test"]));
    assert_eq!(real["authFailure"], true, "{real}");
    assert_eq!(trace(&body, &ok_trace)["authFailure"], false);

    // api + worker merged by trace id.
    let t1 = trace(&body, T1);
    assert_eq!(t1["services"], json!(["vidscope-api", "vidscope-worker"]));
    assert_eq!(t1["rootName"], "POST /api/upload");
    assert_eq!(t1["spanCount"], 2);
    assert_eq!(t1["errorCount"], 1);
    assert_eq!(t1["authFailure"], false);
    assert_eq!(t1["durationMs"], 40.0);
    assert_eq!(t1["userIds"], json!(["u-1"]));
    assert_eq!(t1["videoIds"], json!(["v-1"]));
    let url = t1["grafanaUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{GRAFANA}/explore?")) && url.contains(T1),
        "{url}"
    );
    let t2 = trace(&body, T2);
    assert_eq!(
        (t2["authFailure"].clone(), t2["errorCount"].clone()),
        (json!(true), json!(0))
    );
    assert_eq!(
        trace(&body, T3)["videoIds"],
        json!(["v-2"]),
        "lesson.id counts as a video"
    );

    // Every source reported; the malformed line counted, the missing file not a 500.
    let sources = body["sources"].as_array().unwrap();
    let src = |p: &Path| {
        sources
            .iter()
            .find(|s| s["path"] == p.display().to_string())
            .unwrap_or_else(|| panic!("{p:?} not in {sources:?}"))
    };
    assert_eq!(src(&f.collector)["skippedLines"], 1);
    assert_eq!(src(&f.collector)["ok"], true);

    let _ = src(&f.missing);

    assert!(body["stats"]["withAuthFailures"].as_u64().unwrap() >= 2);
    f.app.stop().await;
}

#[tokio::test]
async fn filters_limit_and_the_waterfall() {
    let f = fixture().await;
    assert_eq!(ids(&list(&f, "?user=u-1").await), [T1]);
    assert_eq!(ids(&list(&f, "?video=v-1").await), [T1]);
    assert_eq!(ids(&list(&f, "?video=v-2").await), [T3]);
    assert_eq!(ids(&list(&f, "?service=vidscope-worker").await), [T1, T3]);
    assert_eq!(
        ids(&list(&f, "?service=vidscope-worker&user=u-1").await),
        [T1]
    );
    let errors = list(&f, "?errors=true").await;
    assert!(ids(&errors).contains(&T1.to_owned()));
    assert!(!ids(&errors).contains(&T2.to_owned()));
    for t in errors["traces"].as_array().unwrap() {
        assert!(t["errorCount"].as_u64().unwrap() > 0, "{t}");
    }
    // The app's own requests are `vidscope-test`: not matched by `vidscope-api`.
    let all = list(&f, "?service=vidscope-api").await;
    assert_eq!(ids(&all), [T2, T1, T4]);
    let two = list(&f, "?service=vidscope-api&limit=2").await;
    assert_eq!(ids(&two), [T2, T1]);
    assert_eq!(two["stats"]["matching"], 3);

    let resp = get(
        &f.app,
        Some(&f.admin),
        &format!("/api/trace-viewer/traces/{T1}"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["summary"]["traceId"], T1);
    assert_eq!(d["summary"]["grafanaUrl"], trace(&all, T1)["grafanaUrl"]);
    let spans = d["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["service"], "vidscope-api");
    assert_eq!(spans[0]["offsetMs"], 0.0);
    assert_eq!(spans[0]["parentSpanId"], Value::Null);
    assert_eq!(spans[1]["service"], "vidscope-worker");
    assert_eq!(spans[1]["parentSpanId"], "a000000000000001");
    assert_eq!(spans[1]["offsetMs"], 10.0);
    assert_eq!(spans[1]["durationMs"], 25.0);
    assert_eq!(spans[1]["statusCode"], 2);
    assert_eq!(spans[1]["attributes"]["video.id"], "v-1");
    assert_eq!(spans[1]["events"][0]["name"], "job.failed");
    assert_eq!(spans[1]["events"][0]["offsetMs"], 20.0);
    f.app.stop().await;
}

#[tokio::test]
async fn bad_input_and_access_are_refused_with_json() {
    let f = fixture().await;
    let admin = Some(&f.admin);
    for (path, status, code) in [
        ("/api/trace-viewer/traces?limit=0", 400, "invalid_parameter"),
        (
            "/api/trace-viewer/traces?limit=1001",
            400,
            "invalid_parameter",
        ),
        (
            "/api/trace-viewer/traces?limit=ten",
            400,
            "invalid_parameter",
        ),
        (
            "/api/trace-viewer/traces?errors=yes",
            400,
            "invalid_parameter",
        ),
        ("/api/trace-viewer/traces/ABCDEF", 400, "invalid_parameter"),
        (
            "/api/trace-viewer/traces/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            400,
            "invalid_parameter",
        ),
        (
            "/api/trace-viewer/traces/99999999999999999999999999999999",
            404,
            "not_found",
        ),
    ] {
        let resp = get(&f.app, admin, path).await;
        expect_error(resp, status, code, path).await;
    }
    let limit = get_json(&f.app, admin, "/api/trace-viewer/traces?limit=0").await;
    assert!(
        limit["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit")
    );

    for path in [
        "/api/trace-viewer/traces",
        &format!("/api/trace-viewer/traces/{T1}"),
    ] {
        let anon = get(&f.app, None, path).await;
        assert_eq!(anon.status(), 401, "{path}");
        assert_eq!(
            anon.json::<Value>().await.unwrap()["error"]["code"],
            "unauthorized"
        );
        let viewer = get(&f.app, Some(&f.viewer), path).await;
        assert_eq!(viewer.status(), 403, "{path}");
        assert_eq!(
            viewer.json::<Value>().await.unwrap()["error"]["code"],
            "forbidden"
        );
    }

    // The page: anonymous to the login page, viewers refused, admins get it whole.
    let anon = get(&f.app, None, "/trace-viewer").await;
    assert_eq!(anon.status(), 303);
    assert_eq!(
        anon.headers()[header::LOCATION],
        "/login?next=/trace-viewer"
    );
    assert_eq!(
        get(&f.app, Some(&f.viewer), "/trace-viewer").await.status(),
        403
    );
    let page = get(&f.app, admin, "/trace-viewer").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    for id in [
        "filter-video",
        "filter-user",
        "filter-service",
        "filter-errors",
        "filter-limit",
        "auto-refresh",
        "refresh",
        "traces",
        "trace-count",
        "waterfall",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "#{id} missing");
    }
    // No external assets: nothing is loaded from another origin. The only links are this
    // site's stylesheets and icon (no inline style: the Content-Security-Policy allows files
    // only).
    for external in ["src=\"http", "href=\"http", "@import", "//cdn"] {
        assert!(!html.contains(external), "page loads {external}");
    }
    for link in html.split("<link").skip(1) {
        assert!(
            link.starts_with(" rel=\"stylesheet\" href=\"/assets/")
                || link.starts_with(" rel=\"icon\" href=\"/assets/"),
            "page links <link{link}"
        );
    }
    f.app.stop().await;
}
