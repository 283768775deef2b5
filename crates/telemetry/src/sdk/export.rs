//! The `sdk` backend's span and log exporters as the SDK's batch processors see them: what the
//! fast pipeline does with a batch (scrubbing, accounting, the file and console targets, the
//! fallback), done to the SDK's batches, which `otlp_transport` sends.

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::Status;
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use std::sync::Arc;

use super::bounded::QueueBound;
use crate::config::Signal;
use crate::export::{Guarded, Target};
use crate::file::JsonLinesFile;
use crate::otlp_transport::BlockingClient;
use crate::redact::{REDACTED, Redactable, ValueKind, redact_value, scrub_string};

/// A span or log exporter as the SDK's batch processor sees it: what the fast pipeline does
/// around its transport (scrubbing, accounting, file target, fallback), done around the OTLP
/// exporter.
pub(crate) struct SdkExport<E> {
    guarded: Guarded<E>,
    /// For the file target and the fallback, which write whole OTLP requests.
    resource: ResourceAttributesWithSchema,
    /// The batch processor's queue bound, told when a batch leaves the queue.
    bound: Arc<QueueBound>,
}

impl<E> std::fmt::Debug for SdkExport<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkExport").finish_non_exhaustive()
    }
}

impl<E> SdkExport<E> {
    pub(crate) fn new(guarded: Guarded<E>, resource: &Resource, bound: Arc<QueueBound>) -> Self {
        Self {
            guarded,
            resource: resource.into(),
            bound,
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
                    body.scrub_strings();
                    out.set_body(body);
                }
                for (k, v) in r.attributes_iter() {
                    let mut v = v.clone();
                    redact_value(k.as_str(), &mut v);
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

/// Makes the blank records a scrubbed log batch is copied into: the SDK's log record has no
/// way to change an attribute in place, nor a public constructor. A logger of a provider with
/// no processor, made once.
static BLANK: std::sync::LazyLock<SdkLogger> =
    std::sync::LazyLock::new(|| SdkLoggerProvider::builder().build().logger("scrub"));

/// A log value: lists recurse, each map entry by its own key.
impl Redactable for AnyValue {
    fn kind(&self) -> ValueKind {
        match self {
            AnyValue::Boolean(_) => ValueKind::Bool,
            AnyValue::Int(_) | AnyValue::Double(_) => ValueKind::Number,
            _ => ValueKind::Other,
        }
    }
    fn replace(&mut self) {
        *self = AnyValue::String(REDACTED.into());
    }
    fn scrub_strings(&mut self) {
        match self {
            AnyValue::String(s) => scrub_string(s),
            AnyValue::ListAny(items) => items.iter_mut().for_each(AnyValue::scrub_strings),
            AnyValue::Map(map) => {
                for (k, item) in map.iter_mut() {
                    redact_value(k.as_str(), item);
                }
            }
            _ => {}
        }
    }
}

/// A span attribute's value: a string, or the strings of a string array.
impl Redactable for Value {
    fn kind(&self) -> ValueKind {
        match self {
            Value::Bool(_) => ValueKind::Bool,
            Value::I64(_) | Value::F64(_) => ValueKind::Number,
            _ => ValueKind::Other,
        }
    }
    fn replace(&mut self) {
        *self = Value::from(REDACTED);
    }
    fn scrub_strings(&mut self) {
        let strings = match self {
            Value::String(s) => std::slice::from_mut(s),
            Value::Array(opentelemetry::Array::String(items)) => items.as_mut_slice(),
            _ => return,
        };
        strings.iter_mut().for_each(scrub_string);
    }
}

/// Applies the redaction rule to span attributes in place.
fn scrub_attributes(attributes: &mut [KeyValue]) {
    for kv in attributes {
        redact_value(kv.key.as_str(), &mut kv.value);
    }
}

/// What the fast pipeline does to a protobuf span (its `Spans::scrub`), done to the
/// SDK's span: the two walks are one per span type (the SDK's `SpanData`, the protobuf
/// `Span`), with nothing in common to share a trait over, and each hands every value to the
/// one rule (`redact::redact_value`).
fn scrub_span(span: &mut SpanData) {
    scrub_attributes(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        scrub_string(&mut event.name);
        scrub_attributes(&mut event.attributes);
    }
    for link in span.links.links.iter_mut() {
        scrub_attributes(&mut link.attributes);
    }
    if let Status::Error { description } = &mut span.status {
        scrub_string(description);
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
                let written = f.write_json(request);
                self.guarded.stats.record_written(signal, items, &written);
                Ok(())
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
        self.bound.handed_over(batch.len());
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
        self.bound.handed_over(owned.len());
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
