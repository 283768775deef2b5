//! Building the providers, exporters and the tracing subscriber from a [`TelemetryConfig`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Dispatch, Subscriber as _};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, filter};

use crate::catalog::{Metrics, view};
use crate::config::{Backend, ExporterKind, Signal, TelemetryConfig};
use crate::console::{Console, SharedWriter};
use crate::db_thresholds::DbWatch;
use crate::error::InitError;
use crate::export::EXPORT_TARGET;
use crate::export::{ExportStats, Guarded};
use crate::fast::logs::LogLayer;
use crate::fast::pipe::{Batching, Payload, Pipeline, Queue, Transport};
use crate::fast::spans::Tracer;
use crate::fast::store::{SpanStore, SpanTable};
use crate::file::{JsonLinesFile, open_file};
use crate::gate::{Directives, Gate, Output};
use crate::json_log::JsonLog;
use crate::otlp_transport::OtlpClient;

/// How long `shutdown` may take to flush all three signals.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The targets of the OpenTelemetry crates' own diagnostics. Their `otel_debug!`/`otel_warn!`
/// macros log with `target: env!("CARGO_PKG_NAME")`, so the target is the package name, hyphens
/// and all (`opentelemetry-otlp`, `opentelemetry-http`), not the module path
/// (`opentelemetry_otlp`); both spellings are listed, since a plain `tracing` call inside one of
/// them would use the module path. [`crate::gate::ExactTargets`] matches at `::` boundaries, so
/// `opentelemetry` does not cover the others.
pub(crate) const OTEL_TARGETS: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "opentelemetry_otlp",
    "opentelemetry-http",
    "opentelemetry_http",
    "opentelemetry-proto",
    "opentelemetry_proto",
    "opentelemetry-appender-tracing",
    "opentelemetry_appender_tracing",
    "tracing-opentelemetry",
    "tracing_opentelemetry",
];

/// Targets that must never feed spans or OTLP logs: the exporters' own HTTP/gRPC stacks and
/// the OpenTelemetry crates' diagnostics (a feedback loop: each export would log, and the log
/// would be exported), and this crate's diagnostics. They go to stdout only.
fn not_exported() -> String {
    let mut s = String::from(
        "h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,reqwest=off,vidscope_telemetry=off",
    );
    for t in OTEL_TARGETS {
        s.push(',');
        s.push_str(t);
        s.push_str("=off");
    }
    s
}

/// The stdout filter: `RUST_LOG`, with the OpenTelemetry crates and this crate's export
/// diagnostics (`vidscope_telemetry::export`) at `OTEL_LOG_LEVEL` whatever `RUST_LOG` says
/// (a later directive for the same target replaces an earlier one).
fn stdout_directives(config: &TelemetryConfig) -> String {
    let mut s = config.log_filter.clone();
    for t in OTEL_TARGETS.iter().chain(&[EXPORT_TARGET]) {
        s.push(',');
        s.push_str(t);
        s.push('=');
        s.push_str(&config.sdk_log_level);
    }
    s
}

/// The span and log side of one backend, for flushing and shutdown.
#[derive(Clone)]
enum Signals {
    /// Spans go straight from the span store to their pipeline (see `spans`). `api` is the
    /// OpenTelemetry API's tracer, whose spans are queued into the same pipeline (`None` when
    /// telemetry is off).
    Fast {
        traces: Option<Arc<Pipeline>>,
        logs: Option<Arc<Pipeline>>,
        api: Option<SdkTracerProvider>,
    },
    /// The SDK's providers, with their batch processors; `traces` is also the API's tracer.
    Sdk {
        traces: SdkTracerProvider,
        logs: Option<SdkLoggerProvider>,
    },
}

impl Signals {
    /// The tracer provider for code that uses the OpenTelemetry API.
    fn api_tracer(&self) -> Option<&SdkTracerProvider> {
        match self {
            Self::Fast { api, .. } => api.as_ref(),
            Self::Sdk { traces, .. } => Some(traces),
        }
    }

    fn flush(&self) {
        match self {
            Self::Fast { traces, logs, api } => {
                // The API tracer first: its spans go on into the span pipeline.
                if let Some(api) = api {
                    let _ = api.force_flush();
                }
                for p in traces.iter().chain(logs) {
                    p.flush(SHUTDOWN_DEADLINE);
                }
            }
            Self::Sdk { traces, logs } => {
                let _ = traces.force_flush();
                if let Some(lp) = logs {
                    let _ = lp.force_flush();
                }
            }
        }
    }

