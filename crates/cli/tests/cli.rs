//! The `vidscope` binary as a user runs it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Process;

fn vidscope() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vidscope"));
    // The suite's own settings must not leak into the embedded defaults under test.
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "S3_BUCKET_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        c.env_remove(var);
    }
    c
}

#[test]
fn invalid_telemetry_config_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("OTEL_TRACES_SAMPLER_ARG", "ten"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "smoke-signals"),
    ] {
        let out = vidscope()
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "up",
                "--addr",
                "127.0.0.1:0",
            ])
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: stderr was {stderr}");
    }
}

#[test]
fn user_add_creates_a_user_once() {
    let dir = tempfile::tempdir().unwrap();
    let add = |email: &str, password: &str, role: &str| {
        vidscope()
            .args(["--data-dir", dir.path().to_str().unwrap(), "user", "add"])
            .args(["--email", email, "--password", password, "--role", role])
            .output()
            .unwrap()
    };
    let out = add("admin@example.com", "correct horse battery", "admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin user admin@example.com"));
    let again = add("ADMIN@example.com", "correct horse battery", "viewer");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = add("not-an-email", "correct horse battery", "viewer");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--email"));
    let short = add("v@example.com", "short", "viewer");
    assert!(String::from_utf8_lossy(&short.stderr).contains("--password"));
}

