//! `/api/trace-viewer`: traces the app itself wrote in file mode, merged with a Collector-style
//! `traces.json` holding a worker span of one of them, filtered, marked and linked.

use std::time::Duration;

use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_testkit::{TestApp, TestUser};

const GRAFANA: &str = "http://grafana.example:3000";

/// `GET path` as `user` (anonymous with `None`). The cross-check tests use it too.
pub(crate) async fn get(app: &TestApp, user: Option<&TestUser>, path: &str) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(u) = user {
        req = req.header("cookie", &u.cookie);
    }
    req.send().await.unwrap()
}

/// [`get`]'s body as JSON.
pub(crate) async fn get_json(app: &TestApp, user: Option<&TestUser>, path: &str) -> Value {
    get(app, user, path).await.json().await.unwrap()
}

/// `key` of each trace in a list answer, in its order.
pub(crate) fn each(body: &Value, key: &str) -> Vec<String> {
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[key].as_str().unwrap().to_owned())
        .collect()
}

/// The listed traces' ids, in order.
pub(crate) fn ids(body: &Value) -> Vec<String> {
    each(body, "traceId")
}

/// Trace `id` of a list answer.
pub(crate) fn listed<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["traceId"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {body}"))
}

fn trace_of(resp: &reqwest::Response) -> String {
    resp.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned()
}

/// A Collector file line: one worker span (with an error) in `trace_id`, under `parent`.
fn collector_line(trace_id: &str, parent: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "vidscope-worker"}}]},
        "scopeSpans": [{"scope": {"name": "vidscope-worker"}, "spans": [{
            "traceId": trace_id, "spanId": "00000000000000b2", "parentSpanId": parent,
            "name": "process video.probe", "kind": 5,
            "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 500_000_000).to_string(),
            "attributes": [{"key": "video.id", "value": {"stringValue": "lesson-42"}}],
            "events": [{"name": "exception", "timeUnixNano": (now + 100_000_000).to_string(), "attributes": []}],
            "status": {"code": 2, "message": "ffprobe failed"}}]}]}]})
    .to_string()
}

