//! The fast telemetry backend against the stock one (`VIDSCOPE_TELEMETRY_BACKEND=sdk`:
//! tracing-opentelemetry, the appender bridge, the SDK's batch processors and OTLP
//! exporters). One workload runs through each; what the capture receiver gets is normalised
//! (ids, times and per-run values left out) and must be the same. A difference is a bug of
//! one side.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use vidscope_core::domain::Role;
use vidscope_telemetry::config::Backend;
use vidscope_telemetry::{SpanExt as _, TelemetryConfig};
use vidscope_testkit::TestApp;
use vidscope_testkit::otlp::{AttrValue, CaptureReceiver, CapturedLog, CapturedSpan};

/// Attributes whose values are the same in every run; the rest are compared by type only.
const STABLE_VALUES: &[&str] = &[
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "http.response.category",
    "http.route.type",
    "error.type",
    "db.system.name",
    "level",
    "target",
    "exception.message",
    "auth.outcome",
];

/// `backend`, with the slow-query threshold out of reach: whether a query of the workload
/// crosses it depends on the machine's load, not on the backend (a loaded clean-clone `.ci/run`
/// once gave the fast run a `db.slow_query` event the sdk run did not have). The event itself is tested on
/// each backend by `db_watch`.
fn on(backend: Backend) -> impl FnOnce(TelemetryConfig, &CaptureReceiver) -> TelemetryConfig {
    move |mut c, _| {
        c.backend = backend;
        c.slow_query = Duration::from_secs(3600);
        c
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the disk is full (password=hunter2)")]
struct Full;

#[tracing::instrument(target = "vidscope_api", name = "work.fallible", err)]
fn fallible() -> Result<(), Full> {
    Err(Full)
}

/// Requests of every outcome, plus spans and errors made with tracing directly.
async fn workload(app: &TestApp) -> String {
    let viewer = app.create_user(Role::Viewer).await;
    let login = |password: &str| {
        app.client
            .post(app.url("/api/auth/login"))
            .json(&json!({ "email": viewer.user.email, "password": password }))
            .send()
    };
    assert_eq!(login(&viewer.password).await.unwrap().status(), 200);
    assert_eq!(login("wrong password").await.unwrap().status(), 401);
    let traced = crate::test_otel::test_otel_in_trace(app).await;
    assert_eq!(traced.status(), 200);
    let videos = app.get_as("/api/videos", &viewer).await;
    assert_eq!(videos.status(), 200);
    assert_eq!(app.get("/no/such/route").await.status(), 404);
    let bad = app.get_as("/api/progress/not-a-uuid", &viewer).await;
    assert!(bad.status().is_client_error(), "{}", bad.status());

    // Error events inside spans, from `#[instrument(err)]` and from `error!`.
    let root = tracing::info_span!(target: "vidscope_api", "work.root");
    let trace_id = root.span_context().trace_id().to_string();
    root.in_scope(|| {
        let _ = fallible();
        tracing::info_span!(target: "vidscope_api", "work.logged").in_scope(|| {
            tracing::error!(target: "vidscope_api", attempt = 2_i64, "upload failed token=abc");
        });
    });
    drop(root);
    app.flush_telemetry().await;
    trace_id
}

fn value_of(key: &str, v: &AttrValue) -> String {
    let kind = match v {
        AttrValue::Str(_) => "str",
        AttrValue::Bool(_) => "bool",
        AttrValue::Int(_) => "int",
        AttrValue::Double(_) => "double",
        AttrValue::Bytes(_) => "bytes",
        AttrValue::Array(_) => "array",
        AttrValue::Map(_) => "map",
        AttrValue::Empty => "empty",
    };
    if STABLE_VALUES.contains(&key) {
        format!("{key}:{kind}={v}")
    } else {
        format!("{key}:{kind}")
    }
}

fn attrs(a: &[(String, AttrValue)]) -> String {
    let mut out: Vec<String> = a.iter().map(|(k, v)| value_of(k, v)).collect();
    out.sort();
    out.join(",")
}

/// One line per span: name, kind, status, parent (by name), scope, attributes and events.
fn span_lines(spans: &[CapturedSpan]) -> Vec<String> {
    let by_id: BTreeMap<&str, &str> = spans
        .iter()
        .map(|s| (s.span_id.as_str(), s.name.as_str()))
        .collect();
    let mut out: Vec<String> = spans
        .iter()
        .map(|s| {
            let parent = match s.parent_span_id.as_deref() {
                None => "root",
                Some(id) => by_id.get(id).copied().unwrap_or("remote"),
            };
            let mut events: Vec<String> = s
                .events
                .iter()
                .map(|e| format!("{}{{{}}}", e.name, attrs(&e.attributes)))
                .collect();
            events.sort();
            format!(
                "span {} kind={} status={} {:?} parent={parent} scope={}@{} attrs=[{}] events={events:?}",
                s.name,
                s.kind,
                s.status_code,
                s.status_message,
                s.scope_name,
                s.scope_version,
                attrs(&s.attributes),
            )
        })
        .collect();
    out.sort();
    out
}

/// One line per log record: severity, body, scope, attributes, whether it is in a trace.
///
/// sqlx's own slow-statement warning is left out: it comes when a statement takes over sqlx's
/// 1 s threshold, which depends on the machine's load, not on the backend (a loaded
/// clean-clone `.ci/run` once gave the sdk run one the fast run did not have), like the
/// `db.slow_query` event [`on`] puts out of reach.
fn log_lines(logs: &[CapturedLog]) -> Vec<String> {
    let mut out: Vec<String> = logs
        .iter()
        .filter(|l| !(l.scope_name == "sqlx::query" && l.attr("slow_threshold").is_some()))
        .map(|l| {
            format!(
                "log {} {} body={:?} event={:?} scope={}@{} attrs=[{}] in_trace={} flags={}",
                l.severity_number,
                l.severity_text,
                l.body,
                l.event_name,
                l.scope_name,
                l.scope_version,
                attrs(&l.attributes),
                l.trace_id.is_some(),
                l.flags,
            )
        })
        .collect();
    out.sort();
    out
}

/// The resource's keys and the schema URLs, once per signal.
fn envelope_lines(otlp: &CaptureReceiver) -> Vec<String> {
    let mut out = Vec::new();
    for r in otlp.trace_requests() {
        for rs in r.resource_spans {
            let mut keys: Vec<_> = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter().map(|kv| kv.key.clone()))
                .collect();
            keys.sort();
            out.push(format!("traces resource={keys:?}"));
            out.push(format!("traces resource schema={}", rs.schema_url));
            for ss in rs.scope_spans {
                out.push(format!("traces scope schema={}", ss.schema_url));
            }
        }
    }
    for r in otlp.logs_requests() {
        for rl in r.resource_logs {
            out.push(format!("logs schema={}", rl.schema_url));
            for sl in rl.scope_logs {
                out.push(format!("logs scope schema={}", sl.schema_url));
            }
        }
    }
    for r in otlp.metrics_requests() {
        for rm in r.resource_metrics {
            out.push(format!("metrics schema={}", rm.schema_url));
            for sm in rm.scope_metrics {
                let scope = sm.scope.unwrap_or_default();
                out.push(format!(
                    "metrics scope={}@{} schema={}",
                    scope.name, scope.version, sm.schema_url
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

struct Captured {
    spans: Vec<String>,
    logs: Vec<String>,
    envelope: Vec<String>,
    work: Vec<CapturedSpan>,
    app_logs: String,
}

async fn run(backend: Backend) -> Captured {
    let app = TestApp::builder().telemetry(on(backend)).spawn().await;
    let trace_id = workload(&app).await;
    // Everything is flushed; wait until nothing more arrives.
    let mut seen = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = (app.otlp.spans().len(), app.otlp.logs().len());
        if now == seen {
            break;
        }
        seen = now;
    }
    let spans = app.otlp.spans();
    let logs = app.otlp.logs();
    let captured = Captured {
        spans: span_lines(&spans),
        logs: log_lines(&logs),
        envelope: envelope_lines(&app.otlp),
        work: app.otlp.spans_in_trace(&trace_id),
        app_logs: app.logs.contents(),
    };
    app.stop().await;
    captured
}

fn same(what: &str, fast: &[String], sdk: &[String]) {
    let only_fast: Vec<_> = fast.iter().filter(|l| !sdk.contains(l)).collect();
    let only_sdk: Vec<_> = sdk.iter().filter(|l| !fast.contains(l)).collect();
    assert!(
        only_fast.is_empty() && only_sdk.is_empty() && fast.len() == sdk.len(),
        "{what} differ between the backends ({} fast, {} sdk)\nonly fast:\n{}\nonly sdk:\n{}",
        fast.len(),
        sdk.len(),
        only_fast
            .iter()
            .map(|l| format!("  {l}\n"))
            .collect::<String>(),
        only_sdk
            .iter()
            .map(|l| format!("  {l}\n"))
            .collect::<String>(),
    );
}

#[tokio::test]
async fn the_fast_backend_exports_what_the_stock_sdk_path_exports() {
    let fast = run(Backend::Fast).await;
    let sdk = run(Backend::Sdk).await;

    same("spans", &fast.spans, &sdk.spans);
    same("log records", &fast.logs, &sdk.logs);
    same("resources and schema URLs", &fast.envelope, &sdk.envelope);
    assert!(fast.spans.len() >= 8, "{:#?}", fast.spans);
    assert!(!fast.logs.is_empty());

    for (backend, c) in [("fast", &fast), ("sdk", &sdk)] {
        // Error events mark their span, with the event, scrubbed.
        let fallible = c
            .work
            .iter()
            .find(|s| s.name == "work.fallible")
            .unwrap_or_else(|| panic!("{backend}: no work.fallible span"));
        assert_eq!(fallible.status_code, 2, "{backend}: instrument(err)");
        let logged = c.work.iter().find(|s| s.name == "work.logged").unwrap();
        assert_eq!(logged.status_code, 2, "{backend}: error! in span");
        let event = logged
            .events
            .iter()
            .find(|e| e.name.starts_with("upload failed"))
            .unwrap_or_else(|| panic!("{backend}: {:?}", logged.events));
        assert!(!event.name.contains("abc"), "{backend}: {}", event.name);
        let root = c.work.iter().find(|s| s.name == "work.root").unwrap();
        assert_eq!(root.status_code, 0, "{backend}: only the spans with errors");
        // Scope version and schema.
        assert_eq!(fallible.scope_version, env!("CARGO_PKG_VERSION"));
        // Stdout lines are scrubbed on both.
        assert!(
            !c.app_logs.contains("hunter2") && !c.app_logs.contains("token=abc"),
            "{backend}: a secret reached stdout"
        );
        assert!(
            c.app_logs.contains("upload failed"),
            "{backend}: no stdout line"
        );
    }
    for expected in [
        format!("traces scope schema={}", vidscope_telemetry::SCHEMA_URL),
        format!("traces resource schema={}", vidscope_telemetry::SCHEMA_URL),
        format!("logs schema={}", vidscope_telemetry::SCHEMA_URL),
        format!(
            "metrics scope=vidscope@{} schema={}",
            env!("CARGO_PKG_VERSION"),
            vidscope_telemetry::SCHEMA_URL
        ),
    ] {
        assert!(
            fast.envelope.contains(&expected),
            "{expected} not in {:#?}",
            fast.envelope
        );
    }
}
