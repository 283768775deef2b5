//! The stock OpenTelemetry path (`VIDSCOPE_TELEMETRY_BACKEND=sdk`): tracing-opentelemetry for
//! spans, the appender bridge for log records and the SDK's batch processors, on
//! tracing-subscriber's `Registry`; batches become OTLP requests through `opentelemetry-proto`
//! and are sent by `otlp_transport`, as the fast path's are.
//!
//! It exists so the fast path (`spans`, `logs`, `pipe`, `wire`) can be checked against what
//! the OpenTelemetry project itself produces from the same tracing calls, and so a team that
//! distrusts hand-written telemetry can run the reference path with one variable. Both paths
//! share the configuration, the resource, the metric provider, the redaction rules, the
//! export accounting and the file format; `tests/backends.rs` runs one workload through each
//! and compares the normalised output.
//!
//! What this side adds on top of the stock layers, so that both paths emit the same data:
//! - exporters wrapped in [`SdkExport`]: secrets scrubbed (`redact::attribute_rule`), batches
//!   counted in `telemetry.export.*`, the file target and the file fallback, OTLP sent by
//!   `otlp_transport` (the `opentelemetry-otlp` exporters cannot count a partial success and
//!   their gRPC retry panics on the processors' threads: see that module);
//! - [`SlowQueries`]: the `db.slow_query` event the fast tracer adds when a `db.query` span
//!   closes late;
//! - the stdout JSON lines (`json_log`) read their ids from tracing-opentelemetry.
//!
//! The layer's optional extras (code location, thread ids, busy/idle times) are off: the fast
//! path does not record them, and a comparison needs both sides to mean the same thing.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{
    BatchLogProcessor, LogBatch, LogExporter, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{SamplerConfig, Signal, TelemetryConfig};
use crate::db_thresholds::DbWatch;
use crate::export::{ExportStats, Guarded, Target};
use crate::file::JsonLinesFile;
use crate::gate::Directives;
use crate::otlp_transport::BlockingClient;
use crate::redact::{AttributeRule, ValueKind, attribute_rule};
use crate::redact::{REDACTED, redact_str};

/// The SDK's sampler for the configured one (the fast path decides the same way, see
/// `spans::sampled`).
pub(crate) fn sampler(s: SamplerConfig) -> Sampler {
    match s {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

/// The tracer provider: the configured sampler and, unless traces are off, one batch
/// processor in front of the wrapped exporter. Without a processor spans still get ids (for
/// log correlation and propagation) and go nowhere.
pub(crate) fn tracer_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    target: Option<Target<BlockingClient>>,
    fallback: Option<JsonLinesFile>,
    stats: &Arc<ExportStats>,
) -> SdkTracerProvider {
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sampler(config.sampler));
    if let Some(target) = target {
        let exporter = SdkExport::new(Guarded::new(target, fallback, stats.clone()), resource);
        builder = builder.with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(config.max_queue_size)
                        .with_scheduled_delay(config.scheduled_delay)
                        .build(),
                )
                .build(),
        );
    }
    builder.build()
}

