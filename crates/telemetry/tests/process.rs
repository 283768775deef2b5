//! Telemetry as a service process runs it. `init` installs the global subscriber, and the
//! threads the exporters run on (the SDK's batch processors and metric reader, this crate's
//! export pipelines) log through that global subscriber, so each scenario runs in a child
//! process of this test binary: the `child` test, which does nothing unless
//! `VIDSCOPE_TEST_CHILD` names a scenario, configured from the environment as a service is.
//! The parent reads the child's stdout and what the OTLP capture receiver got.

mod support;

use support::{json_lines, run_child};
use vidscope_telemetry::TelemetryConfig;
use vidscope_testkit::otlp::{AttrValue, CaptureReceiver};

const BACKENDS: [&str; 2] = ["fast", "sdk"];

/// The body of the application's log record in the `app` scenario.
const APP_RECORD: &str = "application record";

/// The child's side. See the module documentation.
#[test]
fn child() {
    let Ok(scenario) = std::env::var("VIDSCOPE_TEST_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = TelemetryConfig::new("vidscope-test").from_env().unwrap();
        let guard = vidscope_telemetry::init(&config).unwrap();
        match scenario.as_str() {
            "app" => {
                let span = tracing::info_span!(
                    target: "vidscope_api",
                    "work",
                    pin = 4321_i64,
                    session_id = 99887766_i64
                );
                span.in_scope(|| {
                    tracing::info!(target: "vidscope_api", password = 12345678_i64, api_token = 8765.5, "{APP_RECORD}");
                });
                drop(span);
                // A metric export while the log pipeline still runs: the OTLP metric exporter
                // logs its diagnostics now, and any that became log records would be exported
                // at shutdown.
                guard.flush().await;
            }
            "console" => {
                let span = tracing::info_span!(
                    target: "vidscope_api",
                    "console.demo",
                    lesson.id = 7_i64,
                    password = "hunter2"
                );
                span.in_scope(|| {
                    tracing::info!(
                        target: "vidscope_api",
                        attempt = 1_i64,
                        video.id = 42_i64,
                        "hello console"
                    );
                });
                drop(span);
                guard.metrics().test_otel_requests.add(3, &[]);
            }
            "startup" => {}
            other => panic!("unknown scenario {other}"),
        }
        guard.shutdown().await;
    });
}

/// The OTLP variables pointing every signal at `receiver` over HTTP/protobuf.
fn otlp_vars(receiver: &CaptureReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
    ]
}

