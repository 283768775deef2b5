//! OTLP logs straight from tracing events: a layer that records each event's fields into a
//! [`Record`] and queues it for the export pipeline ([`crate::fast::pipe`]), which writes it as an
//! OTLP `LogRecord` ([`crate::fast::wire`]).
//!
//! Written by hand instead of the OpenTelemetry log bridge, the SDK's batch log processor and
//! the OTLP log exporter because of the performance budget (docs/DESIGN.md). That path builds an
//! SDK record per event (with the OpenTelemetry context attached to find the trace), clones
//! it into the processor's channel, rebuilds every record that needs redaction, regroups each
//! batch by resource and scope, and converts it into these same protobuf types before
//! encoding; callgrind put it at ~8 000 instructions per log line on the benchmark route.
//! Here the record holds only what the event had (field names and the level are static
//! strings, not copies), the trace ids come from the event's span, and protobuf is written
//! from it directly.
//!
//! What the bridge did is kept: the body is the `message` field, every other field is an
//! attribute (an error as `exception.message`), the severity follows the level, the event
//! name is the callsite's name and the scope is the event's target.
//!
//! Batching, scrubbing and sending are the export pipeline's (`pipe`), shared with spans.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tracing::{Event, Level, Metadata, Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::config::Signal;
use crate::fast::pipe::{
    Payload, Queue, ScopeKey, Scoped, group_by_scope, scrub_attributes, unix_nanos,
};
use crate::fast::store::SpanTable;
use crate::fast::wire::{self, AnyRef};
use crate::redact::{redact_str, scrub_string};

/// One event's log record, until it is written.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    meta: &'static Metadata<'static>,
    time: u64,
    /// Trace id, span id and W3C flags of the event's span.
    ids: Option<([u8; 16], [u8; 8], u32)>,
    body: Option<String>,
    attributes: Vec<(&'static str, Field)>,
}

/// A field's value.
#[derive(Clone, Debug)]
enum Field {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
}

impl Field {
    fn as_any(&self) -> AnyRef<'_> {
        match self {
            Self::Str(s) => AnyRef::Str(s),
            Self::Bool(b) => AnyRef::Bool(*b),
            Self::Int(i) => AnyRef::Int(*i),
            Self::Double(f) => AnyRef::Double(*f),
            Self::Bytes(b) => AnyRef::Bytes(b),
        }
    }

    fn into_proto(self) -> Value {
        match self {
            Self::Str(s) => Value::StringValue(s),
            Self::Bool(b) => Value::BoolValue(b),
            Self::Int(i) => Value::IntValue(i),
            Self::Double(f) => Value::DoubleValue(f),
            Self::Bytes(b) => Value::BytesValue(b),
        }
    }
}

impl Record {
    /// The exported scope: the event's target.
    fn scope(&self) -> &'static str {
        self.meta.target()
    }

    /// The protobuf form, unscrubbed (for JSON, the file and the fallback file).
    fn into_proto(self) -> LogRecord {
        let level = self.meta.level();
        let (trace_id, span_id, flags) =
            self.ids.map_or((Vec::new(), Vec::new(), 0), |(t, s, f)| {
                (t.to_vec(), s.to_vec(), f)
            });
        LogRecord {
            time_unix_nano: self.time,
            observed_time_unix_nano: self.time,
            severity_number: severity(level),
            severity_text: level.as_str().to_owned(),
            event_name: self.meta.name().to_owned(),
            body: self.body.map(|b| AnyValue {
                value: Some(Value::StringValue(b)),
            }),
            attributes: self
                .attributes
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k.to_owned(),
                    value: Some(AnyValue {
                        value: Some(v.into_proto()),
                    }),
                    ..Default::default()
                })
                .collect(),
            trace_id,
            span_id,
            flags,
            ..Default::default()
        }
    }

    /// The body of its `LogRecord` message, scrubbed as [`Logs::scrub`] scrubs the protobuf
    /// form. Fields in tag order, as prost writes them.
    fn encode(&self, buf: &mut Vec<u8>) {
        let level = self.meta.level();
        wire::fixed64(buf, 1, self.time);
        wire::uint(buf, 2, severity(level) as u64);
        wire::string(buf, 3, level.as_str());
        if let Some(body) = &self.body {
            wire::nested(buf, 5, |buf| wire::any_string(buf, &redact_str(body)));
        }
        for (k, v) in &self.attributes {
            wire::attribute(buf, 6, k, v.as_any());
        }
        if let Some((trace_id, span_id, flags)) = &self.ids {
            wire::fixed32(buf, 8, *flags);
            wire::bytes(buf, 9, trace_id);
            wire::bytes(buf, 10, span_id);
        }
        wire::fixed64(buf, 11, self.time);
        wire::string(buf, 12, self.meta.name());
    }
}

