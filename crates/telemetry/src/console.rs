//! The console exporter (`OTEL_TRACES_EXPORTER=console`, `OTEL_LOGS_EXPORTER=console`,
//! `OTEL_METRICS_EXPORTER=console`): readable lines on stdout, for development without a
//! Collector (seeds 001 and 003).
//!
//! One line per span, per log record and per metric data point, in logfmt: the signal word,
//! then `key=value` pairs, strings JSON-quoted, numbers and booleans bare.
//! ```text
//! otel.span time=2026-12-06T12:00:00.123456Z name="GET /api/videos" kind=server status=unset duration_ms=1.234 trace_id=4bf9… span_id=00f0… service.name="vidscope-api" scope="vidscope" http.route="/api/videos"
//! otel.log time=2026-12-06T12:00:00.124000Z severity=INFO scope="vidscope_api::routes" body="video uploaded" trace_id=4bf9… span_id=00f0… service.name="vidscope-api" video.id=42
//! otel.metric time=2026-12-06T12:00:10.000000Z name="http.server.request.duration" unit="s" type=histogram count=3 sum=0.0125 min=0.0015 max=0.008 service.name="vidscope-api" scope="vidscope" http.route="/api/videos"
//! ```
//! A log record's `event_name` is shown only when code named the event (tracing's default
//! name, `event <file>:<line>`, is left out). A line never starts with `{`, so the console lines and the JSON log lines that share stdout
//! are told apart by their first byte. The lines are written from the same scrubbed export
//! requests the OTLP and file exporters send, on both backends, so they carry no secret the
//! other outputs would not.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::export_request::{ScopedItems, service_name};

/// The process's stdout, shared by the JSON log lines and the console exporters (tests pass a
/// buffer instead).
#[derive(Clone)]
pub(crate) struct SharedWriter(Arc<BoxMakeWriter>);

impl SharedWriter {
    pub(crate) fn new(writer: BoxMakeWriter) -> Self {
        Self(Arc::new(writer))
    }
}

impl<'a> MakeWriter<'a> for SharedWriter {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        self.0.make_writer_for(meta)
    }
}

/// The console target of one signal.
#[derive(Clone)]
pub(crate) struct Console(SharedWriter);

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Console")
    }
}

impl Console {
    pub(crate) fn new(writer: SharedWriter) -> Self {
        Self(writer)
    }

    /// Writes the lines of one export request in one write, so another thread's lines never
    /// land in the middle of one.
    pub(crate) fn write(&self, request: &impl Lines) -> OTelSdkResult {
        let mut out = String::new();
        request.lines(&mut out);
        if out.is_empty() {
            return Ok(());
        }
        let mut w = self.0.make_writer();
        w.write_all(out.as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| OTelSdkError::InternalFailure(format!("console exporter: {e}")))
    }
}

/// An export request as console lines.
pub(crate) trait Lines {
    /// Appends one line (ending in `\n`) per span, log record or metric data point.
    fn lines(&self, out: &mut String);
}

/// Calls `line` for every item of `request`, with its service and scope names.
fn each<'a, R: ScopedItems>(request: &'a R, mut line: impl FnMut(&'a R::Item, &'a str, &'a str)) {
    for group in request.groups() {
        let service = service_name(group.resource).unwrap_or("");
        let scope = group.scope_name();
        group
            .items
            .iter()
            .for_each(|item| line(item, service, scope));
    }
}