/// The logger provider with one batch processor in front of the wrapped exporter.
pub(crate) fn logger_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    target: Target<BlockingClient>,
    fallback: Option<JsonLinesFile>,
    stats: &Arc<ExportStats>,
) -> SdkLoggerProvider {
    let exporter = SdkExport::new(Guarded::new(target, fallback, stats.clone()), resource);
    SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_log_processor(
            BatchLogProcessor::builder(exporter)
                .with_batch_config(
                    opentelemetry_sdk::logs::BatchConfigBuilder::default()
                        .with_max_queue_size(config.max_queue_size)
                        .with_scheduled_delay(config.scheduled_delay)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// A span or log exporter as the SDK's batch processor sees it: what the fast pipeline does
/// around its transport (scrubbing, accounting, file target, fallback), done around the OTLP
/// exporter.
pub(crate) struct SdkExport<E> {
    guarded: Guarded<E>,
    /// For the file target and the fallback, which write whole OTLP requests.
    resource: ResourceAttributesWithSchema,
}

impl<E> std::fmt::Debug for SdkExport<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkExport").finish_non_exhaustive()
    }
}

impl<E> SdkExport<E> {
    fn new(guarded: Guarded<E>, resource: &Resource) -> Self {
        Self {
            guarded,
            resource: resource.into(),
        }
    }

    fn trace_request(&self, spans: Vec<SpanData>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans:
                opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(
                    spans,
                    &self.resource,
                ),
        }
    }

    fn logs_request(&self, batch: &LogBatch<'_>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs:
                opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope(
                    batch,
                    &self.resource,
                ),
        }
    }

    /// A scrubbed copy of every record in `batch`, with its scope.
    fn scrubbed_logs(&self, batch: &LogBatch<'_>) -> Vec<(SdkLogRecord, InstrumentationScope)> {
        batch
            .iter()
            .map(|(r, scope)| {
                let mut out = BLANK.create_log_record();
                if let Some(name) = r.event_name() {
                    out.set_event_name(name);
                }
                if let Some(target) = r.target() {
                    out.set_target(target.clone());
                }
                if let Some(t) = r.timestamp() {
                    out.set_timestamp(t);
                }
                if let Some(t) = r.observed_timestamp() {
                    out.set_observed_timestamp(t);
                }
                if let Some(s) = r.severity_text() {
                    out.set_severity_text(s);
                }
                if let Some(s) = r.severity_number() {
                    out.set_severity_number(s);
                }
                if let Some(body) = r.body() {
                    let mut body = body.clone();
                    scrub_any(&mut body, AttributeRule::ScrubStrings);
                    out.set_body(body);
                }
                for (k, v) in r.attributes_iter() {
                    let mut v = v.clone();
                    let rule = attribute_rule(k.as_str(), any_kind(&v));
                    scrub_any(&mut v, rule);
                    out.add_attribute(k.clone(), v);
                }
                if let Some(tc) = r.trace_context() {
                    out.set_trace_context(tc.trace_id, tc.span_id, tc.trace_flags);
                }
                (out, scope.clone())
            })
            .collect()
    }
}

