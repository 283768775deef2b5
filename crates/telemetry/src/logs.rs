//! OTLP logs straight from tracing events: a layer that builds each event's OTLP `LogRecord`
//! and queues it for the export pipeline ([`crate::pipe`]).
//!
//! Written by hand instead of the OpenTelemetry log bridge, the SDK's batch log processor and
//! the OTLP log exporter because of the performance budget (DESIGN.md). That path builds an
//! SDK record per event (with the OpenTelemetry context attached to find the trace), clones
//! it into the processor's channel, rebuilds every record that needs redaction, regroups each
//! batch by resource and scope, and converts it into these same protobuf types before
//! encoding; callgrind put it at ~8 000 instructions per log line on the benchmark route.
//! Here the record is the protobuf type from the start and the trace ids come from the
//! event's span.
//!
//! What the bridge did is kept: the body is the `message` field, every other field is an
//! attribute (an error as `exception.message`), the severity follows the level, the event
//! name is the callsite's name and the scope is the event's target.
//!
//! Batching, scrubbing and sending are the export pipeline's (`pipe`), shared with spans.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tracing::{Event, Level, Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Signal;
use crate::pipe::{Payload, Queue, Scoped, scrub_attributes, scrub_string, unix_nanos};
use crate::spans::OtelSpan;

/// A record and its event's target (the scope it is exported under).
pub(crate) type Item = (&'static str, LogRecord);

/// Logs in the export pipeline.
pub(crate) struct Logs;

impl Payload for Logs {
    type Item = Item;
    type Proto = LogRecord;
    type Request = ExportLogsServiceRequest;
    const SIGNAL: Signal = Signal::Logs;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

    /// One scope per target, records in arrival order.
    fn scopes(batch: &mut Vec<Item>) -> Vec<Scoped<LogRecord>> {
        let mut scopes: Vec<Scoped<LogRecord>> = Vec::new();
        for (target, record) in batch.drain(..) {
            match scopes.iter_mut().find(|(scope, _)| scope.name == target) {
                Some((_, records)) => records.push(record),
                None => scopes.push((
                    InstrumentationScope {
                        name: target.to_owned(),
                        ..Default::default()
                    },
                    vec![record],
                )),
            }
        }
        scopes
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
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            }],
        }
    }
}

/// The tracing side. See the module documentation.
pub(crate) struct LogLayer {
    queue: Queue<Item>,
}

impl LogLayer {
    pub(crate) fn new(queue: Queue<Item>) -> Self {
        Self { queue }
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

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let now = unix_nanos(std::time::SystemTime::now());
        let mut record = LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: severity(meta.level()),
            severity_text: meta.level().as_str().to_owned(),
            event_name: meta.name().to_owned(),
            attributes: Vec::with_capacity(meta.fields().len()),
            ..Default::default()
        };
        if let Some(span) = ctx.event_span(event)
            && let Some(otel) = span.extensions().get::<OtelSpan>()
        {
            record.trace_id = otel.cx.trace_id().to_bytes().to_vec();
            record.span_id = otel.cx.span_id().to_bytes().to_vec();
            record.flags = u32::from(otel.cx.trace_flags().to_u8());
        }
        event.record(&mut Visitor(&mut record));
        self.queue.push((meta.target(), record));
    }
}

/// An event's fields into its record: `message` is the body, the rest attributes. Values
/// are taken as they are; the export thread scrubs them (`Logs::scrub`).
struct Visitor<'a>(&'a mut LogRecord);

impl Visitor<'_> {
    fn attribute(&mut self, key: &str, value: Value) {
        self.0.attributes.push(KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }

    fn text(&mut self, name: &str, value: String) {
        if name == "message" {
            self.0.body = Some(AnyValue {
                value: Some(Value::StringValue(value)),
            });
        } else {
            self.attribute(name, Value::StringValue(value));
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
        self.attribute(field.name(), Value::BoolValue(value));
    }
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        self.attribute(field.name(), Value::DoubleValue(value));
    }
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        self.attribute(field.name(), Value::IntValue(value));
    }
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.attribute(field.name(), Value::IntValue(v)),
            Err(_) => self.attribute(field.name(), Value::StringValue(value.to_string())),
        }
    }
    fn record_bytes(&mut self, field: &field::Field, value: &[u8]) {
        self.attribute(field.name(), Value::BytesValue(value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SamplerConfig, TelemetryConfig};
    use crate::spans::SpanExt as _;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;

    fn attribute<'a>(record: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
        record["attributes"]
            .as_array()?
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| &kv["value"])
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