/// A record's scope is named after its target, and has nothing else.
impl ScopeKey for &'static str {
    fn is(&self, scope: &InstrumentationScope) -> bool {
        scope.name == *self
    }

    fn into_scope(self) -> InstrumentationScope {
        InstrumentationScope {
            name: self.to_owned(),
            ..Default::default()
        }
    }
}

/// Logs in the export pipeline.
pub(crate) struct Logs;

impl Payload for Logs {
    type Item = Record;
    type Proto = LogRecord;
    type Request = ExportLogsServiceRequest;
    const SIGNAL: Signal = Signal::Logs;

    /// One scope per target, records in arrival order.
    fn scopes(batch: &mut Vec<Record>) -> Vec<Scoped<LogRecord>> {
        group_by_scope(batch, |record| (record.scope(), record.into_proto()))
    }

    /// The same request as [`Logs::request`] after [`Logs::scrub`], written from the records.
    /// Never an error: a field is one of the types tracing records.
    fn encode(resource: &Resource, batch: &[Record]) -> Result<Vec<u8>, wire::Unencodable> {
        Ok(wire::request(
            resource,
            crate::resource::SCHEMA_URL,
            batch,
            // The schema on each scope too, as `opentelemetry-proto`'s conversion writes it.
            |r| wire::Scope {
                name: r.scope(),
                version: "",
                schema_url: crate::resource::SCHEMA_URL,
            },
            |buf, r| r.encode(buf),
        ))
    }

    /// The body and every attribute (see [`scrub_attributes`]).
    fn scrub(record: &mut LogRecord) {
        if let Some(AnyValue {
            value: Some(Value::StringValue(body)),
        }) = &mut record.body
        {
            scrub_string(body);
        }
        scrub_attributes(&mut record.attributes);
    }

    fn request(resource: Resource, scopes: Vec<Scoped<LogRecord>>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource),
                scope_logs: scopes
                    .into_iter()
                    .map(|(scope, log_records)| ScopeLogs {
                        scope: Some(scope),
                        log_records,
                        schema_url: crate::resource::SCHEMA_URL.to_owned(),
                    })
                    .collect(),
                schema_url: crate::resource::SCHEMA_URL.to_owned(),
            }],
        }
    }
}

/// The tracing side. See the module documentation.
pub(crate) struct LogLayer {
    queue: Queue<Record>,
    /// Where the event's span's ids are.
    spans: Arc<SpanTable>,
}

impl LogLayer {
    pub(crate) fn new(queue: Queue<Record>, spans: Arc<SpanTable>) -> Self {
        Self { queue, spans }
    }
}

fn severity(level: &Level) -> i32 {
    // OpenTelemetry's SeverityNumber: TRACE=1, DEBUG=5, INFO=9, WARN=13, ERROR=17.
    match *level {
        Level::TRACE => 1,
        Level::DEBUG => 5,
        Level::INFO => 9,
        Level::WARN => 13,
        Level::ERROR => 17,
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut record = Record {
            meta: event.metadata(),
            time: unix_nanos(std::time::SystemTime::now()),
            ids: self.spans.with_event_span(event, |span| {
                (
                    span.cx.trace_id().to_bytes(),
                    span.cx.span_id().to_bytes(),
                    u32::from(span.cx.trace_flags().to_u8()),
                )
            }),
            body: None,
            attributes: Vec::new(),
        };
        event.record(&mut Visitor(&mut record));
        self.queue.push(record);
    }
}

/// An event's fields into its record: `message` is the body, the rest attributes. Values
/// are taken as they are; the export thread scrubs them.
struct Visitor<'a>(&'a mut Record);