/// The text with its secrets replaced, or `None` when it has none (the common case: no copy).
fn scrubbed(s: &str) -> Option<String> {
    match redact_str(s) {
        std::borrow::Cow::Owned(clean) => Some(clean),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// Makes the blank records a scrubbed log batch is copied into: the SDK's log record has no
/// way to change an attribute in place, nor a public constructor. A logger of a provider with
/// no processor, made once.
static BLANK: std::sync::LazyLock<SdkLogger> =
    std::sync::LazyLock::new(|| SdkLoggerProvider::builder().build().logger("scrub"));

/// A log value's kind for the redaction rule.
fn any_kind(v: &AnyValue) -> ValueKind {
    match v {
        AnyValue::Boolean(_) => ValueKind::Bool,
        AnyValue::Int(_) | AnyValue::Double(_) => ValueKind::Number,
        _ => ValueKind::Other,
    }
}

/// Applies a redaction rule to a log value, recursing into lists and maps (each map entry by
/// its own key).
fn scrub_any(v: &mut AnyValue, rule: AttributeRule) {
    match (rule, v) {
        (AttributeRule::Keep, _) => {}
        (AttributeRule::Replace, v) => *v = AnyValue::String(REDACTED.into()),
        (AttributeRule::ScrubStrings, AnyValue::String(s)) => {
            if let Some(clean) = scrubbed(s.as_str()) {
                *s = clean.into();
            }
        }
        (AttributeRule::ScrubStrings, AnyValue::ListAny(items)) => {
            for item in items.iter_mut() {
                scrub_any(item, AttributeRule::ScrubStrings);
            }
        }
        (AttributeRule::ScrubStrings, AnyValue::Map(map)) => {
            for (k, item) in map.iter_mut() {
                let kind = any_kind(item);
                scrub_any(item, attribute_rule(k.as_str(), kind));
            }
        }
        _ => {}
    }
}

/// Applies the redaction rule to span attributes in place.
fn scrub_attributes(attributes: &mut [KeyValue]) {
    for kv in attributes {
        let kind = match kv.value {
            Value::Bool(_) => ValueKind::Bool,
            Value::I64(_) | Value::F64(_) => ValueKind::Number,
            _ => ValueKind::Other,
        };
        match (attribute_rule(kv.key.as_str(), kind), &mut kv.value) {
            (AttributeRule::Keep, _) => {}
            (AttributeRule::Replace, v) => *v = Value::from(REDACTED),
            (AttributeRule::ScrubStrings, Value::String(s)) => {
                if let Some(clean) = scrubbed(s.as_str()) {
                    *s = clean.into();
                }
            }
            (AttributeRule::ScrubStrings, Value::Array(opentelemetry::Array::String(items))) => {
                for s in items.iter_mut() {
                    if let Some(clean) = scrubbed(s.as_str()) {
                        *s = clean.into();
                    }
                }
            }
            _ => {}
        }
    }
}

/// What `spans::Spans::scrub` does to a protobuf span, done to the SDK's span.
fn scrub_span(span: &mut SpanData) {
    scrub_attributes(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        if let Some(clean) = scrubbed(&event.name) {
            event.name = clean.into();
        }
        scrub_attributes(&mut event.attributes);
    }
    for link in span.links.links.iter_mut() {
        scrub_attributes(&mut link.attributes);
    }
    if let Status::Error { description } = &mut span.status
        && let Some(clean) = scrubbed(description)
    {
        *description = clean.into();
    }
}

fn no_fallback(_: &JsonLinesFile) -> OTelSdkResult {
    Err(OTelSdkError::InternalFailure(String::new()))
}

impl SdkExport<BlockingClient> {
    /// Sends or writes one scrubbed request to the target, with the accounting and the
    /// fallback file: what the fast pipeline does with a batch.
    fn deliver<R>(&self, signal: Signal, items: usize, request: &R) -> OTelSdkResult
    where
        R: prost::Message + serde::Serialize + crate::console::Lines,
    {
        match &self.guarded.target {
            Target::File(f) => {
                self.guarded
                    .settle(signal, items, f.write_json(request), no_fallback)
            }
            Target::Console(c) => self
                .guarded
                .settle(signal, items, c.write(request), no_fallback),
            Target::Otlp(client) => {
                let sent = client.send(request).map_err(OTelSdkError::InternalFailure);
                self.guarded
                    .settle_sent(signal, items, sent, |f| f.write_json(request))
            }
        }
    }
}

impl SpanExporter for SdkExport<BlockingClient> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        batch.iter_mut().for_each(scrub_span);
        let n = batch.len();
        self.deliver(Signal::Traces, n, &self.trace_request(batch))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

impl LogExporter for SdkExport<BlockingClient> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let owned = self.scrubbed_logs(&batch);
        let refs: Vec<_> = owned.iter().map(|(r, s)| (r, s)).collect();
        // `LogBatch::new` is public but documented as not meant for users; it is the only way
        // to turn records changed after the processor saw them into a request.
        let batch = LogBatch::new(&refs);
        self.deliver(Signal::Logs, refs.len(), &self.logs_request(&batch))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

/// The per-layer filter of the tracing-opentelemetry layer: spans by the span filter, and
/// error events (which mark their span's status Error and become span events) by their own.
/// Other events stay out of spans, as on the fast path.
pub(crate) struct SpansAndErrors {
    pub spans: Directives,
    pub errors: Directives,
}

impl<S: Subscriber> Filter<S> for SpansAndErrors {
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            Filter::enabled(&self.spans, meta, ctx)
        } else {
            Filter::enabled(&self.errors, meta, ctx)
        }
    }
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_span() {
            Filter::<S>::callsite_enabled(&self.spans, meta)
        } else {
            Filter::<S>::callsite_enabled(&self.errors, meta)
        }
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(
            Filter::<S>::max_level_hint(&self.spans)?
                .max(Filter::<S>::max_level_hint(&self.errors)?),
        )
    }
}

/// Times `db.query` spans and adds `db.slow_query` to late ones before the tracing layer
/// exports them (it must sit below that layer, whose `on_close` runs after this one's).
pub(crate) struct SlowQueries {
    pub db: DbWatch,
    /// The dispatch this layer is part of (inside a callback `get_default` answers the no-op
    /// dispatch).
    pub dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

struct Started(Instant);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SlowQueries {
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.db.watches(attrs.metadata().name())
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(Started(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let started = ctx
            .span(&id)
            .and_then(|s| s.extensions().get::<Started>().map(|s| s.0));
        let Some(attributes) = started.and_then(|s| self.db.slow_query(s)) else {
            return;
        };
        let mut attributes = Some(attributes);
        tracing::dispatcher::get_default(|d| {
            if let (Some(cx), Some(attributes)) = (
                tracing_opentelemetry::get_otel_context(&id, d),
                attributes.take(),
            ) {
                use opentelemetry::trace::TraceContextExt as _;
                cx.span().add_event("db.slow_query", attributes);
            }
        });
    }
}

/// The instrumentation scope of the spans this side makes (the same as the fast path's).
pub(crate) fn tracer(provider: &SdkTracerProvider) -> opentelemetry_sdk::trace::SdkTracer {
    provider.tracer_with_scope(crate::scope())
}
