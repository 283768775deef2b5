//! The stock OpenTelemetry path (`VIDSCOPE_TELEMETRY_BACKEND=sdk`): tracing-opentelemetry for
//! spans, the appender bridge for log records and the SDK's batch processors, on
//! tracing-subscriber's `Registry`; batches become OTLP requests through `opentelemetry-proto`
//! and are sent by `otlp_transport`, as the fast path's are. It imports the backend-neutral
//! modules only, never `fast`.
//!
//! It exists so the fast path can be checked against what the OpenTelemetry project itself
//! produces from the same tracing calls, and so a team that distrusts hand-written telemetry
//! can run the reference path with one variable. Both paths share the configuration, the
//! resource, the metric provider, the sampling decision and span limits (`span_policy`), the
//! redaction rule, the export accounting and the file format;
//! `crates/api/tests/api/backends.rs` runs one workload through each and compares the
//! normalised output.
//!
//! What this side adds on top of the stock layers, so that both paths emit the same data:
//! - exporters wrapped in [`export::SdkExport`]: secrets scrubbed, batches counted in
//!   `telemetry.export.*`, the file and console targets and the file fallback, OTLP sent by
//!   `otlp_transport` (the `opentelemetry-otlp` exporters cannot count a partial success and
//!   their gRPC retry panics on the processors' threads: see that module);
//! - the batch processors behind [`bounded::Bounded`], so what their full queue drops is
//!   counted in `telemetry.export.dropped` as on the fast side;
//! - [`layers::SlowQueries`]: the `db.slow_query` event the fast tracer adds when a `db.query`
//!   span closes late;
//! - the stdout JSON lines (`json_log`) read their ids from tracing-opentelemetry
//!   ([`layers::OtelIds`]), and `SpanExt` goes through its extension trait
//!   ([`layers::StockSpans`]).
//!
//! Error events mark their span through tracing-opentelemetry's own event handling (the fast
//! backend's `ErrorEvents` copies it): this side is the reference, so it stays stock.
//!
//! The layer's optional extras (code location, thread ids, busy/idle times) are off: the fast
//! path does not record them, and a comparison needs both sides to mean the same thing.

mod bounded;
mod export;
mod layers;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::backend::{Built, Inputs, Signals, side_by_side};
use crate::config::{BatchSettings, Signal, TelemetryConfig};
use crate::console::SharedWriter;
use crate::db_watch::DbWatch;
use crate::error::InitError;
use crate::export::{ExportStats, Guarded, Target};
use crate::exporters::target;
use crate::file::{JsonLinesFile, fallback_file};
use crate::filter;
use crate::json_log::JsonLog;
use crate::otlp_transport::BlockingClient;
use crate::span_ext::SpanSeam;
use bounded::{Bounded, QueueBound};
use export::SdkExport;
use layers::{OtelIds, SlowQueries, SpansAndErrors, StockSpans};

/// The SDK's providers, with their batch processors; `traces` is also the API's tracer.
struct SdkSignals {
    traces: SdkTracerProvider,
    logs: Option<SdkLoggerProvider>,
}

impl Signals for SdkSignals {
    fn api_tracer(&self) -> Option<&SdkTracerProvider> {
        Some(&self.traces)
    }

    fn flush(&self, _deadline: Duration) {
        // The SDK's processors wait for a flush up to their own fixed 5 s, which the
        // deadline cannot change; an export still running then goes on in the background.
        side_by_side(
            || {
                let _ = self.traces.force_flush();
            },
            || {
                if let Some(lp) = &self.logs {
                    let _ = lp.force_flush();
                }
            },
        );
    }

    fn shutdown(&self, deadline: Duration) {
        side_by_side(
            || {
                let _ = self.traces.shutdown_with_timeout(deadline);
            },
            || {
                if let Some(lp) = &self.logs {
                    let _ = lp.shutdown_with_timeout(deadline);
                }
            },
        );
    }
}