    /// Traces first (spans end last in a request), then logs.
    fn shutdown(&self) {
        match self {
            Self::Fast { traces, logs, api } => {
                if let Some(api) = api {
                    let _ = api.shutdown_with_timeout(SHUTDOWN_DEADLINE);
                }
                for p in traces.iter().chain(logs) {
                    p.shutdown(SHUTDOWN_DEADLINE);
                }
            }
            Self::Sdk { traces, logs } => {
                let _ = traces.shutdown_with_timeout(SHUTDOWN_DEADLINE);
                if let Some(lp) = logs {
                    let _ = lp.shutdown_with_timeout(SHUTDOWN_DEADLINE);
                }
            }
        }
    }
}

/// Owns the providers. Dropping it (or [`TelemetryGuard::shutdown`]) flushes traces, logs,
/// then metrics within [`SHUTDOWN_DEADLINE`].
pub struct TelemetryGuard {
    signals: Signals,
    meter_provider: Option<SdkMeterProvider>,
    metrics: Metrics,
    stats: Arc<ExportStats>,
    done: AtomicBool,
}

impl TelemetryGuard {
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
        let _ = tokio::task::spawn_blocking(move || {
            signals.flush();
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
        let _ = tokio::task::spawn_blocking(move || shutdown_all(signals, mp)).await;
    }

    fn providers(&self) -> (Signals, Option<SdkMeterProvider>) {
        (self.signals.clone(), self.meter_provider.clone())
    }
}

fn shutdown_all(signals: Signals, mp: Option<SdkMeterProvider>) {
    // Spans and logs, then metrics, which also carry the final drop counts.
    signals.shutdown();
    if let Some(mp) = mp {
        let _ = mp.shutdown_with_timeout(SHUTDOWN_DEADLINE);
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let (signals, mp) = self.providers();
        // A separate thread, joined: never shut down on a runtime thread (it can deadlock
        // the gRPC exporter, rust-otel-matrix pitfall 3). Each provider has its own deadline.
        let handle = std::thread::spawn(move || shutdown_all(signals, mp));
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
    pub level_hint: Option<filter::LevelFilter>,
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

fn resource(config: &TelemetryConfig) -> Resource {
    // `builder_empty` + explicit attributes: the default detectors would read
    // `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` again behind the config's back.
    let mut attrs = vec![
        KeyValue::new("service.name", config.service_name.clone()),
        KeyValue::new("service.version", config.service_version.clone()),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
    ];
    for (k, v) in &config.resource_attributes {
        attrs.push(KeyValue::new(k.clone(), v.clone()));
    }
    let sdk = TelemetryResourceDetector.detect();
    Resource::builder_empty()
        .with_schema_url(
            sdk.iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .chain(attrs),
            crate::SCHEMA_URL,
        )
        .build()
}

fn fallback(config: &TelemetryConfig, signal: Signal) -> Result<Option<JsonLinesFile>, InitError> {
    if config.fallback_to_file && *config.exporter(signal) == ExporterKind::Otlp {
        open_file(config, signal).map(Some)
    } else {
        Ok(None)
    }
}

/// The filter for a `RUST_LOG`-style directive string (see [`Directives`]); `var` names the
/// variable in the error.
fn directive_filter(var: &'static str, directives: &str) -> Result<Directives, InitError> {
    Directives::parse(directives).map_err(|reason| {
        InitError::Config(crate::config::ConfigError {
            var,
            value: directives.to_owned(),
            reason,
        })
    })
}

/// The JSON log lines on stdout, behind their `RUST_LOG` filter.
fn stdout_output(
    filter: Directives,
    writer: SharedWriter,
    spans: &Arc<SpanTable>,
) -> Output<JsonLog<SharedWriter>> {
    Output::new(JsonLog::new(writer, spans.clone()), filter)
}

/// The export pipeline of one signal, when its exporter is not `none`: the pipeline (for the
/// guard) and the queue (for the layer).
#[allow(clippy::type_complexity)]
fn pipeline<P: Payload>(
    config: &TelemetryConfig,
    resource: &opentelemetry_proto::tonic::resource::v1::Resource,
    stats: &Arc<ExportStats>,
    console: &SharedWriter,
) -> Result<(Option<Arc<Pipeline>>, Option<Queue<P::Item>>), InitError> {
    let transport = match config.exporter(P::SIGNAL) {
        ExporterKind::Otlp => Transport::Otlp(Box::new(OtlpClient::new(config, P::SIGNAL)?)),
        ExporterKind::File => Transport::File(open_file(config, P::SIGNAL)?),
        ExporterKind::Console => Transport::Console(Console::new(console.clone())),
        ExporterKind::None => return Ok((None, None)),
    };
    let (pipeline, queue) = crate::fast::pipe::start::<P>(
        transport,
        fallback(config, P::SIGNAL)?,
        resource.clone(),
        Batching {
            max_queue: config.max_queue_size,
            delay: config.scheduled_delay,
        },
        stats.clone(),
    )
    .map_err(|source| InitError::ExportThread {
        signal: P::SIGNAL.as_str(),
        source,
    })?;
    Ok((Some(Arc::new(pipeline)), Some(queue)))
}

/// Which spans become OpenTelemetry spans: info and above, minus the exporters' own stacks.
fn spans_filter() -> Result<Directives, InitError> {
    directive_filter("RUST_LOG", &format!("info,{}", not_exported()))
}

/// Builds everything without installing anything global except the (stateless) propagator.
pub fn build(config: &TelemetryConfig, writer: BoxMakeWriter) -> Result<Telemetry, InitError> {
    crate::propagation::install_propagator();
    // One writer for the JSON log lines and the console exporters.
    let writer = SharedWriter::new(writer);
    let stats = Arc::new(ExportStats::default());

    let fmt_directives = stdout_directives(config);
    // Parsed even when stdout lines are off, so a bad RUST_LOG always fails start-up naming
    // the variable.
    let stdout_filter = directive_filter("RUST_LOG", &fmt_directives)?;

    if !config.enabled {
        let provider = SdkMeterProvider::builder().build();
        let meter =
            opentelemetry::metrics::MeterProvider::meter_with_scope(&provider, crate::scope());
        let metrics = Metrics::new(&meter, stats.clone());
        // No span exists (the gate admits none), so the store never holds one.
        let store = SpanStore::new(Tracer::new(config.sampler, None));
        let stdout = config
            .stdout_logs
            .then(|| stdout_output(stdout_filter, writer, store.table()));
        let gate = Gate::new(None, stdout.iter().map(|o| o.filter().clone()).collect());
        let subscriber = store.with(gate).with(stdout);
        let level_hint = subscriber.max_level_hint();
        return Ok(Telemetry {
            dispatch: Dispatch::new(subscriber),
            level_hint,
            guard: TelemetryGuard {
                signals: Signals::Fast {
                    traces: None,
                    logs: None,
                    api: None,
                },
                meter_provider: None,
                metrics,
                stats,
                done: AtomicBool::new(false),
            },
        });
    }

    let resource = resource(config);

    // Metrics: the SDK on both backends.
    let mut mp = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(view);
    let target = crate::exporters::target(config, Signal::Metrics, &writer)?;
    if let Some(target) = target {
        let exporter = Guarded::new(target, fallback(config, Signal::Metrics)?, stats.clone());
        mp = mp.with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(config.metric_export_interval)
                .build(),
        );
    }
    let meter_provider = mp.build();
    let meter =
        opentelemetry::metrics::MeterProvider::meter_with_scope(&meter_provider, crate::scope());
    let metrics = Metrics::new(&meter, stats.clone());

    let built = match config.backend {
        Backend::Fast => fast(config, &resource, &stats, stdout_filter, writer)?,
        Backend::Sdk => sdk(config, &resource, &stats, stdout_filter, writer)?,
    };
    Ok(Telemetry {
        dispatch: built.dispatch,
        level_hint: built.level_hint,
        guard: TelemetryGuard {
            signals: built.signals,
            meter_provider: Some(meter_provider),
            metrics,
            stats,
            done: AtomicBool::new(false),
        },
    })
}

/// What a backend builds: the subscriber, and its spans and logs.
struct Built {
    dispatch: Dispatch,
    level_hint: Option<filter::LevelFilter>,
    signals: Signals,
}

/// The fast backend: the span store, the gate and this crate's pipelines.
fn fast(
    config: &TelemetryConfig,
    resource: &Resource,
    stats: &Arc<ExportStats>,
    stdout_filter: Directives,
    writer: SharedWriter,
) -> Result<Built, InitError> {
    // Traces: the span store's tracer samples and records; the pipeline batches and exports.
    let proto_resource = opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: opentelemetry_proto::transform::common::tonic::Attributes::from(
            resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .0,
        ..Default::default()
    };
    let (traces, span_queue) =
        pipeline::<crate::fast::spans::Spans>(config, &proto_resource, stats, &writer)?;

    // Spans live in the store (see `store`); its tracer samples, records and queues them, and
    // times `db.query` spans for the slow-query watch. Log events are not copied into span
    // events (the hot-path budget), except errors, which also set the span's status; code adds
    // span events explicitly.
    let store = SpanStore::new(
        Tracer::new(config.sampler, span_queue.clone())
            .with_db_watch(DbWatch::new(config.slow_query, config.n_plus_one_threshold)),
    );

    // Logs: our own layer (see `logs`) in front of the same kind of pipeline.
    let (logs, log_queue) =
        pipeline::<crate::fast::logs::Logs>(config, &proto_resource, stats, &writer)?;
    let otlp_logs = log_queue
        .map(|queue| -> Result<_, InitError> {
            Ok(Output::new(
                LogLayer::new(queue, store.table().clone()),
                otlp_logs_filter(config)?,
            ))
        })
        .transpose()?;

    // Error events mark their span (see `error_events::ErrorEvents`), whatever the log filters say.
    let errors = traces.as_ref().map(|_| -> Result<_, InitError> {
        Ok(Output::new(
            crate::fast::error_events::ErrorEvents::new(store.table().clone()),
            errors_filter()?,
        ))
    });
    let errors = errors.transpose()?;

    // One global gate decides which spans and events exist (see `gate`); each log output
    // then applies its own filter.
    let stdout = config
        .stdout_logs
        .then(|| stdout_output(stdout_filter, writer, store.table()));
    let event_filters = otlp_logs
        .iter()
        .map(|o| o.filter().clone())
        .chain(stdout.iter().map(|o| o.filter().clone()))
        .chain(errors.iter().map(|o| o.filter().clone()))
        .collect();
    let gate = Gate::new(Some(spans_filter()?), event_filters);
    let outputs = Layer::and_then(otlp_logs, stdout).and_then(errors);

    // The OpenTelemetry API's tracer: the SDK's, same sampler, its ended spans queued into
    // the span pipeline (see `spans::QueueExporter`).
    let mut api = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(crate::sdk::sampler(config.sampler));
    if let Some(queue) = &span_queue {
        api = api.with_span_processor(opentelemetry_sdk::trace::SimpleSpanProcessor::new(
            crate::fast::spans::QueueExporter(queue.clone()),
        ));
    }
    let api = Some(api.build());

    let subscriber = store.with(gate).with(outputs);
    let level_hint = subscriber.max_level_hint();
    Ok(Built {
        dispatch: Dispatch::new(subscriber),
        level_hint,
        signals: Signals::Fast { traces, logs, api },
    })
}

/// Which events become OTLP log records: `RUST_LOG`, minus the exporters' own stacks.
fn otlp_logs_filter(config: &TelemetryConfig) -> Result<Directives, InitError> {
    directive_filter(
        "RUST_LOG",
        &format!("{},{}", config.log_filter, not_exported()),
    )
}

/// Which error events mark their span: every error outside the exporters' own stacks.
fn errors_filter() -> Result<Directives, InitError> {
    directive_filter("RUST_LOG", &format!("error,{}", not_exported()))
}

/// The stock backend (see `sdk`): tracing-subscriber's registry, tracing-opentelemetry, the
/// appender bridge, the SDK's batch processors and the OTLP exporters.
fn sdk(
    config: &TelemetryConfig,
    resource: &Resource,
    stats: &Arc<ExportStats>,
    stdout_filter: Directives,
    writer: SharedWriter,
) -> Result<Built, InitError> {
    use tracing_subscriber::layer::SubscriberExt as _;

    let tracer_provider = crate::sdk::tracer_provider(
        config,
        resource,
        crate::exporters::target(config, Signal::Traces, &writer)?,
        fallback(config, Signal::Traces)?,
        stats,
    );
    let spans = tracing_opentelemetry::layer()
        .with_tracer(crate::sdk::tracer(&tracer_provider))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(crate::sdk::SpansAndErrors {
            spans: spans_filter()?,
            errors: errors_filter()?,
        });

    let logger_provider = crate::exporters::target(config, Signal::Logs, &writer)?
        .map(|target| -> Result<_, InitError> {
            Ok(crate::sdk::logger_provider(
                config,
                resource,
                target,
                fallback(config, Signal::Logs)?,
                stats,
            ))
        })
        .transpose()?;
    let logs = logger_provider
        .as_ref()
        .map(|lp| -> Result<_, InitError> {
            Ok(
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(lp)
                    .with_filter(otlp_logs_filter(config)?),
            )
        })
        .transpose()?;

    // Not an `Option` layer: tracing-subscriber's `Option<L>` does not pass the dispatch on to
    // `L` (`on_register_dispatch`), which `OtelIds` needs. Off, it writes nowhere and its
    // filter admits nothing.
    let (writer, stdout_filter) = if config.stdout_logs {
        (writer, stdout_filter)
    } else {
        (
            SharedWriter::new(BoxMakeWriter::new(std::io::sink)),
            directive_filter("RUST_LOG", "off")?,
        )
    };
    let stdout =
        JsonLog::new(writer, crate::json_log::OtelIds::default()).with_filter(stdout_filter);

    let subscriber = tracing_subscriber::registry()
        .with(crate::sdk::SlowQueries {
            db: DbWatch::new(config.slow_query, config.n_plus_one_threshold),
            dispatch: Default::default(),
        })
        .with(spans)
        .with(logs)
        .with(stdout);
    let level_hint = subscriber.max_level_hint();
    Ok(Built {
        dispatch: Dispatch::new(subscriber),
        level_hint,
        signals: Signals::Sdk {
            traces: tracer_provider,
            logs: logger_provider,
        },
    })
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
            let dir = tempfile_dir(backend.as_str());
            let mut config = TelemetryConfig::new("ids").with_file_exporters(&dir);
            config.backend = backend;
            let out = Buffer::default();
            let writer = out.clone();
            let t = build(&config, BoxMakeWriter::new(move || writer.clone())).unwrap();
            let sc = tracing::dispatcher::with_default(&t.dispatch, || {
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
            drop(t);
            let _ = std::fs::remove_dir_all(&dir);
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap())
                .unwrap_or_else(|e| panic!("{backend:?}: {e}: {text}"));
            assert!(sc.is_valid(), "{backend:?}");
            assert_eq!(
                line["trace_id"],
                sc.trace_id().to_string(),
                "{backend:?}: {line}"
            );
            assert_eq!(
                line["span_id"],
                sc.span_id().to_string(),
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

    /// Builds telemetry for `backend` into files under a fresh directory, with stdout
    /// captured; runs `f` under it, flushes, and returns stdout, `traces.json` and
    /// `logs.json`.
    fn run_with_files(
        backend: Backend,
        tag: &str,
        configure: impl FnOnce(&mut TelemetryConfig),
        f: impl FnOnce(),
    ) -> (String, String, String) {
        let dir = tempfile_dir(&format!("{tag}-{}", backend.as_str()));
        let mut config = TelemetryConfig::new(tag).with_file_exporters(&dir);
        config.backend = backend;
        configure(&mut config);
        let out = Buffer::default();
        let writer = out.clone();
        let t = build(&config, BoxMakeWriter::new(move || writer.clone())).unwrap();
        tracing::dispatcher::with_default(&t.dispatch, f);
        drop(t);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let (traces, logs) = (read("traces.json"), read("logs.json"));
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        (stdout, traces, logs)
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
        for backend in [Backend::Fast, Backend::Sdk] {
            // OTEL_LOG_LEVEL=debug: the diagnostics on stdout, the application's per RUST_LOG.
            let (stdout, _, logs) = run_with_files(
                backend,
                "otel-debug",
                |c| c.sdk_log_level = "debug".into(),
                emit,
            );
            assert_eq!(
                otel_lines(&stdout),
                [
                    "opentelemetry-otlp",
                    "opentelemetry-http",
                    "opentelemetry_sdk",
                    "vidscope_telemetry::export"
                ],
                "{backend:?}: {stdout}"
            );
            assert!(!stdout.contains("application debug line"), "{backend:?}");
            assert_eq!(logs, "", "{backend:?}: exported");

            // RUST_LOG=debug: the application's debug line on stdout and exported; the
            // diagnostics neither (OTEL_LOG_LEVEL stays at warn).
            let (stdout, _, logs) = run_with_files(
                backend,
                "rust-debug",
                |c| c.log_filter = "debug".into(),
                emit,
            );
            assert_eq!(
                otel_lines(&stdout),
                Vec::<String>::new(),
                "{backend:?}: {stdout}"
            );
            assert!(stdout.contains("application debug line"), "{backend:?}");
            assert!(
                logs.contains("application debug line"),
                "{backend:?}: {logs}"
            );
            let mut scopes = Vec::new();
            for l in logs.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                for sl in v["resourceLogs"][0]["scopeLogs"].as_array().unwrap() {
                    scopes.push(sl["scope"]["name"].as_str().unwrap().to_owned());
                }
            }
            assert_eq!(scopes, ["vidscope_api"], "{backend:?}: {logs}");
        }
    }

    /// A sensitive key with a numeric value is a secret too (`password = 12345678`): replaced
    /// on spans, span events, log records and stdout lines, on both backends. A boolean is
    /// kept (the seed's `hasCookie`), and so is a number under an ordinary key or under a
    /// namespace that only mentions a secret (`token.expires_in_s`).
    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "an end-to-end test reads as one scenario, top to bottom"
    )]
    fn numbers_under_sensitive_keys_are_redacted_on_both_backends() {
        for backend in [Backend::Fast, Backend::Sdk] {
            let (stdout, traces, logs) = run_with_files(
                backend,
                "numbers",
                |_| {},
                || {
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
                },
            );
            for secret in ["12345678", "87654321", "55667788"] {
                for (name, text) in [("stdout", &stdout), ("traces", &traces), ("logs", &logs)] {
                    assert!(
                        !text.contains(secret),
                        "{backend:?}: {secret} in {name}: {text}"
                    );
                }
            }
            let line: serde_json::Value =
                serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
            assert_eq!(line["api_token"], REDACTED_JSON, "{backend:?}");
            assert_eq!(line["pin"], 42, "{backend:?}");
            let span = &serde_json::from_str::<serde_json::Value>(traces.lines().next().unwrap())
                .unwrap()["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
            let attr = |attrs: &serde_json::Value, key: &str| {
                attrs
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|kv| kv["key"] == key)
                    .map(|kv| kv["value"].clone())
            };
            let redacted = Some(serde_json::json!({ "stringValue": REDACTED_JSON }));
            assert_eq!(
                attr(&span["attributes"], "password"),
                redacted,
                "{backend:?}: {span}"
            );
            assert_eq!(
                attr(&span["attributes"], "hasCookie"),
                Some(serde_json::json!({ "boolValue": true })),
                "{backend:?}"
            );
            assert_eq!(
                attr(&span["attributes"], "attempt"),
                Some(serde_json::json!({ "intValue": "3" })),
                "{backend:?}"
            );
            // A number under a namespace that only mentions a secret describes it.
            assert_eq!(
                attr(&span["attributes"], "token.expires_in_s"),
                Some(serde_json::json!({ "intValue": "60" })),
                "{backend:?}"
            );
            let mut records = Vec::new();
            for l in logs.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                for sl in v["resourceLogs"][0]["scopeLogs"].as_array().unwrap() {
                    records.extend(sl["logRecords"].as_array().unwrap().iter().cloned());
                }
            }
            let numbers = records
                .iter()
                .find(|r| r["body"]["stringValue"] == "numbers")
                .unwrap_or_else(|| panic!("{backend:?}: {logs}"));
            assert_eq!(
                attr(&numbers["attributes"], "api_token"),
                redacted,
                "{backend:?}"
            );
            assert_eq!(
                attr(&numbers["attributes"], "pin"),
                Some(serde_json::json!({ "intValue": "42" })),
                "{backend:?}"
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
            ("warn", filter::LevelFilter::INFO),
            ("info", filter::LevelFilter::INFO),
            ("info,vidscope_api=debug", filter::LevelFilter::DEBUG),
            ("[upload]=trace", filter::LevelFilter::TRACE),
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