/// A fresh receiver, and the stdout of the `app` scenario run on `backend` against it with
/// `extra` on top of [`otlp_vars`].
async fn app_against_a_receiver(
    backend: &'static str,
    extra: &[(&'static str, &str)],
) -> (CaptureReceiver, String) {
    let receiver = CaptureReceiver::start().await;
    let mut vars = otlp_vars(&receiver);
    vars.extend(extra.iter().map(|&(k, v)| (k, v.to_owned())));
    let stdout = child_in_background("app", backend, vars).await;
    (receiver, stdout)
}

async fn child_in_background(
    scenario: &'static str,
    backend: &'static str,
    vars: Vec<(&'static str, String)>,
) -> String {
    tokio::task::spawn_blocking(move || run_child(scenario, backend, &vars))
        .await
        .unwrap()
}

/// `OTEL_LOG_LEVEL=debug` shows the exporters' diagnostics on stdout: each OTLP send attempt
/// (`otlp_transport`, both backends), and on the fast backend this crate's own pipeline's
/// batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_log_level_debug_shows_export_attempts_on_both_backends() {
    for backend in BACKENDS {
        let (receiver, stdout) =
            app_against_a_receiver(backend, &[("OTEL_LOG_LEVEL", "debug")]).await;
        let lines = json_lines(&stdout);
        let started: Vec<_> = lines
            .iter()
            .filter(|l| {
                l["target"] == "vidscope_telemetry::export"
                    && l["message"] == "sending a telemetry export"
            })
            .collect();
        assert!(
            !started.is_empty(),
            "{backend}: no OTLP send attempt on stdout:\n{stdout}"
        );
        assert_eq!(started[0]["level"], "DEBUG", "{backend}");
        assert_eq!(started[0]["attempt"], 1, "{backend}");
        if backend == "fast" {
            let ours: Vec<_> = lines
                .iter()
                .filter(|l| l["target"] == "vidscope_telemetry::export" && l["signal"] == "logs")
                .collect();
            assert!(
                !ours.is_empty(),
                "{backend}: no log export attempt:\n{stdout}"
            );
            assert_eq!(ours[0]["message"], "exporting a telemetry batch");
            assert_eq!(ours[0]["level"], "DEBUG");
            assert_eq!(
                ours[0]["destination"],
                format!("otlp http/protobuf {}/v1/logs", receiver.http_endpoint())
            );
        }
        // Without it, no debug diagnostics.
        let stdout = child_in_background("app", backend, otlp_vars(&receiver)).await;
        assert!(
            json_lines(&stdout).iter().all(|l| l["level"] != "DEBUG"),
            "{backend}: debug lines at the default OTEL_LOG_LEVEL:\n{stdout}"
        );
        receiver.shutdown().await;
    }
}

/// `RUST_LOG=debug` turns no OpenTelemetry crate's own event into an exported log record: the
/// exporters' diagnostics during an export would otherwise be exported by the next export, a
/// feedback loop. The application's record still arrives, with its numeric secrets redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_debug_exports_no_opentelemetry_record_on_both_backends() {
    for backend in BACKENDS {
        let (receiver, stdout) = app_against_a_receiver(backend, &[("RUST_LOG", "debug")]).await;
        let logs = receiver.logs();
        let app: Vec<_> = logs
            .iter()
            .filter(|l| l.body.as_deref() == Some(APP_RECORD))
            .collect();
        assert_eq!(app.len(), 1, "{backend}: {}", receiver.summary());
        let otel: Vec<_> = logs
            .iter()
            .filter(|l| l.scope_name.contains("opentelemetry"))
            .map(|l| format!("{} {:?} {:?}", l.scope_name, l.event_name, l.body))
            .collect();
        assert_eq!(
            otel,
            Vec::<String>::new(),
            "{backend}: OpenTelemetry's own records exported"
        );
        // The application's debug lines do reach stdout.
        assert!(
            stdout.contains("\"level\":\"DEBUG\""),
            "{backend}:\n{stdout}"
        );
        receiver.shutdown().await;
    }
}

/// A sensitive key with a numeric value is a secret too: redacted in the OTLP log record, the
/// span attributes and the stdout line, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_secrets_are_redacted_over_otlp_on_both_backends() {
    let redacted = AttrValue::Str("[REDACTED]".into());
    for backend in BACKENDS {
        let (receiver, stdout) = app_against_a_receiver(backend, &[]).await;
        let logs = receiver.logs_where(|l| l.body.as_deref() == Some(APP_RECORD));
        assert_eq!(logs.len(), 1, "{backend}: {}", receiver.summary());
        assert_eq!(logs[0].attr("password"), Some(&redacted), "{backend}");
        assert_eq!(logs[0].attr("api_token"), Some(&redacted), "{backend}");
        let spans = receiver.spans_named("work");
        assert_eq!(spans.len(), 1, "{backend}: {}", receiver.summary());
        assert_eq!(spans[0].attr("session_id"), Some(&redacted), "{backend}");
        assert_eq!(
            spans[0].attr("pin"),
            Some(&AttrValue::Int(4321)),
            "{backend}: not a sensitive key"
        );
        let line = json_lines(&stdout)
            .into_iter()
            .find(|l| l["message"] == APP_RECORD)
            .unwrap_or_else(|| panic!("{backend}: no stdout line:\n{stdout}"));
        assert_eq!(line["password"], "[REDACTED]", "{backend}");
        assert_eq!(line["api_token"], "[REDACTED]", "{backend}");
        for secret in ["12345678", "8765.5"] {
            assert!(!stdout.contains(secret), "{backend}: {secret} on stdout");
            assert!(
                !receiver.raw_contains(secret.as_bytes()),
                "{backend}: {secret} exported"
            );
        }
        receiver.shutdown().await;
    }
}

