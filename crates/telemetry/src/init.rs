//! Building telemetry from a [`TelemetryConfig`]: the metric provider (the SDK's, on both
//! backends), the chosen backend's subscriber and span and log pipelines (`fast::build` or
//! `sdk::build`), the guard that flushes them, and the start-up line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::global;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::backend::{Built, Inputs, Signals};
use crate::catalog::{Metrics, view};
use crate::config::{Backend, ExporterKind, Signal, TelemetryConfig};
use crate::console::SharedWriter;
use crate::error::InitError;
use crate::export::{ExportStats, Guarded};
use crate::exporters::target;
use crate::file::fallback_file;
use crate::resource::{resource, scope};

/// Time for a batch's result to be counted once its export has given up.
const SETTLE: Duration = Duration::from_secs(1);

/// How long the guard waits for each of its two steps, spans and logs together, then
/// metrics: the longest export timeout of the three signals, plus [`SETTLE`]. An export under
/// way when the flush begins may take its whole timeout (a slow or black-holed collector), and
/// a shorter wait would end the process in the middle of it, losing the batch uncounted.
fn step_deadline(config: &TelemetryConfig) -> Duration {
    Signal::ALL
        .into_iter()
        .map(|s| config.signal_export_timeout(s))
        .max()
        .unwrap_or(config.export_timeout)
        + SETTLE
}

/// Owns the providers. Dropping it (or [`TelemetryGuard::shutdown`]) flushes spans and logs
/// together, then metrics (which carry the final drop counts), each step within the longest
/// export timeout plus a second: at most [`TelemetryGuard::shutdown_deadline`] in all.
pub struct TelemetryGuard {
    signals: Arc<dyn Signals>,
    meter_provider: Option<SdkMeterProvider>,
    metrics: Metrics,
    stats: Arc<ExportStats>,
    /// Each step's wait (see [`step_deadline`]).
    step: Duration,
    done: AtomicBool,
}

