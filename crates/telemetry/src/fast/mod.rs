//! The `fast` backend (the default, and telemetry turned off): tracing spans and events become
//! OpenTelemetry data through this crate's own span store, recording, log layer and export
//! pipeline, written for the performance budget (docs/performance.md). It imports the
//! backend-neutral modules only, never `sdk`.
//!
//! - [`store`]: the base subscriber, where spans live (instead of tracing-subscriber's
//!   `Registry`), with `SpanExt`'s operations on them;
//! - [`spans`]: tracing spans as OpenTelemetry spans, sampled at creation;
//! - [`logs`]: tracing events as OTLP log records;
//! - [`error_events`]: error events mark their span;
//! - [`gate`]: which spans and events exist, and which log output takes an event;
//! - [`pipe`]: the bounded queue and export thread of spans and logs;
//! - [`wire`]: their protobuf, written by hand.

pub(crate) mod error_events;
pub(crate) mod gate;
pub(crate) mod logs;
pub(crate) mod pipe;
pub(crate) mod spans;
pub(crate) mod store;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::backend::{Built, Inputs, Signals, side_by_side};
use crate::config::{BatchSettings, ExporterKind, TelemetryConfig};
use crate::console::{Console, SharedWriter};
use crate::db_watch::DbWatch;
use crate::error::InitError;
use crate::file::{fallback_file, open_file};
use crate::filter::{self, Directives};
use crate::json_log::JsonLog;
use crate::otlp_transport::OtlpClient;
use error_events::ErrorEvents;
use gate::{Gate, Output};
use logs::{LogLayer, Logs};
use pipe::{Payload, Pipeline, Queue, Transport};
use spans::{QueueExporter, Spans, Tracer};
use store::{SpanStore, SpanTable};

/// The fast backend's spans and logs: its two pipelines, and the SDK tracer provider behind the
/// OpenTelemetry API, whose spans join the span pipeline (`None` when telemetry is off).
struct FastSignals {
    traces: Option<Pipeline>,
    logs: Option<Pipeline>,
    api: Option<SdkTracerProvider>,
}

impl Signals for FastSignals {
    fn api_tracer(&self) -> Option<&SdkTracerProvider> {
        self.api.as_ref()
    }

    fn flush(&self, deadline: Duration) {
        // The API tracer first: its spans go on into the span pipeline (at once: its
        // processor is the simple one).
        if let Some(api) = &self.api {
            let _ = api.force_flush();
        }
        side_by_side(
            || self.traces.iter().for_each(|p| p.flush(deadline)),
            || self.logs.iter().for_each(|p| p.flush(deadline)),
        );
    }

    fn shutdown(&self, deadline: Duration) {
        if let Some(api) = &self.api {
            let _ = api.shutdown_with_timeout(deadline);
        }
        side_by_side(
            || self.traces.iter().for_each(|p| p.shutdown(deadline)),
            || self.logs.iter().for_each(|p| p.shutdown(deadline)),
        );
    }
}

/// Telemetry turned off: the JSON lines on stdout and nothing else. No span exists (the gate
/// admits none), so the store never holds one.
pub(crate) fn off(
    config: &TelemetryConfig,
    stdout_filter: Directives,
    writer: SharedWriter,
) -> Built {
    let store = SpanStore::new(Tracer::new(config.sampler, None));
    let stdout = config
        .stdout_logs
        .then(|| stdout_output(stdout_filter, writer, store.table()));
    let gate = Gate::new(None, stdout.iter().map(|o| o.filter().clone()).collect());
    let signals = FastSignals {
        traces: None,
        logs: None,
        api: None,
    };
    Built::new(store.with(gate).with(stdout), signals)
}