#[tokio::test]
async fn traces_from_the_apps_files_and_the_collectors_are_listed_filtered_and_opened() {
    // Arrange: the app writes its traces to files; the viewer reads them and a Collector file.
    let dir = tempfile::tempdir().unwrap();
    let telemetry_dir = dir.path().join("telemetry");
    let collector_file = dir.path().join("collector-traces.json");
    let own_file = telemetry_dir.join("traces.json");
    let (own, extra) = (own_file.clone(), collector_file.clone());
    let td = telemetry_dir.clone();
    let app = TestApp::builder()
        .telemetry(move |c, _| c.with_file_exporters(&td))
        .settings(move |mut s| {
            s.trace_viewer.files = vec![own, extra];
            s.trace_viewer.grafana_url = Some(GRAFANA.into());
            s
        })
        .spawn()
        .await;
    let admin = app.create_user(Role::Admin).await;
    let viewer = app.create_user(Role::Viewer).await;

    // Act: a viewer's request, an auth failure and a request that fails with a 503.
    let viewer_trace = trace_of(&get(&app, Some(&viewer), "/api/videos").await);
    let anon = get(&app, None, "/api/videos").await;
    assert_eq!(anon.status(), 401);
    let auth_trace = trace_of(&anon);
    let admin_trace = trace_of(&get(&app, Some(&admin), "/api/auth/session").await);
    // The worker's span of the viewer's trace, as the Collector would have written it, with a
    // line that is not an export and one cut short.
    let viewer_root = {
        app.flush_telemetry().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&own_file).unwrap_or_default();
            if [&viewer_trace, &auth_trace, &admin_trace]
                .iter()
                .all(|t| text.contains(t.as_str()))
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "traces not written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let list = get_json(
            &app,
            Some(&admin),
            &format!("/api/trace-viewer/traces/{viewer_trace}"),
        )
        .await;
        list["spans"][0]["spanId"].as_str().unwrap().to_owned()
    };
    std::fs::write(
        &collector_file,
        format!(
            "{}\nnot json at all\n{{\"resourceSpans\": [\n",
            collector_line(&viewer_trace, &viewer_root)
        ),
    )
    .unwrap();

    // Assert: everything, newest first, with sources reported.
    let all = get_json(&app, Some(&admin), "/api/trace-viewer/traces?limit=1000").await;
    let ids = ids(&all);
    for t in [&viewer_trace, &auth_trace, &admin_trace] {
        assert!(ids.contains(t), "{t} listed: {all}");
    }
    let starts = each(&all, "startTime");
    assert!(
        starts.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {starts:?}"
    );
    assert_eq!(all["sources"][0]["ok"], true, "{all}");
    assert_eq!(all["sources"][1]["skippedLines"], 2, "{all}");

    // The viewer's trace merges the API's spans and the Collector file's worker span.
    let one = listed;
    let merged = one(&all, &viewer_trace);
    assert_eq!(
        merged["services"],
        json!(["vidscope-test", "vidscope-worker"]),
        "{merged}"
    );
    assert_eq!(merged["errorCount"], 1);
    assert_eq!(merged["videoIds"], json!(["lesson-42"]));
    assert_eq!(merged["userIds"], json!([viewer.user.id]));
    assert!(
        merged["grafanaUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{GRAFANA}/explore?")),
        "{merged}"
    );
    assert!(
        merged["grafanaUrl"]
            .as_str()
            .unwrap()
            .contains(&viewer_trace)
    );
    let failed = one(&all, &auth_trace);
    assert_eq!(failed["authFailure"], true, "{failed}");
    assert_eq!(one(&all, &admin_trace)["authFailure"], false);

    // Filters: user, lesson, service, errors, limit.
    let list = |q: String| {
        let app = &app;
        let admin = &admin;
        async move {
            self::ids(&get_json(app, Some(admin), &format!("/api/trace-viewer/traces?{q}")).await)
        }
    };
    // (The test harness's own `users.create` spans carry the user ids too.)
    let of_viewer = list(format!("user={}", viewer.user.id)).await;
    assert!(of_viewer.contains(&viewer_trace), "{of_viewer:?}");
    assert!(!of_viewer.contains(&admin_trace) && !of_viewer.contains(&auth_trace));
    let of_admin = list(format!("user={}", admin.user.id)).await;
    assert!(of_admin.contains(&admin_trace), "{of_admin:?}");
    assert!(!of_admin.contains(&viewer_trace));
    assert_eq!(
        list("video=lesson-42".into()).await,
        std::slice::from_ref(&viewer_trace)
    );
    assert_eq!(
        list("service=vidscope-worker".into()).await,
        std::slice::from_ref(&viewer_trace)
    );
    assert_eq!(
        list("errors=true".into()).await,
        std::slice::from_ref(&viewer_trace)
    );
    assert_eq!(list("limit=1".into()).await.len(), 1);
    assert!(list("user=nobody".into()).await.is_empty());

    // One trace: its spans with the worker's event on the timeline.
    let detail = get_json(
        &app,
        Some(&admin),
        &format!("/api/trace-viewer/traces/{viewer_trace}"),
    )
    .await;
    let spans = detail["spans"].as_array().unwrap();
    let worker = spans
        .iter()
        .find(|s| s["service"] == "vidscope-worker")
        .expect("the worker span");
    assert_eq!(worker["parentSpanId"], viewer_root.as_str());
    assert_eq!(worker["events"][0]["name"], "exception");
    assert_eq!(worker["statusCode"], 2);
    assert!(
        spans
            .iter()
            .any(|s| s["attributes"]["http.route"] == "/api/videos")
    );

    // Errors: bad parameters, a bad id, an unknown trace, a viewer, nobody.
    for (path, status, names) in [
        ("/api/trace-viewer/traces?limit=0", 400, "limit"),
        ("/api/trace-viewer/traces?errors=maybe", 400, "errors"),
        ("/api/trace-viewer/traces/XYZ", 400, "traceId"),
        (
            "/api/trace-viewer/traces/0123456789abcdef0123456789abcdef",
            404,
            "not found",
        ),
    ] {
        let resp = get(&app, Some(&admin), path).await;
        assert_eq!(resp.status(), status, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(names),
            "{path}: {body}"
        );
    }
    assert_eq!(
        get(&app, Some(&viewer), "/api/trace-viewer/traces")
            .await
            .status(),
        403
    );
    assert_eq!(
        get(&app, None, "/api/trace-viewer/traces").await.status(),
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_missing_file_is_reported_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here.json");
    let app = TestApp::builder()
        .settings(move |mut s| {
            s.trace_viewer.files = vec![missing];
            s
        })
        .spawn()
        .await;
    let admin = app.create_user(Role::Admin).await;
    let resp = get(&app, Some(&admin), "/api/trace-viewer/traces").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["traces"], json!([]));
    assert_eq!(body["sources"][0]["ok"], false);
    assert!(
        body["sources"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no such file")
    );
    app.stop().await;
}