impl TelemetryGuard {
    /// The longest [`TelemetryGuard::shutdown`] (or the drop) waits: two steps of the longest
    /// export timeout plus a second, 22 s with the default `OTEL_EXPORTER_OTLP_TIMEOUT` of
    /// 10 s. A healthy collector takes milliseconds; the deadline is what a slow or
    /// unreachable one costs, for a caller budgeting its own shutdown.
    pub fn shutdown_deadline(&self) -> Duration {
        self.step * 2
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn stats(&self) -> &Arc<ExportStats> {
        &self.stats
    }

    /// Exports everything buffered so far. Runs on a blocking thread: the pipelines' flush and
    /// the metric reader's `force_flush` block, and the metric exporter's gRPC connection may
    /// live on the caller's runtime (on a current-thread runtime, this very thread).
    pub async fn flush(&self) {
        let (signals, mp) = self.providers();
        let step = self.step;
        let _ = tokio::task::spawn_blocking(move || {
            signals.flush(step);
            if let Some(mp) = mp {
                let _ = mp.force_flush();
            }
        })
        .await;
    }

    /// Flushes and stops all three signals. Idempotent.
    pub async fn shutdown(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let (signals, mp) = self.providers();
        let step = self.step;
        let _ = tokio::task::spawn_blocking(move || shutdown_all(signals, mp, step)).await;
    }

    fn providers(&self) -> (Arc<dyn Signals>, Option<SdkMeterProvider>) {
        (self.signals.clone(), self.meter_provider.clone())
    }
}

fn shutdown_all(signals: Arc<dyn Signals>, mp: Option<SdkMeterProvider>, step: Duration) {
    // Spans and logs, then metrics, which also carry the final drop counts.
    signals.shutdown(step);
    if let Some(mp) = mp {
        let _ = mp.shutdown_with_timeout(step);
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let (signals, mp) = self.providers();
        let step = self.step;
        // A separate thread, joined: never shut down on a runtime thread (it can deadlock
        // the gRPC exporter, rust-otel-matrix pitfall 3).
        let handle = std::thread::spawn(move || shutdown_all(signals, mp, step));
        let _ = handle.join();
    }
}

/// A built subscriber plus its guard, not yet installed. Tests install the dispatch per
/// thread; binaries call [`init`].
pub struct Telemetry {
    pub dispatch: Dispatch,
    pub guard: TelemetryGuard,
    /// The most verbose level any output takes (tracing's global maximum follows it); `None`
    /// would mean "unknown", which tracing treats as `TRACE`.
    pub level_hint: Option<LevelFilter>,
}

/// Builds and installs telemetry for the whole process: global subscriber, global providers,
/// W3C propagator. Must run inside a Tokio runtime when a gRPC exporter is configured.
///
/// Logs one info line saying what was started (see [`log_started`]).
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, InitError> {
    let t = build(config, BoxMakeWriter::new(std::io::stdout))?;
    install_globals(&t.guard);
    tracing::dispatcher::set_global_default(t.dispatch).map_err(|_| InitError::AlreadyInstalled)?;
    log_started(config);
    Ok(t.guard)
}

/// The start-up line: one info event (target `vidscope_telemetry::init`, so a stdout JSON line
/// and never an OTLP record) naming the backend, each signal's exporter and where it goes, the
/// OTLP protocol and the sampler, so `docker logs … | grep -i otel` answers "what is this
/// service sending where". Header values (`OTEL_EXPORTER_OTLP_HEADERS`, often a token) are
/// never in it, nor an endpoint's user and password.
pub fn log_started(config: &TelemetryConfig) {
    let exporter = |s: Signal| config.exporter(s).as_str();
    let to = |s: Signal| destination(config, s);
    let protocol = if Signal::ALL
        .iter()
        .any(|s| *config.exporter(*s) == ExporterKind::Otlp)
    {
        config.protocol.as_str()
    } else {
        "none"
    };
    if !config.enabled {
        tracing::info!(
            target: "vidscope_telemetry::init",
            enabled = false,
            telemetry.backend = config.backend.as_str(),
            service.name = %config.service_name,
            "OpenTelemetry telemetry disabled (OTEL_SDK_DISABLED or OTEL_ENABLED): JSON logs on stdout only"
        );
        return;
    }
    tracing::info!(
        target: "vidscope_telemetry::init",
        enabled = true,
        telemetry.backend = config.backend.as_str(),
        service.name = %config.service_name,
        traces.exporter = exporter(Signal::Traces),
        traces.endpoint = %to(Signal::Traces),
        metrics.exporter = exporter(Signal::Metrics),
        metrics.endpoint = %to(Signal::Metrics),
        logs.exporter = exporter(Signal::Logs),
        logs.endpoint = %to(Signal::Logs),
        otlp.protocol = protocol,
        sampler = config.sampler.name(),
        sampler.ratio = config.sampler.ratio(),
        otel.log_level = %config.sdk_log_level,
        "OpenTelemetry telemetry started"
    );
}

/// Where a signal goes, for the start-up line: the OTLP endpoint without any user and
/// password, the file, `stdout` or nothing.
fn destination(config: &TelemetryConfig, signal: Signal) -> String {
    match config.exporter(signal) {
        ExporterKind::Otlp => {
            let url = config.endpoints.get(&signal).map_or("", String::as_str);
            match url.split_once("://") {
                Some((scheme, rest)) => {
                    let authority_end = rest.find('/').unwrap_or(rest.len());
                    let start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
                    format!("{scheme}://{}", &rest[start..])
                }
                None => url.to_owned(),
            }
        }
        ExporterKind::File => config
            .file
            .dir
            .join(format!("{}.json", signal.as_str()))
            .display()
            .to_string(),
        ExporterKind::Console => "stdout".to_owned(),
        ExporterKind::None => String::new(),
    }
}

/// The global meter and tracer providers, for libraries that use the OpenTelemetry API instead
/// of tracing. OpenTelemetry Rust 0.32 has no global logger provider: its logs API is for
/// bridges, and libraries log through `tracing`, which both backends export.
pub fn install_globals(guard: &TelemetryGuard) {
    if let Some(mp) = &guard.meter_provider {
        global::set_meter_provider(mp.clone());
    }
    if let Some(tp) = guard.signals.api_tracer() {
        global::set_tracer_provider(tp.clone());
    }
}

/// Builds everything without installing anything global except the (stateless) propagator.
pub fn build(config: &TelemetryConfig, writer: BoxMakeWriter) -> Result<Telemetry, InitError> {
    crate::propagation::install_propagator();
    // One writer for the JSON log lines and the console exporters.
    let writer = SharedWriter::new(writer);
    let stats = Arc::new(ExportStats::default());
    // Parsed even when stdout lines are off, so a bad RUST_LOG always fails start-up naming
    // the variable.
    let stdout_filter = crate::filter::stdout(config)?;

    let (built, meter_provider) = if config.enabled {
        let resource = resource(config);
        let mp = meter_provider(config, &resource, &writer, &stats)?;
        let inputs = Inputs {
            resource: &resource,
            stats: &stats,
            writer,
            stdout_filter,
        };
        let built = match config.backend {
            Backend::Fast => crate::fast::build(config, inputs)?,
            Backend::Sdk => crate::sdk::build(config, inputs)?,
        };
        (built, Some(mp))
    } else {
        (crate::fast::off(config, stdout_filter, writer), None)
    };
    // Off, the instruments still exist (code records into them), on a provider that reads
    // nothing.
    let metrics = {
        let provider = meter_provider.clone().unwrap_or_default();
        let meter = opentelemetry::metrics::MeterProvider::meter_with_scope(&provider, scope());
        Metrics::new(&meter, stats.clone())
    };
    let Built {
        dispatch,
        level_hint,
        signals,
    } = built;
    Ok(Telemetry {
        dispatch,
        level_hint,
        guard: TelemetryGuard {
            signals,
            meter_provider,
            metrics,
            stats,
            step: step_deadline(config),
            done: AtomicBool::new(false),
        },
    })
}

/// Metrics: the SDK's meter provider on both backends, with the catalog's views and, unless
/// metrics are off, a periodic reader in front of the guarded exporter.
fn meter_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    writer: &SharedWriter,
    stats: &Arc<ExportStats>,
) -> Result<SdkMeterProvider, InitError> {
    let mut mp = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(view);
    if let Some(target) = target(config, Signal::Metrics, writer)? {
        let fallback = fallback_file(config, Signal::Metrics)?;
        let exporter = Guarded::new(target, fallback, stats.clone());
        mp = mp.with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(config.metric_export_interval)
                .build(),
        );
    }
    Ok(mp.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RUST_LOG` quiets logs only: with the log filter at `warn`, info spans still exist.
    #[test]
    fn a_warn_log_filter_still_admits_info_spans() {
        let mut config = TelemetryConfig::new("hint").with_file_exporters(std::env::temp_dir());
        config.log_filter = "warn".into();
        let t = build(&config, BoxMakeWriter::new(std::io::sink)).unwrap();
        tracing::dispatcher::with_default(&t.dispatch, || {
            // A target of its own: this crate's spans are never exported.
            let span = tracing::info_span!(target: "vidscope_api", "request");
            assert!(!span.is_disabled(), "info span disabled by RUST_LOG=warn");
        });
    }

    /// A `MakeWriter` into a shared buffer, for reading stdout lines back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// On both backends a stdout line carries its span's ids, and no secret.
    #[test]
    fn stdout_lines_carry_the_spans_ids_and_no_secret_on_both_backends() {
        use crate::span_ext::SpanExt as _;
        for backend in [Backend::Fast, Backend::Sdk] {
            let run = run_with_defaults(backend, "ids", || {
                let span = tracing::info_span!(target: "vidscope_api", "request");
                let _entered = span.enter();
                tracing::info!(
                    target: "vidscope_api",
                    password = "hunter2",
                    header = "Authorization: Bearer abc.def",
                    "signed https://s3/x?X-Amz-Signature=sig123 token=s3cr3t"
                );
                span.span_context()
            });
            let (text, sc) = (&run.stdout, &run.out);
            let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap())
                .unwrap_or_else(|e| panic!("{backend:?}: {e}: {text}"));
            assert!(sc.is_valid(), "{backend:?}");
            let ids = (sc.trace_id().to_string(), sc.span_id().to_string());
            assert_eq!(
                (&line["trace_id"], &line["span_id"]),
                (&ids.0.into(), &ids.1.into()),
                "{backend:?}: {line}"
            );
            for secret in ["hunter2", "abc.def", "sig123", "s3cr3t"] {
                assert!(
                    !text.contains(secret),
                    "{backend:?}: {secret} on stdout: {text}"
                );
            }
            assert_eq!(line["password"], "[REDACTED]", "{backend:?}");
        }
    }

    /// A library that uses the OpenTelemetry API exports through the installed global tracer,
    /// under its own scope, on both backends; on `sdk` it is a child of the current tracing
    /// span.
    #[test]
    fn the_global_tracer_exports_spans_made_through_the_opentelemetry_api() {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
        for backend in [Backend::Fast, Backend::Sdk] {
            let dir = tempfile_dir(&format!("global-{}", backend.as_str()));
            let mut config = TelemetryConfig::new("global").with_file_exporters(&dir);
            config.backend = backend;
            let t = build(&config, BoxMakeWriter::new(std::io::sink)).unwrap();
            install_globals(&t.guard);
            let parent = tracing::dispatcher::with_default(&t.dispatch, || {
                let span = tracing::info_span!(target: "vidscope_api", "request");
                let _entered = span.enter();
                let scope = opentelemetry::InstrumentationScope::builder("some_library")
                    .with_version("1.2.3")
                    .build();
                let tracer = global::tracer_provider().tracer_with_scope(scope);
                let mut lib = tracer.start("library.call");
                lib.set_attribute(KeyValue::new("password", "hunter2"));
                lib.end();
                crate::span_ext::SpanExt::span_context(&span)
            });
            drop(t);
            let text = std::fs::read_to_string(dir.join("traces.json")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            let mut library = None;
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                for ss in v["resourceSpans"][0]["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        if span["name"] == "library.call" {
                            library = Some((ss["scope"].clone(), span.clone()));
                        }
                    }
                }
            }
            let (scope, span) =
                library.unwrap_or_else(|| panic!("{backend:?}: not exported: {text}"));
            assert_eq!(scope["name"], "some_library", "{backend:?}");
            assert_eq!(scope["version"], "1.2.3", "{backend:?}");
            assert!(!text.contains("hunter2"), "{backend:?}: not scrubbed");
            if backend == Backend::Sdk {
                assert_eq!(
                    span["parentSpanId"].as_str(),
                    Some(parent.span_id().to_string().as_str()),
                    "{backend:?}: {span}"
                );
            }
        }
    }

    /// What [`run_with_files`] gives back: stdout, `traces.json`, `logs.json` and what the
    /// workload returned.
    struct Run<R> {
        stdout: String,
        traces: String,
        logs: String,
        out: R,
    }

    /// Builds telemetry for `backend` into files under a fresh directory, with stdout
    /// captured; runs `f` under it and flushes.
    fn run_with_files<R>(
        backend: Backend,
        tag: &str,
        configure: impl FnOnce(&mut TelemetryConfig),
        f: impl FnOnce() -> R,
    ) -> Run<R> {
        let dir = tempfile_dir(&format!("{tag}-{}", backend.as_str()));
        let mut config = TelemetryConfig::new(tag).with_file_exporters(&dir);
        config.backend = backend;
        configure(&mut config);
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let t = build(&config, BoxMakeWriter::new(move || writer.clone())).unwrap();
        let out = tracing::dispatcher::with_default(&t.dispatch, f);
        drop(t);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let (traces, logs) = (read("traces.json"), read("logs.json"));
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        Run {
            stdout,
            traces,
            logs,
            out,
        }
    }

    /// [`run_with_files`] with the default configuration.
    fn run_with_defaults<R>(backend: Backend, tag: &str, f: impl FnOnce() -> R) -> Run<R> {
        run_with_files(backend, tag, |_| {}, f)
    }

    /// Every log record in a `logs.json`, with its scope's name.
    fn log_records(logs: &str) -> Vec<(String, serde_json::Value)> {
        let mut records = Vec::new();
        for l in logs.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            for sl in v["resourceLogs"][0]["scopeLogs"].as_array().unwrap() {
                let scope = sl["scope"]["name"].as_str().unwrap_or_default();
                for r in sl["logRecords"].as_array().unwrap() {
                    records.push((scope.to_owned(), r.clone()));
                }
            }
        }
        records
    }

    /// The value of the attribute `key` in an OTLP-JSON attribute list.
    fn attr(attrs: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
        attrs
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| kv["value"].clone())
    }

    /// The OpenTelemetry crates log under their package names (`opentelemetry-otlp`, with a
    /// hyphen): those lines follow `OTEL_LOG_LEVEL` on stdout and never become OTLP log
    /// records, whatever `RUST_LOG` says, on both backends.
    #[test]
    fn opentelemetry_diagnostics_follow_otel_log_level_and_are_never_exported() {
        let emit = || {
            tracing::debug!(target: "opentelemetry-otlp", name = "HttpClient.ExportStarted");
            tracing::debug!(target: "opentelemetry-http", name = "Http.Diagnostic");
            tracing::debug!(target: "opentelemetry_sdk", name = "Sdk.Diagnostic");
            tracing::debug!(target: "vidscope_telemetry::export", "exporting a telemetry batch");
            tracing::debug!(target: "vidscope_api", "application debug line");
        };
        let otel_lines = |stdout: &str| -> Vec<String> {
            stdout
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|l| l["target"] != "vidscope_api")
                .map(|l| l["target"].as_str().unwrap().to_owned())
                .collect()
        };
        let diagnostics = [
            "opentelemetry-otlp",
            "opentelemetry-http",
            "opentelemetry_sdk",
            "vidscope_telemetry::export",
        ];
        // OTEL_LOG_LEVEL=debug: the diagnostics on stdout, the application's per RUST_LOG
        // (info). RUST_LOG=debug: the application's debug line on stdout and exported; the
        // diagnostics neither (OTEL_LOG_LEVEL stays at warn).
        type Configure = fn(&mut TelemetryConfig);
        let cases: [(Configure, &[&str], bool); 2] = [
            (|c| c.sdk_log_level = "debug".into(), &diagnostics, false),
            (|c| c.log_filter = "debug".into(), &[], true),
        ];
        for backend in [Backend::Fast, Backend::Sdk] {
            for (configure, on_stdout, app_line) in cases {
                let run = run_with_files(backend, "diagnostics", configure, emit);
                let (stdout, logs) = (&run.stdout, &run.logs);
                assert_eq!(otel_lines(stdout), on_stdout, "{backend:?}: {stdout}");
                let on = |text: &str| text.contains("application debug line");
                assert_eq!(on(stdout), app_line, "{backend:?}: {stdout}");
                assert_eq!(on(logs), app_line, "{backend:?}: {logs}");
                // Nothing else is exported: the application's line alone, or no record.
                let scopes: Vec<String> = log_records(logs).into_iter().map(|(s, _)| s).collect();
                assert_eq!(
                    scopes,
                    &["vidscope_api"][..usize::from(app_line)],
                    "{backend:?}"
                );
                assert!(app_line || logs.is_empty(), "{backend:?}: exported: {logs}");
            }
        }
    }

    /// A sensitive key with a numeric value is a secret too (`password = 12345678`): replaced
    /// on spans, span events, log records and stdout lines, on both backends. A boolean is
    /// kept (the seed's `hasCookie`), and so is a number under an ordinary key or under a
    /// namespace that only mentions a secret (`token.expires_in_s`).
    #[test]
    fn numbers_under_sensitive_keys_are_redacted_on_both_backends() {
        let json = |v: serde_json::Value| Some(v);
        let redacted = json(serde_json::json!({ "stringValue": REDACTED_JSON }));
        for backend in [Backend::Fast, Backend::Sdk] {
            let run = run_with_defaults(backend, "numbers", || {
                let span = tracing::info_span!(
                    target: "vidscope_api",
                    "request",
                    password = 12345678_i64,
                    hasCookie = true,
                    attempt = 3_i64,
                    token.expires_in_s = 60_i64
                );
                let _entered = span.enter();
                tracing::info!(target: "vidscope_api", api_token = 87654321.5, pin = 42_u64, "numbers");
                tracing::error!(target: "vidscope_api", session_id = 55667788_i64, "failed");
            });
            for secret in ["12345678", "87654321", "55667788"] {
                for (name, text) in [
                    ("stdout", &run.stdout),
                    ("traces", &run.traces),
                    ("logs", &run.logs),
                ] {
                    assert!(
                        !text.contains(secret),
                        "{backend:?}: {secret} in {name}: {text}"
                    );
                }
            }
            let line: serde_json::Value =
                serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
            assert_eq!(line["api_token"], REDACTED_JSON, "{backend:?}");
            assert_eq!(line["pin"], 42, "{backend:?}");
            let first =
                serde_json::from_str::<serde_json::Value>(run.traces.lines().next().unwrap());
            let span = &first.unwrap()["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
            let span_attr = |key| attr(&span["attributes"], key);
            assert_eq!(span_attr("password"), redacted, "{backend:?}: {span}");
            assert_eq!(
                span_attr("hasCookie"),
                json(serde_json::json!({ "boolValue": true }))
            );
            assert_eq!(
                span_attr("attempt"),
                json(serde_json::json!({ "intValue": "3" }))
            );
            // A number under a namespace that only mentions a secret describes it.
            let expires = span_attr("token.expires_in_s");
            assert_eq!(
                expires,
                json(serde_json::json!({ "intValue": "60" })),
                "{backend:?}"
            );
            let records = log_records(&run.logs);
            let (_, numbers) = records
                .iter()
                .find(|(_, r)| r["body"]["stringValue"] == "numbers")
                .unwrap_or_else(|| panic!("{backend:?}: {}", run.logs));
            let log_attr = |key| attr(&numbers["attributes"], key);
            assert_eq!(log_attr("api_token"), redacted, "{backend:?}");
            assert_eq!(
                log_attr("pin"),
                json(serde_json::json!({ "intValue": "42" }))
            );
        }
    }

    /// With telemetry off the start-up line says so, on stdout, and names no exporter.
    #[test]
    fn the_startup_line_says_when_telemetry_is_off() {
        for backend in [Backend::Fast, Backend::Sdk] {
            let mut config = TelemetryConfig::new("off");
            config.backend = backend;
            config.enabled = false;
            let out = Buffer::default();
            let writer = out.clone();
            let t = build(&config, BoxMakeWriter::new(move || writer.clone())).unwrap();
            tracing::dispatcher::with_default(&t.dispatch, || log_started(&config));
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            assert_eq!(
                line["message"],
                "OpenTelemetry telemetry disabled (OTEL_SDK_DISABLED or OTEL_ENABLED): JSON logs on stdout only",
                "{backend:?}"
            );
            assert_eq!(line["enabled"], false, "{backend:?}");
            assert_eq!(line["telemetry.backend"], backend.as_str(), "{backend:?}");
            assert_eq!(
                line["traces.exporter"],
                serde_json::Value::Null,
                "{backend:?}"
            );
        }
    }

    const REDACTED_JSON: &str = crate::redact::REDACTED;

    fn tempfile_dir(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "vidscope-init-{tag}-{}-{}",
            std::process::id(),
            crate::fast::pipe::unix_nanos(std::time::SystemTime::now())
        ))
    }

    /// The subscriber's level hint is the most verbose of its outputs: info for spans, the log
    /// filter's level for logs. "Unknown" (`None`) would let every trace-level callsite in
    /// the dependencies reach the filters.
    #[test]
    fn the_level_hint_is_the_most_verbose_output() {
        for (log_filter, expected) in [
            ("warn", LevelFilter::INFO),
            ("info", LevelFilter::INFO),
            ("info,vidscope_api=debug", LevelFilter::DEBUG),
            ("[upload]=trace", LevelFilter::TRACE),
        ] {
            let mut config = TelemetryConfig::new("hint").with_file_exporters(std::env::temp_dir());
            config.log_filter = log_filter.into();
            let t = build(&config, BoxMakeWriter::new(std::io::sink)).unwrap();
            assert_eq!(t.level_hint, Some(expected), "RUST_LOG={log_filter}");
            // Off, only the log filter counts.
            config.enabled = false;
            let t = build(&config, BoxMakeWriter::new(std::io::sink)).unwrap();
            assert!(
                t.level_hint.is_some_and(|h| h <= expected),
                "RUST_LOG={log_filter}, telemetry off: {:?}",
                t.level_hint
            );
        }
    }
}