impl Lines for ExportTraceServiceRequest {
    fn lines(&self, out: &mut String) {
        each(self, |span, service, scope| {
            out.push_str("otel.span time=");
            time(out, span.start_time_unix_nano);
            out.push_str(" name=");
            quoted(out, &span.name);
            out.push_str(" kind=");
            out.push_str(span_kind_name(span.kind));
            let (code, message) = span
                .status
                .as_ref()
                .map_or((0, ""), |s| (s.code, s.message.as_str()));
            out.push_str(" status=");
            out.push_str(match code {
                1 => "ok",
                2 => "error",
                _ => "unset",
            });
            if !message.is_empty() {
                out.push_str(" status.message=");
                quoted(out, message);
            }
            let nanos = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            let _ = write!(out, " duration_ms={:.3}", nanos as f64 / 1e6);
            out.push_str(" trace_id=");
            hex(out, &span.trace_id);
            out.push_str(" span_id=");
            hex(out, &span.span_id);
            if !span.parent_span_id.is_empty() {
                out.push_str(" parent_span_id=");
                hex(out, &span.parent_span_id);
            }
            common(out, service, scope);
            if !span.events.is_empty() {
                let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
                out.push_str(" events=");
                quoted(out, &names.join(","));
            }
            end(out, &span.attributes);
        });
    }
}

impl Lines for ExportLogsServiceRequest {
    fn lines(&self, out: &mut String) {
        each(self, |record, service, scope| {
            out.push_str("otel.log time=");
            time(
                out,
                if record.time_unix_nano != 0 {
                    record.time_unix_nano
                } else {
                    record.observed_time_unix_nano
                },
            );
            out.push_str(" severity=");
            if record.severity_text.is_empty() {
                let _ = write!(out, "{}", record.severity_number);
            } else {
                out.push_str(&record.severity_text);
            }
            out.push_str(" scope=");
            quoted(out, scope);
            if let Some(body) = &record.body {
                out.push_str(" body=");
                value(out, body);
            }
            // tracing names every event `event <file>:<line>`: noise on a console
            // line, so only a name given in code is shown.
            if !record.event_name.is_empty() && !record.event_name.starts_with("event ") {
                out.push_str(" event_name=");
                quoted(out, &record.event_name);
            }
            if !record.trace_id.is_empty() {
                out.push_str(" trace_id=");
                hex(out, &record.trace_id);
                out.push_str(" span_id=");
                hex(out, &record.span_id);
            }
            out.push_str(" service.name=");
            quoted(out, service);
            end(out, &record.attributes);
        });
    }
}

impl Lines for ExportMetricsServiceRequest {
    fn lines(&self, out: &mut String) {
        each(self, |m, service, scope| {
            let head = |out: &mut String, time_nanos: u64, kind: &str| {
                out.push_str("otel.metric time=");
                time(out, time_nanos);
                out.push_str(" name=");
                quoted(out, &m.name);
                out.push_str(" unit=");
                quoted(out, &m.unit);
                out.push_str(" type=");
                out.push_str(kind);
            };
            let tail = |out: &mut String, labels: &[KeyValue]| {
                common(out, service, scope);
                end(out, labels);
            };
            match &m.data {
                Some(metric::Data::Gauge(g)) => {
                    for p in &g.data_points {
                        head(out, p.time_unix_nano, "gauge");
                        number(out, p.value);
                        tail(out, &p.attributes);
                    }
                }
                Some(metric::Data::Sum(s)) => {
                    let kind = if s.is_monotonic {
                        "counter"
                    } else {
                        "updowncounter"
                    };
                    for p in &s.data_points {
                        head(out, p.time_unix_nano, kind);
                        number(out, p.value);
                        tail(out, &p.attributes);
                    }
                }
                Some(metric::Data::Histogram(h)) => {
                    for p in &h.data_points {
                        head(out, p.time_unix_nano, "histogram");
                        let _ = write!(out, " count={}", p.count);
                        for (k, v) in [("sum", p.sum), ("min", p.min), ("max", p.max)] {
                            if let Some(v) = v {
                                let _ = write!(out, " {k}={v}");
                            }
                        }
                        tail(out, &p.attributes);
                    }
                }
                Some(metric::Data::ExponentialHistogram(h)) => {
                    for p in &h.data_points {
                        head(out, p.time_unix_nano, "exponential_histogram");
                        let _ = write!(out, " count={}", p.count);
                        if let Some(sum) = p.sum {
                            let _ = write!(out, " sum={sum}");
                        }
                        tail(out, &p.attributes);
                    }
                }
                Some(metric::Data::Summary(s)) => {
                    for p in &s.data_points {
                        head(out, p.time_unix_nano, "summary");
                        let _ = write!(out, " count={} sum={}", p.count, p.sum);
                        tail(out, &p.attributes);
                    }
                }
                None => {}
            }
        });
    }
}