/// The fast backend: the span store, the gate, the log outputs and this crate's pipelines.
pub(crate) fn build(config: &TelemetryConfig, inputs: Inputs<'_>) -> Result<Built, InitError> {
    let proto_resource = proto_resource(inputs.resource);
    let (traces, span_queue) =
        pipeline::<Spans>(config, &config.spans, &proto_resource, &inputs)?.unzip();
    let (logs, log_queue) =
        pipeline::<Logs>(config, &config.logs, &proto_resource, &inputs)?.unzip();

    // Spans live in the store (see `store`); its tracer samples, records and queues them, and
    // times `db.query` spans for the slow-query watch. Log events are not copied into span
    // events (the hot-path budget), except errors, which also set the span's status; code adds
    // span events explicitly.
    let store = SpanStore::new(
        Tracer::new(config.sampler, span_queue.clone())
            .with_db_watch(DbWatch::new(config.slow_query, config.n_plus_one_threshold)),
    );
    let table = store.table();
    let otlp_logs = match log_queue {
        Some(queue) => Some(Output::new(
            LogLayer::new(queue, table.clone()),
            filter::otlp_logs(config)?,
        )),
        None => None,
    };
    // Error events mark their span, whatever the log filters say.
    let errors = match traces {
        Some(_) => Some(Output::new(
            ErrorEvents::new(table.clone()),
            filter::errors()?,
        )),
        None => None,
    };
    let stdout = config
        .stdout_logs
        .then(|| stdout_output(inputs.stdout_filter, inputs.writer, table));

    // One global gate decides which spans and events exist (see `gate`); each log output
    // then applies its own filter.
    let event_filters = otlp_logs
        .iter()
        .map(|o| o.filter().clone())
        .chain(stdout.iter().map(|o| o.filter().clone()))
        .chain(errors.iter().map(|o| o.filter().clone()))
        .collect();
    let gate = Gate::new(Some(filter::spans()?), event_filters);
    // `SpanExt`'s operations ride with the outputs (see `span_ext::SpanSeam`).
    let outputs = Layer::and_then(otlp_logs, stdout)
        .and_then(errors)
        .and_then(store.seam());
    let api = Some(api_tracer(config, inputs.resource, span_queue));
    let signals = FastSignals { traces, logs, api };
    Ok(Built::new(store.with(gate).with(outputs), signals))
}

/// The OpenTelemetry API's tracer: the SDK's, with the same sampler, its ended spans queued
/// into the span pipeline (see `spans::QueueExporter`).
fn api_tracer(
    config: &TelemetryConfig,
    resource: &Resource,
    span_queue: Option<Queue<spans::Finished>>,
) -> SdkTracerProvider {
    let mut api = crate::span_policy::tracer_provider(config.sampler, resource);
    if let Some(queue) = span_queue {
        api = api.with_span_processor(SimpleSpanProcessor::new(QueueExporter(queue)));
    }
    api.build()
}

/// The resource as the pipelines write it.
fn proto_resource(resource: &Resource) -> ProtoResource {
    ProtoResource {
        attributes: opentelemetry_proto::transform::common::tonic::Attributes::from(
            resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .0,
        ..Default::default()
    }
}

/// The JSON log lines on stdout, behind their `RUST_LOG` filter.
fn stdout_output(
    filter: Directives,
    writer: SharedWriter,
    spans: &Arc<SpanTable>,
) -> Output<JsonLog<SharedWriter, Arc<SpanTable>>> {
    Output::new(JsonLog::new(writer, spans.clone()), filter)
}

/// A running export pipeline (for the guard) and the queue that feeds it (for the layer).
type Running<T> = (Pipeline, Queue<T>);

/// The export pipeline of one signal, batched as `batching` says, unless its exporter is `none`.
fn pipeline<P: Payload>(
    config: &TelemetryConfig,
    batching: &BatchSettings,
    resource: &ProtoResource,
    inputs: &Inputs<'_>,
) -> Result<Option<Running<P::Item>>, InitError> {
    let transport = match config.exporter(P::SIGNAL) {
        ExporterKind::Otlp => Transport::Otlp(Box::new(OtlpClient::new(config, P::SIGNAL)?)),
        ExporterKind::File => Transport::File(open_file(config, P::SIGNAL)?),
        ExporterKind::Console => Transport::Console(Console::new(inputs.writer.clone())),
        ExporterKind::None => return Ok(None),
    };
    let (pipeline, queue) = pipe::start::<P>(
        transport,
        fallback_file(config, P::SIGNAL)?,
        resource.clone(),
        batching,
        inputs.stats.clone(),
    )
    .map_err(|source| InitError::ExportThread {
        signal: P::SIGNAL.as_str(),
        source,
    })?;
    Ok(Some((pipeline, queue)))
}