impl Visitor<'_> {
    fn attribute(&mut self, key: &'static str, value: Field) {
        self.0.attributes.push((key, value));
    }

    fn text(&mut self, name: &'static str, value: String) {
        if name == "message" {
            self.0.body = Some(value);
        } else {
            self.attribute(name, Field::Str(value));
        }
    }
}

impl field::Visit for Visitor<'_> {
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.text(field.name(), value.to_owned());
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn std::fmt::Debug) {
        self.text(field.name(), format!("{value:?}"));
    }
    fn record_error(&mut self, _field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.text("exception.message", value.to_string());
    }
    fn record_bool(&mut self, field: &field::Field, value: bool) {
        self.attribute(field.name(), Field::Bool(value));
    }
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        self.attribute(field.name(), Field::Double(value));
    }
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        self.attribute(field.name(), Field::Int(value));
    }
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.attribute(field.name(), Field::Int(v)),
            Err(_) => self.attribute(field.name(), Field::Str(value.to_string())),
        }
    }
    fn record_bytes(&mut self, field: &field::Field, value: &[u8]) {
        self.attribute(field.name(), Field::Bytes(value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SamplerConfig, TelemetryConfig};
    use crate::span_ext::SpanExt as _;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;

    fn attribute<'a>(record: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
        record["attributes"]
            .as_array()?
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| &kv["value"])
    }

    /// The hand-written protobuf (what gRPC and HTTP protobuf send) is byte for byte what prost
    /// makes of the converted and scrubbed request (what JSON, the file and the fallback use).
    #[test]
    fn records_written_by_hand_are_prosts_bytes_for_the_scrubbed_request() {
        use prost::Message as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let (spans, _) = crate::fast::pipe::test_queue();
        let (queue, queued) = crate::fast::pipe::test_queue();
        let store = crate::fast::store::SpanStore::new(crate::fast::spans::Tracer::new(
            SamplerConfig::AlwaysOn,
            Some(spans),
        ));
        let table = store.table().clone();
        let subscriber = store.with(LogLayer::new(queue, table));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            let err = std::io::Error::other("password=hunter2 refused");
            tracing::warn!(
                target: "a",
                password = "hunter2",
                attempts = 3u64,
                huge = u64::MAX,
                remembered = true,
                ratio = 0.5,
                header = "Authorization: Bearer abc.def",
                error = &err as &dyn std::error::Error,
                long = %"x".repeat(200),
                "login failed for token=s3cr3t"
            );
            tracing::info!(target: "b", "second scope");
            drop(_entered);
            tracing::error!(target: "a", n = -1, "outside the span, first scope again");
        });
        let batch = queued();
        assert_eq!(batch.len(), 3);
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("t".into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let ours = Logs::encode(&resource, &batch).unwrap();
        let theirs = Logs::request(
            resource,
            crate::fast::pipe::scrubbed_scopes::<Logs>(&mut batch.clone()),
        )
        .encode_to_vec();
        assert_eq!(ours.len(), theirs.len());
        assert!(ours == theirs, "the encodings differ");
        let text = String::from_utf8_lossy(&ours);
        for secret in ["hunter2", "s3cr3t", "abc.def"] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }

    mod properties {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use prost::Message as _;

        use crate::strategies::{key, text};

        /// Two real callsites' metadata (records hold `&'static` metadata), in two targets so
        /// batches span two scopes.
        fn metadata() -> [&'static Metadata<'static>; 2] {
            use std::sync::{Arc, Mutex};
            use tracing_subscriber::layer::SubscriberExt as _;
            #[derive(Clone, Default)]
            struct Grab(Arc<Mutex<Vec<&'static Metadata<'static>>>>);
            impl<S: Subscriber> Layer<S> for Grab {
                fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                    self.0.lock().unwrap().push(event.metadata());
                }
            }
            let grab = Grab::default();
            tracing::subscriber::with_default(
                tracing_subscriber::registry().with(grab.clone()),
                || {
                    tracing::warn!(target: "a", "x");
                    tracing::info!(target: "b", "y");
                },
            );
            let got = grab.0.lock().unwrap();
            [got[0], got[1]]
        }

        fn field() -> impl Strategy<Value = Field> {
            prop_oneof![
                text().prop_map(Field::Str),
                any::<bool>().prop_map(Field::Bool),
                any::<i64>().prop_map(Field::Int),
                any::<f64>().prop_map(Field::Double),
                vec(any::<u8>(), 0..40).prop_map(Field::Bytes),
            ]
        }

        fn records() -> impl Strategy<Value = Vec<Record>> {
            let [a, b] = metadata();
            vec(
                (
                    prop::sample::select(vec![a, b]),
                    any::<u64>(),
                    proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), 0u32..2)),
                    proptest::option::of(text()),
                    vec((key(), field()), 0..6),
                )
                    .prop_map(|(meta, time, ids, body, attributes)| Record {
                        meta,
                        time,
                        ids,
                        body,
                        attributes,
                    }),
                1..6,
            )
        }

        proptest! {
            /// Any batch of records, every field type, secrets anywhere, two scopes: the
            /// hand-written bytes are prost's for the converted, scrubbed request.
            #[test]
            fn records_written_by_hand_are_prosts_bytes(batch in records()) {
                let resource = Resource::default();
                let ours = Logs::encode(&resource, &batch).unwrap();
                let theirs = Logs::request(
                    resource,
                    crate::fast::pipe::scrubbed_scopes::<Logs>(&mut batch.clone()),
                )
                .encode_to_vec();
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    /// Through the whole pipeline into the log file: the body, typed attributes, severity,
    /// scope, the span's ids, and secrets scrubbed (by key, embedded in text, in the body).
    #[test]
    fn events_become_scrubbed_log_records_with_their_spans_ids() {
        let dir = std::env::temp_dir().join(format!(
            "vidscope-logs-{}-{}",
            std::process::id(),
            unix_nanos(std::time::SystemTime::now())
        ));
        let mut config = TelemetryConfig::new("logs").with_file_exporters(&dir);
        config.sampler = SamplerConfig::AlwaysOn;
        let t = crate::build(&config, BoxMakeWriter::new(std::io::sink)).unwrap();
        let ids = tracing::dispatcher::with_default(&t.dispatch, || {
            let span = tracing::info_span!(target: "vidscope_api", "request");
            let _entered = span.enter();
            tracing::warn!(
                target: "vidscope_api::login",
                password = "hunter2",
                attempts = 3u64,
                remembered = true,
                header = "Authorization: Bearer abc.def",
                "login failed for token=s3cr3t"
            );
            let sc = span.span_context();
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        tracing::dispatcher::with_default(&t.dispatch, || {
            tracing::info!(target: "vidscope_api", "outside any span");
        });
        drop(t);

        let text = std::fs::read_to_string(dir.join("logs.json")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!text.contains("hunter2") && !text.contains("s3cr3t") && !text.contains("abc.def"));
        let records: Vec<serde_json::Value> = text
            .lines()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["resourceLogs"][0]["scopeLogs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| {
                        let scope = s["scope"]["name"].clone();
                        s["logRecords"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(move |r| (scope.clone(), r.clone()))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            .map(|(scope, mut r)| {
                r["scope"] = scope;
                r
            })
            .collect();
        assert_eq!(records.len(), 2, "{text}");
        let login = &records[0];
        assert_eq!(login["scope"], "vidscope_api::login");
        assert_eq!(login["severityText"], "WARN");
        assert_eq!(login["severityNumber"], 13);
        assert_eq!(login["traceId"], ids.0.as_str());
        assert_eq!(login["spanId"], ids.1.as_str());
        assert_eq!(
            login["body"]["stringValue"],
            "login failed for token=[REDACTED]"
        );
        assert_eq!(
            attribute(login, "password").unwrap()["stringValue"],
            crate::redact::REDACTED
        );
        assert_eq!(attribute(login, "attempts").unwrap()["intValue"], "3");
        assert_eq!(attribute(login, "remembered").unwrap()["boolValue"], true);
        assert!(
            attribute(login, "header").unwrap()["stringValue"]
                .as_str()
                .unwrap()
                .contains(crate::redact::REDACTED)
        );
        let outside = &records[1];
        assert_eq!(outside["body"]["stringValue"], "outside any span");
        assert_eq!(outside["severityNumber"], 9);
        assert_eq!(outside["traceId"], "");
    }
}