/// The stock backend: tracing-subscriber's registry, tracing-opentelemetry, the appender
/// bridge, the SDK's batch processors, the OTLP transport.
pub(crate) fn build(config: &TelemetryConfig, inputs: Inputs<'_>) -> Result<Built, InitError> {
    let traces = tracer_provider(
        config,
        inputs.resource,
        target(config, Signal::Traces, &inputs.writer)?,
        fallback_file(config, Signal::Traces)?,
        inputs.stats,
    );
    let spans = tracing_opentelemetry::layer()
        .with_tracer(traces.tracer_with_scope(crate::resource::scope()))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(SpansAndErrors {
            spans: filter::spans()?,
            errors: filter::errors()?,
        });

    let logs = match target(config, Signal::Logs, &inputs.writer)? {
        Some(target) => Some(logger_provider(
            config,
            inputs.resource,
            target,
            fallback_file(config, Signal::Logs)?,
            inputs.stats,
        )),
        None => None,
    };
    let otlp_logs = match &logs {
        Some(lp) => {
            Some(OpenTelemetryTracingBridge::new(lp).with_filter(filter::otlp_logs(config)?))
        }
        None => None,
    };

    // Not an `Option` layer: tracing-subscriber's `Option<L>` does not pass the dispatch on to
    // `L` (`on_register_dispatch`), which `OtelIds` needs. Off, it writes nowhere and its
    // filter admits nothing.
    let (writer, stdout_filter) = if config.stdout_logs {
        (inputs.writer, inputs.stdout_filter)
    } else {
        (
            SharedWriter::new(BoxMakeWriter::new(std::io::sink)),
            filter::parse("RUST_LOG", "off")?,
        )
    };
    let stdout = JsonLog::new(writer, OtelIds::default()).with_filter(stdout_filter);

    // `SpanExt`'s operations ride with the slow-query watch (see `span_ext::SpanSeam`).
    let watch = SlowQueries {
        db: DbWatch::new(config.slow_query, config.n_plus_one_threshold),
        dispatch: Default::default(),
    }
    .and_then(SpanSeam::new(StockSpans));
    let subscriber = tracing_subscriber::registry()
        .with(watch)
        .with(spans)
        .with(otlp_logs)
        .with(stdout);
    Ok(Built::new(subscriber, SdkSignals { traces, logs }))
}

/// The wrapped exporter of `signal` and the bound its batch processor's queue goes behind.
fn bounded_exporter(
    signal: Signal,
    batching: &BatchSettings,
    target: Target<BlockingClient>,
    fallback: Option<JsonLinesFile>,
    resource: &Resource,
    stats: &Arc<ExportStats>,
) -> (SdkExport<BlockingClient>, Arc<QueueBound>) {
    let bound = QueueBound::new(signal, batching.max_queue_size, stats.clone());
    let guarded = Guarded::new(target, fallback, stats.clone());
    (SdkExport::new(guarded, resource, bound.clone()), bound)
}

/// The tracer provider: the shared sampler and span limits and, unless traces are off, one
/// batch processor in front of the wrapped exporter. Without a processor spans still get ids
/// (for log correlation and propagation) and go nowhere.
fn tracer_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    target: Option<Target<BlockingClient>>,
    fallback: Option<JsonLinesFile>,
    stats: &Arc<ExportStats>,
) -> SdkTracerProvider {
    let mut builder = crate::span_policy::tracer_provider(config.sampler, resource);
    if let Some(target) = target {
        let b = &config.spans;
        let (exporter, bound) =
            bounded_exporter(Signal::Traces, b, target, fallback, resource, stats);
        // Every setting given, so none comes from the SDK's own reading of `OTEL_BSP_*`
        // (which ignores a bad value): `config` validated them. The export timeout is the
        // exporter's (`signal_export_timeout`); this processor has none.
        let inner = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(b.max_queue_size)
                    .with_max_export_batch_size(b.max_export_batch_size)
                    .with_scheduled_delay(b.scheduled_delay)
                    .build(),
            )
            .build();
        builder = builder.with_span_processor(Bounded { inner, bound });
    }
    builder.build()
}

/// The logger provider with one batch processor in front of the wrapped exporter.
fn logger_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    target: Target<BlockingClient>,
    fallback: Option<JsonLinesFile>,
    stats: &Arc<ExportStats>,
) -> SdkLoggerProvider {
    let b = &config.logs;
    let (exporter, bound) = bounded_exporter(Signal::Logs, b, target, fallback, resource, stats);
    // As for spans: every setting from the validated `OTEL_BLRP_*`.
    let inner = BatchLogProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::logs::BatchConfigBuilder::default()
                .with_max_queue_size(b.max_queue_size)
                .with_max_export_batch_size(b.max_export_batch_size)
                .with_scheduled_delay(b.scheduled_delay)
                .build(),
        )
        .build();
    SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_log_processor(Bounded { inner, bound })
        .build()
}