/// Replaces the values that change from run to run (times, ids, durations) with `*`.
fn stable(line: &str) -> String {
    line.split(' ')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if ["time", "trace_id", "span_id", "duration_ms"].contains(&k) => {
                format!("{k}=*")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `OTEL_*_EXPORTER=console` writes one readable line per span, log record and metric data
/// point to stdout, scrubbed like every other output, the same on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_exporters_write_readable_lines_on_both_backends() {
    for backend in BACKENDS {
        let vars = vec![
            ("OTEL_TRACES_EXPORTER", "console".to_owned()),
            ("OTEL_LOGS_EXPORTER", "console".to_owned()),
            ("OTEL_METRICS_EXPORTER", "console".to_owned()),
        ];
        let stdout = child_in_background("console", backend, vars).await;
        let find = |prefix: &str, needle: &str| -> String {
            let found: Vec<&str> = stdout
                .lines()
                .filter(|l| l.starts_with(prefix) && l.contains(needle))
                .collect();
            assert_eq!(found.len(), 1, "{backend}: {prefix} {needle}:\n{stdout}");
            found[0].to_owned()
        };
        let span = find("otel.span ", "name=\"console.demo\"");
        assert_eq!(
            stable(&span),
            "otel.span time=* name=\"console.demo\" kind=internal status=unset duration_ms=* \
             trace_id=* span_id=* service.name=\"vidscope-test\" scope=\"vidscope\" \
             lesson.id=7 password=\"[REDACTED]\"",
            "{backend}"
        );
        let log = find("otel.log ", "hello console");
        assert_eq!(
            stable(&log),
            "otel.log time=* severity=INFO scope=\"vidscope_api\" body=\"hello console\" \
             trace_id=* span_id=* service.name=\"vidscope-test\" attempt=1 video.id=42",
            "{backend}"
        );
        // The record is the span's.
        let field = |line: &str, key: &str| {
            line.split(' ')
                .find_map(|p| p.strip_prefix(&format!("{key}=")).map(str::to_owned))
                .unwrap()
        };
        assert_eq!(
            field(&log, "trace_id"),
            field(&span, "trace_id"),
            "{backend}"
        );
        assert_eq!(field(&log, "span_id"), field(&span, "span_id"), "{backend}");
        assert_eq!(field(&span, "trace_id").len(), 32, "{backend}");
        let metric = find("otel.metric ", "name=\"vidscope.test_otel.requests\"");
        assert_eq!(
            stable(&metric),
            "otel.metric time=* name=\"vidscope.test_otel.requests\" unit=\"{request}\" \
             type=counter value=3 service.name=\"vidscope-test\" scope=\"vidscope\"",
            "{backend}"
        );
        assert!(!stdout.contains("hunter2"), "{backend}");
    }
}

/// Each service logs one line at start naming the backend, each signal's exporter and
/// destination, the protocol and the sampler, found by `grep -i otel`; no header value and no
/// endpoint password in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_greppable_startup_line_names_what_was_started_on_both_backends() {
    for backend in BACKENDS {
        let vars = vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:pw-s3cr3t@127.0.0.1:9".to_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20hdr-s3cr3t,x-tenant=t1".to_owned(),
            ),
            ("OTEL_LOGS_EXPORTER", "console".to_owned()),
            ("OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25".to_owned()),
        ];
        let stdout = child_in_background("startup", backend, vars).await;
        let grep: Vec<&str> = stdout
            .lines()
            .filter(|l| l.to_ascii_lowercase().contains("otel"))
            .collect();
        assert_eq!(grep.len(), 1, "{backend}: grep -i otel:\n{stdout}");
        let line: serde_json::Value = serde_json::from_str(grep[0]).unwrap();
        let mut fields = line.as_object().unwrap().clone();
        for volatile in ["timestamp", "trace_id", "span_id"] {
            assert!(fields.remove(volatile).is_some(), "{backend}: {volatile}");
        }
        assert_eq!(
            serde_json::Value::Object(fields),
            serde_json::json!({
                "level": "INFO",
                "message": "OpenTelemetry telemetry started",
                "enabled": true,
                "telemetry.backend": backend,
                "service.name": "vidscope-test",
                "traces.exporter": "otlp",
                "traces.endpoint": "http://127.0.0.1:9/v1/traces",
                "metrics.exporter": "none",
                "metrics.endpoint": "",
                "logs.exporter": "console",
                "logs.endpoint": "stdout",
                "otlp.protocol": "http/protobuf",
                "sampler": "parentbased_traceidratio",
                "sampler.ratio": 0.25,
                "otel.log_level": "warn",
                "target": "vidscope_telemetry::init",
            }),
            "{backend}"
        );
        assert!(
            !stdout.contains("s3cr3t"),
            "{backend}: a secret on stdout:\n{stdout}"
        );
    }
}