/// Calls `line` with every item of an export request (span, log record, metric), its
/// resource's service name and its scope's name: the walk every signal's lines share.
fn common(out: &mut String, service: &str, scope: &str) {
    out.push_str(" service.name=");
    quoted(out, service);
    out.push_str(" scope=");
    quoted(out, scope);
}

/// The lowercase name of an OTLP span kind (`internal`, `server`, ...), as the console lines
/// and the test kit's telemetry registry capture write it.
pub fn span_kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn time(out: &mut String, nanos: u64) {
    let t = UNIX_EPOCH + Duration::from_nanos(nanos);
    let _ = write!(out, "{}", humantime::format_rfc3339_micros(t));
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// A string as a JSON string: quoted, with quotes, backslashes and newlines escaped, so a
/// value never breaks the line or the `key=value` pairs.
fn quoted(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

fn number(out: &mut String, v: Option<number_data_point::Value>) {
    match v {
        Some(number_data_point::Value::AsInt(i)) => {
            let _ = write!(out, " value={i}");
        }
        Some(number_data_point::Value::AsDouble(d)) => {
            let _ = write!(out, " value={d}");
        }
        None => {}
    }
}

/// The end of a line: its attributes, last, then the newline.
fn end(out: &mut String, attributes: &[KeyValue]) {
    for kv in attributes {
        out.push(' ');
        out.push_str(&kv.key);
        out.push('=');
        match &kv.value {
            Some(v) => value(out, v),
            None => out.push_str("null"),
        }
    }
    out.push('\n');
}

/// An attribute value: strings quoted, numbers and booleans bare, lists and maps as compact
/// JSON, bytes as quoted hex.
fn value(out: &mut String, v: &AnyValue) {
    out.push_str(&json(v).to_string());
}

fn json(v: &AnyValue) -> serde_json::Value {
    use any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => s.as_str().into(),
        Some(Value::BoolValue(b)) => (*b).into(),
        Some(Value::IntValue(i)) => (*i).into(),
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(|| d.to_string().into(), Into::into)
        }
        Some(Value::BytesValue(b)) => {
            let mut s = String::new();
            hex(&mut s, b);
            s.into()
        }
        Some(Value::ArrayValue(a)) => a.values.iter().map(json).collect(),
        Some(Value::KvlistValue(kv)) => kv
            .values
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().map_or(serde_json::Value::Null, json),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

    use super::*;

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn resource() -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv("service.name", s("vidscope-api"))],
            ..Default::default()
        })
    }

    fn scope(name: &str) -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: name.into(),
            ..Default::default()
        })
    }

    fn lines_of(request: &impl Lines) -> String {
        let mut out = String::new();
        request.lines(&mut out);
        out
    }

    /// 2023-11-14T22:13:20Z plus `micros`.
    fn at(micros: u64) -> u64 {
        1_700_000_000_000_000_000 + micros * 1000
    }

    #[test]
    fn a_span_is_one_line_with_its_ids_status_duration_and_attributes() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans {
                    scope: scope("vidscope"),
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        parent_span_id: vec![0x02; 8],
                        name: "http.server.request".into(),
                        kind: span::SpanKind::Server as i32,
                        start_time_unix_nano: at(0),
                        end_time_unix_nano: at(1234),
                        attributes: vec![
                            kv("http.route", s("/api/videos")),
                            kv("http.response.status_code", any_value::Value::IntValue(500)),
                            kv("ok", any_value::Value::BoolValue(false)),
                            kv(
                                "tags",
                                any_value::Value::ArrayValue(ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(s("a \"b\"")),
                                    }],
                                }),
                            ),
                        ],
                        events: vec![span::Event {
                            name: "exception".into(),
                            ..Default::default()
                        }],
                        status: Some(Status {
                            message: "db down\nretry".into(),
                            code: 2,
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(
            lines_of(&request),
            "otel.span time=2023-11-14T22:13:20.000000Z name=\"http.server.request\" kind=server \
             status=error status.message=\"db down\\nretry\" duration_ms=1.234 \
             trace_id=abababababababababababababababab span_id=0101010101010101 \
             parent_span_id=0202020202020202 service.name=\"vidscope-api\" scope=\"vidscope\" \
             events=\"exception\" http.route=\"/api/videos\" http.response.status_code=500 \
             ok=false tags=[\"a \\\"b\\\"\"]\n"
        );
    }

    /// A WARN record named `name`, in a span when `ids`.
    fn record(name: &str, ids: bool) -> LogRecord {
        LogRecord {
            time_unix_nano: at(5),
            severity_text: "WARN".into(),
            severity_number: 13,
            event_name: name.into(),
            body: Some(AnyValue {
                value: Some(s("upload failed")),
            }),
            attributes: vec![kv("video.id", any_value::Value::IntValue(42))],
            trace_id: if ids { vec![0xab; 16] } else { Vec::new() },
            span_id: if ids { vec![0x01; 8] } else { Vec::new() },
            ..Default::default()
        }
    }

    #[test]
    fn a_log_record_is_one_line_with_its_severity_scope_body_and_ids() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    scope: scope("vidscope_api::routes"),
                    log_records: vec![
                        record("event src/routes.rs:12", true),
                        record("video.upload_failed", false),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(
            lines_of(&request),
            "otel.log time=2023-11-14T22:13:20.000005Z severity=WARN \
             scope=\"vidscope_api::routes\" body=\"upload failed\" \
             trace_id=abababababababababababababababab span_id=0101010101010101 \
             service.name=\"vidscope-api\" video.id=42\n\
             otel.log time=2023-11-14T22:13:20.000005Z severity=WARN \
             scope=\"vidscope_api::routes\" body=\"upload failed\" \
             event_name=\"video.upload_failed\" service.name=\"vidscope-api\" video.id=42\n"
        );
    }

    #[test]
    fn a_metric_is_one_line_per_data_point() {
        let point = |route: &str, v: i64| NumberDataPoint {
            time_unix_nano: at(10),
            attributes: vec![kv("http.route", s(route))],
            value: Some(number_data_point::Value::AsInt(v)),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope("vidscope"),
                    metrics: vec![
                        Metric {
                            name: "job.failures_total".into(),
                            unit: "{failure}".into(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: vec![point("/a", 0), point("/b", 3)],
                                is_monotonic: true,
                                ..Default::default()
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "http.server.request.duration".into(),
                            unit: "s".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    time_unix_nano: at(10),
                                    count: 3,
                                    sum: Some(0.5),
                                    min: Some(0.1),
                                    max: Some(0.25),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = lines_of(&request);
        let head = "otel.metric time=2023-11-14T22:13:20.000010Z";
        let tail = "service.name=\"vidscope-api\" scope=\"vidscope\"";
        assert_eq!(
            out,
            format!(
                "{head} name=\"job.failures_total\" unit=\"{{failure}}\" type=counter value=0 \
                 {tail} http.route=\"/a\"\n\
                 {head} name=\"job.failures_total\" unit=\"{{failure}}\" type=counter value=3 \
                 {tail} http.route=\"/b\"\n\
                 {head} name=\"http.server.request.duration\" unit=\"s\" type=histogram count=3 \
                 sum=0.5 min=0.1 max=0.25 {tail}\n"
            )
        );
    }
}