/// `vidscope up` on embedded defaults in `data_dir`, port 0, stdout piped, plus `env`.
fn up(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
    Process(
        vidscope()
            .args([
                "--data-dir",
                data_dir.to_str().unwrap(),
                "up",
                "--addr",
                "127.0.0.1:0",
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn up_serves_and_writes_telemetry_files_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = up(dir.path(), &[]);
    let base = common::up_base_url(child.0.stdout.take().unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: serde_json::Value = rt.block_on(async {
        let resp = reqwest::get(format!("{base}/api/test-otel")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("traceresponse"));
        resp.json().await.unwrap()
    });
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();
    let sent = Instant::now();
    let telemetry = dir.path().join("telemetry");
    let seen = |file: &str, needle: &str| {
        std::fs::read_to_string(telemetry.join(file))
            .unwrap_or_default()
            .contains(needle)
    };
    while !(seen("traces.json", &trace_id)
        && seen("logs.json", &trace_id)
        && seen("metrics.json", "vidscope.test_otel.requests"))
    {
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "telemetry files not written within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.stop();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

/// Every metric point of an OTLP-JSON metrics file: (service.name, service.instance.id,
/// metric name, point attributes as `k=v` sorted, value).
fn metric_points(text: &str) -> Vec<(String, String, String, Vec<String>, i64)> {
    let str_attr = |attrs: &serde_json::Value, key: &str| -> Option<String> {
        attrs
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)
            .and_then(|a| a["value"]["stringValue"].as_str().map(str::to_owned))
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        for rm in doc["resourceMetrics"].as_array().unwrap() {
            let attrs = &rm["resource"]["attributes"];
            let service = str_attr(attrs, "service.name").unwrap();
            let instance = str_attr(attrs, "service.instance.id").unwrap();
            for sm in rm["scopeMetrics"].as_array().unwrap() {
                for m in sm["metrics"].as_array().unwrap() {
                    let Some(points) = m["sum"]["dataPoints"]
                        .as_array()
                        .or_else(|| m["gauge"]["dataPoints"].as_array())
                    else {
                        continue;
                    };
                    for p in points {
                        let mut labels: Vec<String> = p["attributes"]
                            .as_array()
                            .map(|a| a.as_slice())
                            .unwrap_or_default()
                            .iter()
                            .map(|a| {
                                let v = &a["value"];
                                let v = v["stringValue"]
                                    .as_str()
                                    .map_or_else(|| v.to_string(), str::to_owned);
                                format!("{}={v}", a["key"].as_str().unwrap())
                            })
                            .collect();
                        labels.sort();
                        // 64-bit integers are numbers in this file, strings in the
                        // Collector's; read either.
                        let int = &p["asInt"];
                        let value = int
                            .as_i64()
                            .or_else(|| int.as_str().map(|v| v.parse().unwrap()))
                            .or_else(|| p["asDouble"].as_f64().map(|v| v as i64))
                            .unwrap_or_else(|| panic!("a point without a number: {p}"));
                        out.push((
                            service.clone(),
                            instance.clone(),
                            m["name"].as_str().unwrap().to_owned(),
                            labels,
                            value,
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Under `vidscope up` the API and the worker still report as two services, each with its
/// own instance id; before any traffic every counter and gauge of the catalog already has its
/// known label sets at 0 (the breaker's needs a CRM, the diagnostic counter a call), and the
/// banner's URLs answer.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]
fn up_reports_two_services_and_every_counter_and_gauge_from_the_start() {
    use vidscope_telemetry::catalog::{CATALOG, Kind};

    let dir = tempfile::tempdir().unwrap();
    let mut child = up(dir.path(), &[("VIDSCOPE_WORKER_GAUGE_INTERVAL_MS", "200")]);
    let mut banner = Vec::new();
    common::scan_stdout(child.0.stdout.take().unwrap(), "the banner", |line| {
        banner.push(line.to_owned());
        line.trim().starts_with("liveness").then_some(())
    });
    let url = |label: &str| -> String {
        banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} line in {banner:#?}"))
            .trim()
            .to_owned()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (label, path, status) in [
        ("sign in", "/login", 200),
        // Signed out: both pages send the visitor to sign in.
        ("lessons", "/videos", 303),
        ("trace viewer", "/trace-viewer", 303),
        ("API (spec)", "/api/openapi.json", 200),
    ] {
        let url = url(label);
        assert!(url.ends_with(path), "{label}: {url}");
        let got = rt.block_on(client.get(&url).send()).unwrap().status();
        assert_eq!(got.as_u16(), status, "{label} {url}");
    }
    assert!(
        !banner.iter().any(|l| l.trim().ends_with("/api/")),
        "no bare /api/ (a 404): {banner:#?}"
    );

    let metrics = dir.path().join("telemetry").join("metrics.json");
    let worker_wanted: Vec<&str> = [
        "job.queue_depth",
        "job.failures_total",
        "job.dead_letter_total",
        "outbox.pending",
        "workflow.run.total",
        "workflow.run.status",
        "workflow.retry.count",
        "workflow.step.status",
        "workflow.db.upsert",
        "workflow.image.uploaded",
        "messaging.client.sent.messages",
    ]
    .into();
    let api_wanted = [
        "progress.updates_total",
        "video.buffering_events_total",
        "video.resume_failures_total",
        "vidscope.test_otel.requests",
        "video.admin_actions_total",
        "user.account_actions_total",
    ];
    // The catalog's counters and gauges are all named here (a new one must be primed too),
    // except the breaker's (it exists only with a CRM) and the telemetry's own (observed).
    for spec in CATALOG {
        if matches!(spec.kind, Kind::Counter | Kind::Gauge)
            && spec.name != "crm.circuit_breaker.state"
        {
            assert!(
                worker_wanted.contains(&spec.name) || api_wanted.contains(&spec.name),
                "{} is neither primed by the worker nor by the API",
                spec.name
            );
        }
    }
    let started = Instant::now();
    let points = loop {
        let points = metric_points(&std::fs::read_to_string(&metrics).unwrap_or_default());
        let has = |service: &str, name: &str| {
            points
                .iter()
                .any(|(s, _, n, _, _)| s == service && n == name)
        };
        if worker_wanted.iter().all(|n| has("vidscope-worker", n))
            && api_wanted.iter().all(|n| has("vidscope-api", n))
        {
            break points;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not all primed within 15 s; worker has {:?}, api has {:?}",
            worker_wanted
                .iter()
                .filter(|n| has("vidscope-worker", n))
                .collect::<Vec<_>>(),
            api_wanted
                .iter()
                .filter(|n| has("vidscope-api", n))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = child.stop();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");

    // Two services, one instance id each, and no point under any other name.
    let instances = |service: &str| -> std::collections::BTreeSet<&str> {
        points
            .iter()
            .filter(|p| p.0 == service)
            .map(|p| p.1.as_str())
            .collect()
    };
    let (api, worker) = (instances("vidscope-api"), instances("vidscope-worker"));
    assert_eq!((api.len(), worker.len()), (1, 1), "{api:?} {worker:?}");
    assert_ne!(api, worker);
    let services: std::collections::BTreeSet<&str> = points.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        services,
        ["vidscope-api", "vidscope-worker"].into(),
        "every metric point belongs to one of the two services"
    );
    // No job ran: every value is 0, and the depth gauge has all 4 job types x 4 states.
    for (service, _, name, labels, value) in &points {
        assert_eq!(*value, 0, "{service} {name} {labels:?}");
    }
    let depth_sets: std::collections::BTreeSet<&Vec<String>> = points
        .iter()
        .filter(|p| p.2 == "job.queue_depth")
        .map(|p| &p.3)
        .collect();
    assert_eq!(depth_sets.len(), 16, "{depth_sets:?}");
    assert!(depth_sets.contains(&vec![
        "job.type=video.thumbnail".to_owned(),
        "state=ready".to_owned()
    ]));
    let failure_sets = points
        .iter()
        .filter(|p| p.2 == "job.failures_total")
        .map(|p| &p.3)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        failure_sets.len(),
        8,
        "4 job types x 2 classes: {failure_sets:?}"
    );

    // Logs: the worker's own lines are the worker's, the API's the API's.
    let logs = std::fs::read_to_string(dir.path().join("telemetry").join("logs.json")).unwrap();
    let mut by_body = std::collections::BTreeMap::new();
    for line in logs.lines() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        for rl in doc["resourceLogs"].as_array().unwrap() {
            let service = common::service_name(&rl["resource"]).unwrap().to_owned();
            for sl in rl["scopeLogs"].as_array().unwrap() {
                for r in sl["logRecords"].as_array().unwrap() {
                    if let Some(body) = r["body"]["stringValue"].as_str() {
                        by_body.insert(body.to_owned(), service.clone());
                    }
                }
            }
        }
    }
    assert_eq!(
        by_body.get("worker started").map(String::as_str),
        Some("vidscope-worker"),
        "{by_body:?}"
    );
}

/// `OTEL_SERVICE_NAME` renames both services of `vidscope up`, keeping them apart.
#[test]
fn up_names_its_two_services_from_otel_service_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = up(dir.path(), &[("OTEL_SERVICE_NAME", "acme")]);
    common::up_base_url(child.0.stdout.take().unwrap());
    let metrics = dir.path().join("telemetry").join("metrics.json");
    let started = Instant::now();
    let services = loop {
        let services: std::collections::BTreeSet<String> =
            metric_points(&std::fs::read_to_string(&metrics).unwrap_or_default())
                .into_iter()
                .map(|p| p.0)
                .collect();
        if services.len() >= 2 {
            break services;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "two services within 15 s: {services:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(child.stop().success());
    assert_eq!(
        services,
        ["acme-api", "acme-worker"].map(String::from).into()
    );
}
