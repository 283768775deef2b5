//! `vidscope loadgen` against `vidscope up` as separate processes, both exporting OTLP to the
//! capture receiver: the traffic is realistic enough to make the services emit every metric in
//! the catalog, and what they emit is written for `scripts/check-stack.sh` (the dashboards'
//! and rules' consistency check) when `VIDSCOPE_EMITTED_METRICS` names a file.

#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use vidscope_testkit::otlp::{CaptureReceiver, MetricKind};

mod common;
use common::ADMIN;

/// Instruments the load cannot make the services emit, and why.
const NOT_EXERCISED: &[(&str, &str)] = &[(
    "vidscope.test_otel.requests",
    "recorded only by the diagnostic route /api/test-otel (tests/cli.rs covers it)",
)];

/// A CRM that answers 503 to the first contact's first three upserts (all the attempts of one
/// job, so the queue retries that job) and 200 to everything else.
async fn fake_crm() -> String {
    #[derive(Default)]
    struct First {
        key: Option<String>,
        calls: u32,
    }
    let first = Arc::new(Mutex::new(First::default()));
    let app = Router::new()
        .route(
            "/oauth/token",
            post(|| async {
                Json(serde_json::json!({
                    "access_token": "loadgen-token", "token_type": "Bearer", "expires_in": 3600,
                }))
            }),
        )
        .route(
            "/contacts/upsert",
            post(
                |State(first): State<Arc<Mutex<First>>>, headers: HeaderMap| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let fail = {
                        let mut f = first.lock().unwrap();
                        let first_key = f.key.get_or_insert_with(|| key.clone()).clone();
                        if first_key == key {
                            f.calls += 1;
                        }
                        first_key == key && f.calls <= 3
                    };
                    let status = if fail {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    (status, Json(serde_json::json!({ "ok": !fail }))).into_response()
                },
            ),
        )
        .with_state(first);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn type_of(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Gauge => "gauge",
        MetricKind::Sum {
            monotonic: true, ..
        } => "counter",
        MetricKind::Sum { .. } => "updowncounter",
        MetricKind::Histogram { .. } => "histogram",
        MetricKind::ExponentialHistogram { .. } => "exponential_histogram",
        MetricKind::Summary => "summary",
        MetricKind::Empty => "empty",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_traffic_makes_the_services_emit_every_catalog_metric() {
    let receiver = CaptureReceiver::start().await;
    let crm = fake_crm().await;
    let db = vidscope_testkit::db::fresh_db().await;
    let dir = tempfile::tempdir().unwrap();

    let mut up = common::up_command(dir.path(), &db.url, &receiver.grpc_endpoint());
    up.env("VIDSCOPE_JOB_BACKOFF_MS", "200")
        .env("VIDSCOPE_CRM_URL", &crm)
        .env("VIDSCOPE_CRM_CLIENT_ID", "loadgen")
        .env("VIDSCOPE_CRM_CLIENT_SECRET", "loadgen-secret")
        .env("VIDSCOPE_CRM_MAX_ATTEMPTS", "3")
        // Quiet logs must not quiet traces (the span check below failed that way once).
        .env("RUST_LOG", "warn");
    // The object store of the compose stack (S3, streamed through the API) when the suite has
    // one; else the local store.
    if std::env::var_os("S3_ENDPOINT").is_some() {
        let server = vidscope_testkit::s3::S3TestServer::get();
        let store = server.fresh_bucket().await;
        if let vidscope_core::storage::StoreKind::S3 { bucket, .. } = &store.kind {
            up.env("S3_BUCKET_NAME", bucket)
                .env("S3_ENDPOINT", &server.endpoint)
                .env("S3_REGION", &server.region)
                .env("S3_ACCESS_KEY_ID", &server.access_key_id)
                .env("S3_SECRET_ACCESS_KEY", &server.secret_access_key)
                .env("VIDSCOPE_S3_STREAM", "proxy");
        }
    } else {
        up.env_remove("S3_BUCKET_NAME");
    }
    let (child, base) = common::start_up(up).await;

    let loadgen = tokio::process::Command::new(env!("CARGO_BIN_EXE_vidscope"))
        .args([
            "loadgen",
            "--target",
            &base,
            "--duration",
            "25s",
            "--users",
            "3",
        ])
        .args(["--upload-every", "2s", "--max-uploads", "7"])
        .args([
            "--progress-interval",
            "1s",
            "--error-share",
            "0.2",
            "--json",
        ])
        .env("VIDSCOPE_ADMIN_EMAIL", ADMIN.0)
        .env("VIDSCOPE_ADMIN_PASSWORD", ADMIN.1)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env_remove("OTEL_SERVICE_NAME")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&loadgen.stderr);
    assert!(loadgen.status.success(), "loadgen failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&loadgen.stdout)
        .unwrap_or_else(|e| panic!("loadgen --json printed no JSON ({e}): {stderr}"));
    let routes: BTreeMap<&str, &serde_json::Value> = summary["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["route"].as_str().unwrap(), r))
        .collect();
    assert!(summary["requests"].as_u64().unwrap() >= 100, "{summary}");
    assert_eq!(
        summary["unexpected"], 0,
        "every status as expected: {summary}"
    );
    assert!(
        summary["provoked_errors"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert_eq!(
        summary["uploads"], 6,
        "7 uploads, the text file refused: {summary}"
    );
    for route in [
        "POST /api/auth/register",
        "POST /api/auth/login",
        "GET /api/videos",
        "GET /api/videos/{id}",
        "GET /api/videos/{filename}",
        "GET /api/progress/{videoId}",
        "POST /api/progress",
        "POST /api/telemetry/player",
        "POST /api/upload",
    ] {
        assert!(routes.contains_key(route), "no {route} in {summary}");
    }

    // Every instrument of the catalog, unless listed as not exercised, reaches the receiver.
    let wanted: BTreeSet<&str> = vidscope_telemetry::catalog::CATALOG
        .iter()
        .map(|s| s.name)
        .filter(|n| !NOT_EXERCISED.iter().any(|(x, _)| x == n))
        .collect();
    let all_seen = receiver
        .wait_until(
            |r| {
                let seen: BTreeSet<String> = r.metrics().into_iter().map(|m| m.name).collect();
                wanted.iter().all(|n| seen.contains(*n))
            },
            Duration::from_secs(30),
        )
        .await;
    let seen: BTreeSet<String> = receiver.metrics().into_iter().map(|m| m.name).collect();
    let missing: Vec<_> = wanted.iter().filter(|n| !seen.contains(**n)).collect();
    assert!(
        all_seen.is_ok() && missing.is_empty(),
        "never emitted: {missing:?}"
    );

    // The service graph's edge: a loadgen CLIENT span is the parent of an API SERVER span.
    let spans = receiver.spans();
    let client_ids: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.resource_attr_str("service.name") == Some("vidscope-loadgen"))
        .filter(|s| s.kind == 3)
        .map(|s| s.span_id.as_str())
        .collect();
    assert!(!client_ids.is_empty(), "no loadgen client spans");
    let continued = spans
        .iter()
        .filter(|s| s.resource_attr_str("service.name") == Some("vidscope-api") && s.kind == 2)
        .filter(|s| {
            s.parent_span_id
                .as_deref()
                .is_some_and(|p| client_ids.contains(p))
        })
        .count();
    assert!(
        continued >= 50,
        "only {continued} API spans continue a loadgen span"
    );

    // Stop `up` gracefully (its last metrics flush), then write what was emitted.
    let status = tokio::task::spawn_blocking(move || child.stop())
        .await
        .unwrap();
    assert!(status.success(), "vidscope up exit: {status:?}");

    // Per metric: unit, type and every attribute key seen on its points (the labels
    // check-stack compares each panel's filters and groupings with).
    let mut emitted: BTreeMap<String, (String, &str, BTreeSet<String>)> = BTreeMap::new();
    for m in receiver.metrics() {
        let entry = emitted
            .entry(m.name.clone())
            .or_insert_with(|| (m.unit.clone(), type_of(m.kind), BTreeSet::new()));
        for p in &m.points {
            entry.2.extend(p.attributes.iter().map(|(k, _)| k.clone()));
        }
    }
    for spec in vidscope_telemetry::catalog::CATALOG {
        if let Some((unit, _, _)) = emitted.get(spec.name) {
            assert_eq!(
                unit, spec.unit,
                "{} exported with the catalog's unit",
                spec.name
            );
        }
    }
    if let Some(path) = std::env::var_os("VIDSCOPE_EMITTED_METRICS") {
        let list: Vec<_> = emitted
            .iter()
            .map(|(name, (unit, ty, labels))| {
                serde_json::json!({ "name": name, "unit": unit, "type": ty, "labels": labels })
            })
            .collect();
        let doc = serde_json::json!({
            "source": "crates/cli/tests/loadgen.rs: vidscope up + vidscope loadgen, captured over OTLP",
            "not_exercised": NOT_EXERCISED.iter().map(|(n, why)| serde_json::json!({"name": n, "why": why})).collect::<Vec<_>>(),
            "metrics": list,
        });
        let path = std::path::PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
}
