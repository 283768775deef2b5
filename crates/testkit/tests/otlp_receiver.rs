//! Exercises the OTLP capture receiver the way exporters use it: real gRPC clients and real
//! HTTP/1.1 requests carrying protobuf and OTLP/JSON bodies with known ids and attributes.

use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use vidscope_testkit::otlp::proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use vidscope_testkit::otlp::proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use vidscope_testkit::otlp::proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use vidscope_testkit::otlp::proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use vidscope_testkit::otlp::proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use vidscope_testkit::otlp::proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use vidscope_testkit::otlp::proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use vidscope_testkit::otlp::proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs, SeverityNumber,
};
use vidscope_testkit::otlp::proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use vidscope_testkit::otlp::proto::tonic::resource::v1::Resource;
use vidscope_testkit::otlp::proto::tonic::trace::v1::span::{Event, SpanKind};
use vidscope_testkit::otlp::proto::tonic::trace::v1::status::StatusCode as SpanStatusCode;
use vidscope_testkit::otlp::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use vidscope_testkit::otlp::{
    AttrValue, BlackHole, CaptureReceiver, MetricKind, Misbehaviour, PartialReject, PointValue,
    ReceiverOptions, Refusal, RetryAfter, Signal, Temporality, Transport,
};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const ROOT_SPAN_ID: &str = "b7ad6b7169203331";
const CHILD_SPAN_ID: &str = "00f067aa0ba902b7";
const LOG_SPAN_ID: &str = "53995c3f42cd8ad8";
const WAIT: Duration = Duration::from_secs(5);

// ----------------------------------------------------------------------------------------------
// Request builders
// ----------------------------------------------------------------------------------------------

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("test ids are valid hex"))
        .collect()
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(value: &str) -> Value {
    Value::StringValue(value.to_owned())
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", string(service)),
            kv("deployment.environment", string("test")),
        ],
        ..Default::default()
    })
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_owned(),
        version: "1.2.3".to_owned(),
        ..Default::default()
    })
}

/// A request of one resource (`service`) with one scope around `spans`.
fn one_scope_traces(
    service: &str,
    scope_name: &str,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                scope: scope(scope_name),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The same for log records.
fn one_scope_logs(
    service: &str,
    scope_name: &str,
    log_records: Vec<LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                scope: scope(scope_name),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The same for metrics.
fn one_scope_metrics(
    service: &str,
    scope_name: &str,
    metrics: Vec<Metric>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(service),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(scope_name),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A server root span and a client child with attributes of every scalar type and an exception
/// event, the shapes the API's instrumentation produces.
fn trace_request(secret: &str) -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: unhex(TRACE_ID),
        span_id: unhex(ROOT_SPAN_ID),
        name: "GET /videos/{id}".to_owned(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: vec![
            kv("http.request.method", string("GET")),
            kv("http.response.status_code", Value::IntValue(200)),
            kv("vidscope.ratio", Value::DoubleValue(0.75)),
            kv("vidscope.cache_hit", Value::BoolValue(true)),
            kv(
                "vidscope.tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(string("a")),
                    }],
                }),
            ),
            kv("user.token", string(secret)),
        ],
        status: Some(Status {
            code: SpanStatusCode::Ok as i32,
            message: String::new(),
        }),
        ..Default::default()
    };
    let child = Span {
        trace_id: unhex(TRACE_ID),
        span_id: unhex(CHILD_SPAN_ID),
        parent_span_id: unhex(ROOT_SPAN_ID),
        name: "SELECT videos".to_owned(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: 1_700_000_000_010_000_000,
        end_time_unix_nano: 1_700_000_000_020_000_000,
        events: vec![Event {
            name: "exception".to_owned(),
            time_unix_nano: 1_700_000_000_015_000_000,
            attributes: vec![
                kv("exception.type", string("sqlx::Error")),
                kv("exception.message", string("pool timed out")),
            ],
            ..Default::default()
        }],
        status: Some(Status {
            code: SpanStatusCode::Error as i32,
            message: "pool timed out".to_owned(),
        }),
        ..Default::default()
    };
    one_scope_traces("vidscope-api", "vidscope-api", vec![root, child])
}

fn logs_request() -> ExportLogsServiceRequest {
    let in_span = LogRecord {
        time_unix_nano: 1_700_000_000_100_000_000,
        severity_number: SeverityNumber::Warn as i32,
        severity_text: "WARN".to_owned(),
        body: Some(AnyValue {
            value: Some(string("transcode queue is backing up")),
        }),
        attributes: vec![
            kv("queue.depth", Value::IntValue(42)),
            kv("queue.name", string("transcode")),
        ],
        trace_id: unhex(TRACE_ID),
        span_id: unhex(LOG_SPAN_ID),
        event_name: "queue.backpressure".to_owned(),
        ..Default::default()
    };
    let structured = LogRecord {
        severity_number: SeverityNumber::Info as i32,
        body: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("job", string("thumbnail"))],
            })),
        }),
        // All-zero ids are how some SDKs say "no active span".
        trace_id: vec![0; 16],
        span_id: vec![0; 8],
        ..Default::default()
    };
    one_scope_logs(
        "vidscope-worker",
        "vidscope-worker",
        vec![in_span, structured],
    )
}

/// The one point of the request's histogram; the receiver must hand its values back as sent.
fn duration_point() -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![kv("http.route", string("/videos/{id}"))],
        start_time_unix_nano: 1_700_000_000_000_000_000,
        time_unix_nano: 1_700_000_010_000_000_000,
        count: 3,
        sum: Some(0.6),
        bucket_counts: vec![1, 2, 0],
        explicit_bounds: vec![0.1, 0.5],
        min: Some(0.05),
        max: Some(0.3),
        ..Default::default()
    }
}

fn metrics_request() -> ExportMetricsServiceRequest {
    let histogram = Metric {
        name: "http.server.request.duration".to_owned(),
        description: "Duration of HTTP server requests.".to_owned(),
        unit: "s".to_owned(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![duration_point()],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let counter = Metric {
        name: "vidscope.jobs.completed".to_owned(),
        unit: "{job}".to_owned(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: vec![kv("job.kind", string("thumbnail"))],
                time_unix_nano: 1_700_000_010_000_000_000,
                value: Some(number_data_point::Value::AsInt(7)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let gauge = Metric {
        name: "vidscope.queue.depth".to_owned(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                value: Some(number_data_point::Value::AsDouble(12.5)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    one_scope_metrics(
        "vidscope-api",
        "vidscope-metrics",
        vec![histogram, counter, gauge],
    )
}

// ----------------------------------------------------------------------------------------------
// A deliberately dumb HTTP/1.1 client: no proxy settings or connection pools to second-guess.
// ----------------------------------------------------------------------------------------------

struct HttpReply {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl HttpReply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn post(
    receiver: &CaptureReceiver,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> HttpReply {
    let addr = receiver.http_addr();
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to OTLP/HTTP");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("read HTTP response");

    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header section");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let mut content_type = None;
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        assert!(
            !(name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")),
            "test client cannot read chunked bodies"
        );
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        }
    }
    HttpReply {
        status,
        content_type,
        body: raw[split + 4..].to_vec(),
    }
}

/// `request` sent over OTLP/HTTP as protobuf, the encoding the SDK exporters default to.
async fn post_protobuf(
    receiver: &CaptureReceiver,
    signal: Signal,
    request: &impl prost::Message,
) -> HttpReply {
    post(
        receiver,
        signal.http_path(),
        Some("application/x-protobuf"),
        &request.encode_to_vec(),
    )
    .await
}

async fn trace_client(receiver: &CaptureReceiver) -> TraceServiceClient<Channel> {
    TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .expect("connect gRPC")
}

// ----------------------------------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn grpc_traces_are_flattened_with_hex_ids_and_typed_attributes() {
    let receiver = CaptureReceiver::start().await;
    let response = trace_client(&receiver)
        .await
        .export(trace_request("not-a-secret"))
        .await
        .expect("export accepted");
    assert_eq!(response.into_inner(), ExportTraceServiceResponse::default());

    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "{}", receiver.summary());
    let root = &spans[0];
    assert_eq!(root.trace_id, TRACE_ID);
    assert_eq!(root.span_id, ROOT_SPAN_ID);
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.name, "GET /videos/{id}");
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert_eq!(root.duration(), Duration::from_millis(250));
    assert_eq!(root.attr_str("http.request.method"), Some("GET"));
    assert_eq!(root.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(root.attr_f64("vidscope.ratio"), Some(0.75));
    assert_eq!(root.attr_bool("vidscope.cache_hit"), Some(true));
    assert_eq!(
        root.attr("vidscope.tags"),
        Some(&AttrValue::Array(vec![AttrValue::Str("a".to_owned())]))
    );
    // Typed accessors must not coerce: a string is not an int.
    assert_eq!(root.attr_i64("http.request.method"), None);
    assert_eq!(root.attr_str("missing"), None);
    assert_eq!(root.status_code, SpanStatusCode::Ok as i32);
    assert_eq!(root.resource_attr_str("service.name"), Some("vidscope-api"));
    assert_eq!(root.scope_name, "vidscope-api");
    assert_eq!(root.scope_version, "1.2.3");
    assert_eq!(root.transport, Transport::Grpc);

    let child = &spans[1];
    assert_eq!(child.span_id, CHILD_SPAN_ID);
    assert_eq!(child.parent_span_id.as_deref(), Some(ROOT_SPAN_ID));
    assert_eq!(child.status_code, SpanStatusCode::Error as i32);
    assert_eq!(child.status_message, "pool timed out");
    let exception = child.event("exception").expect("exception event");
    assert_eq!(exception.attr_str("exception.type"), Some("sqlx::Error"));
    assert_eq!(exception.time_unix_nano, 1_700_000_000_015_000_000);
    assert!(child.event("nope").is_none());

    assert_eq!(receiver.spans_in_trace(TRACE_ID).len(), 2);
    assert_eq!(
        receiver
            .spans_in_trace(&TRACE_ID.to_ascii_uppercase())
            .len(),
        2
    );
    assert!(
        receiver
            .spans_in_trace("ffffffffffffffffffffffffffffffff")
            .is_empty()
    );
    assert_eq!(receiver.spans_named("SELECT videos").len(), 1);

    let counts = receiver.request_counts();
    assert_eq!(counts.grpc.traces, 1);
    assert_eq!(counts.http.total(), 0);
    assert_eq!(counts.total(), 1);
    assert_eq!(receiver.item_counts().spans, 2);
    assert_eq!(
        receiver.trace_requests(),
        vec![trace_request("not-a-secret")]
    );

    // The raw capture is the gRPC frame: 5-byte prefix, then the protobuf message.
    let raw = receiver.raw_requests();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].signal, Signal::Traces);
    assert_eq!(raw[0].transport, Transport::Grpc);
    assert_eq!(
        &raw[0].body[5..],
        &trace_request("not-a-secret").encode_to_vec()[..]
    );
}

#[tokio::test]
async fn grpc_logs_and_metrics_are_counted_per_signal() {
    let receiver = CaptureReceiver::start().await;
    LogsServiceClient::connect(receiver.grpc_endpoint())
        .await
        .expect("connect logs client")
        .export(logs_request())
        .await
        .expect("logs accepted");
    let mut metrics_client = MetricsServiceClient::connect(receiver.grpc_endpoint())
        .await
        .expect("connect metrics client");
    for _ in 0..2 {
        metrics_client
            .export(metrics_request())
            .await
            .expect("metrics accepted");
    }

    let counts = receiver.request_counts();
    assert_eq!(
        (counts.grpc.traces, counts.grpc.metrics, counts.grpc.logs),
        (0, 2, 1)
    );
    assert_eq!(counts.http.total(), 0);
    let items = receiver.item_counts();
    assert_eq!((items.log_records, items.metric_points), (2, 6));
    assert_eq!(receiver.logs().len(), 2);
    assert_eq!(receiver.metrics().len(), 6);
    assert_eq!(receiver.metric_points("vidscope.jobs.completed").len(), 2);
    assert!(
        receiver
            .logs()
            .iter()
            .all(|l| l.transport == Transport::Grpc)
    );
}

#[tokio::test]
async fn http_protobuf_logs_keep_trace_context_and_bodies() {
    let receiver = CaptureReceiver::start().await;
    let reply = post_protobuf(&receiver, Signal::Logs, &logs_request()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(
        ExportLogsServiceResponse::decode(&reply.body[..]).expect("protobuf response"),
        ExportLogsServiceResponse::default()
    );

    let in_trace = receiver.logs_in_trace(TRACE_ID);
    assert_eq!(in_trace.len(), 1, "{}", receiver.summary());
    let log = &in_trace[0];
    assert_eq!(log.trace_id.as_deref(), Some(TRACE_ID));
    assert_eq!(log.span_id.as_deref(), Some(LOG_SPAN_ID));
    assert_eq!(log.severity_number, SeverityNumber::Warn as i32);
    assert_eq!(log.severity_text, "WARN");
    assert_eq!(log.body.as_deref(), Some("transcode queue is backing up"));
    assert_eq!(log.event_name.as_deref(), Some("queue.backpressure"));
    assert_eq!(log.attr_i64("queue.depth"), Some(42));
    assert_eq!(log.attr_str("queue.name"), Some("transcode"));
    assert_eq!(
        log.resource_attr_str("service.name"),
        Some("vidscope-worker")
    );
    assert_eq!(log.scope_name, "vidscope-worker");
    assert_eq!(log.transport, Transport::Http);

    let logs = receiver.logs();
    let structured = &logs[1];
    assert_eq!(
        structured.trace_id, None,
        "all-zero trace id means no trace"
    );
    assert_eq!(structured.span_id, None);
    assert_eq!(structured.event_name, None);
    assert_eq!(structured.body.as_deref(), Some(r#"{"job":"thumbnail"}"#));

    let counts = receiver.request_counts();
    assert_eq!(counts.http.logs, 1);
    assert_eq!(counts.grpc.total(), 0);
}

#[tokio::test]
async fn http_json_metrics_expose_histograms_sums_and_gauges() {
    let receiver = CaptureReceiver::start().await;
    let json = serde_json::to_vec(&metrics_request()).expect("serialize OTLP/JSON");
    let reply = post(
        &receiver,
        "/v1/metrics",
        Some("application/json; charset=utf-8"),
        &json,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON response");
    assert!(body.is_object(), "response {body}");

    let duration = receiver.metrics_named("http.server.request.duration");
    assert_eq!(duration.len(), 1);
    assert_eq!(duration[0].unit, "s");
    assert_eq!(
        duration[0].kind,
        MetricKind::Histogram {
            temporality: Temporality::Cumulative
        }
    );
    assert_eq!(
        duration[0].resource_attr_str("service.name"),
        Some("vidscope-api")
    );
    assert_eq!(duration[0].scope_name, "vidscope-metrics");
    let points = receiver.metric_points("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].attr_str("http.route"), Some("/videos/{id}"));
    let sent = duration_point();
    assert_eq!(
        points[0].value,
        PointValue::Histogram {
            count: sent.count,
            sum: sent.sum,
            bucket_counts: sent.bucket_counts,
            explicit_bounds: sent.explicit_bounds,
            min: sent.min,
            max: sent.max,
        }
    );
    assert_eq!(points[0].value.count(), Some(3));

    let jobs = receiver.metrics_named("vidscope.jobs.completed");
    assert_eq!(
        jobs[0].kind,
        MetricKind::Sum {
            monotonic: true,
            temporality: Temporality::Delta
        }
    );
    assert_eq!(jobs[0].points[0].value.as_i64(), Some(7));
    assert_eq!(jobs[0].points[0].attr_str("job.kind"), Some("thumbnail"));

    let depth = receiver.metric_points("vidscope.queue.depth");
    assert_eq!(depth[0].value, PointValue::Double(12.5));
    assert_eq!(depth[0].value.as_number(), Some(12.5));
    assert_eq!(receiver.request_counts().http.metrics, 1);
    assert_eq!(receiver.item_counts().metric_points, 3);
    assert_eq!(receiver.metrics_requests(), vec![metrics_request()]);
}

/// Hand-written OTLP/JSON, as the spec's examples and other SDKs produce it: hex ids, camelCase,
/// int64 as strings, enums as numbers and an empty parent id.
#[tokio::test]
async fn http_json_traces_accept_spec_shaped_otlp_json() {
    let receiver = CaptureReceiver::start().await;
    let body = format!(
        r#"{{"resourceSpans":[{{
            "resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"vidscope-worker"}}}}]}},
            "scopeSpans":[{{
              "scope":{{"name":"worker","version":"0.1.0"}},
              "spans":[{{
                "traceId":"{TRACE_ID}","spanId":"{CHILD_SPAN_ID}","parentSpanId":"",
                "name":"process job","kind":1,
                "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000",
                "attributes":[
                  {{"key":"job.id","value":{{"intValue":"9007199254740993"}}}},
                  {{"key":"job.ok","value":{{"boolValue":false}}}}
                ],
                "events":[{{"timeUnixNano":"1700000000500000000","name":"checkpoint",
                  "attributes":[{{"key":"step","value":{{"stringValue":"probe"}}}}]}}],
                "status":{{"code":2,"message":"ffprobe failed"}}
              }}]
            }}]
        }}]}}"#
    );
    let reply = post(
        &receiver,
        "/v1/traces",
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        serde_json::from_slice::<ExportTraceServiceResponse>(&reply.body).is_ok(),
        "response must be a JSON ExportTraceServiceResponse: {}",
        reply.text()
    );

    let span = receiver
        .wait_for_span(|s| s.name == "process job", WAIT)
        .await
        .expect("span captured");
    assert_eq!(span.trace_id, TRACE_ID);
    assert_eq!(span.span_id, CHILD_SPAN_ID);
    assert_eq!(span.parent_span_id, None);
    assert_eq!(span.kind, SpanKind::Internal as i32);
    assert_eq!(span.attr_i64("job.id"), Some(9_007_199_254_740_993));
    assert_eq!(span.attr_bool("job.ok"), Some(false));
    assert_eq!(
        span.event("checkpoint").and_then(|e| e.attr_str("step")),
        Some("probe")
    );
    assert_eq!(span.status_code, 2);
    assert_eq!(span.status_message, "ffprobe failed");
    assert_eq!(
        span.resource_attr_str("service.name"),
        Some("vidscope-worker")
    );
    assert_eq!(span.scope_name, "worker");
    assert_eq!(span.transport, Transport::Http);
    assert_eq!(receiver.request_counts().http.traces, 1);
}

#[tokio::test]
async fn empty_json_export_is_accepted() {
    let receiver = CaptureReceiver::start().await;
    for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
        let reply = post(
            &receiver,
            signal.http_path(),
            Some("application/json"),
            b"{}",
        )
        .await;
        assert_eq!(reply.status, 200, "{signal:?}: {}", reply.text());
    }
    let counts = receiver.request_counts();
    assert_eq!(
        (counts.http.traces, counts.http.metrics, counts.http.logs),
        (1, 1, 1)
    );
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn raw_contains_finds_secrets_in_every_encoding() {
    let receiver = CaptureReceiver::start().await;
    trace_client(&receiver)
        .await
        .export(trace_request("grpc-secret-7f3a"))
        .await
        .expect("export accepted");
    assert!(receiver.raw_contains(b"grpc-secret-7f3a"));
    assert!(!receiver.raw_contains(b"json-secret"));

    // JSON escapes the quote on the wire; the decoded rendering still exposes the real value.
    let tricky = "json-\"secret\"-é";
    let json = serde_json::to_vec(&trace_request(tricky)).expect("serialize");
    assert!(
        !json.windows(tricky.len()).any(|w| w == tricky.as_bytes()),
        "precondition: the JSON body must not contain the secret verbatim"
    );
    let reply = post(&receiver, "/v1/traces", Some("application/json"), &json).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(receiver.raw_contains(tricky.as_bytes()));
    // Ids only exist as hex in renderings, never in the protobuf bytes.
    assert!(receiver.raw_contains(TRACE_ID.as_bytes()));

    assert!(!receiver.raw_contains(b"never-sent-anywhere"));
    assert!(
        receiver.raw_contains(b""),
        "empty needle must not pass vacuously"
    );

    // Even a request the receiver refuses has left the process, so it is searched too.
    let reply = post(
        &receiver,
        "/v1/logs",
        Some("text/plain"),
        b"refused-secret-99",
    )
    .await;
    assert_eq!(reply.status, 415);
    assert!(receiver.raw_contains(b"refused-secret-99"));
}

#[tokio::test]
async fn bad_http_input_is_refused_with_an_explanation() {
    let receiver = CaptureReceiver::start().await;

    /// A request (path, content type, body), the status it gets, and what the explanation of
    /// the refusal must name.
    type Refused = (
        &'static str,
        Option<&'static str>,
        &'static [u8],
        u16,
        &'static str,
    );
    let bad: [Refused; 6] = [
        (
            "/v1/traces",
            Some("text/plain"),
            b"hello",
            415,
            "text/plain",
        ),
        ("/v1/traces", None, b"hello", 415, "Content-Type"),
        (
            "/v1/traces",
            Some("application/x-protobuf"),
            &[0xff, 0xff, 0xff, 0xff],
            400,
            "protobuf",
        ),
        (
            "/v1/metrics",
            Some("application/json"),
            b"{not json",
            400,
            "not valid JSON",
        ),
        (
            "/v1/traces",
            Some("application/json"),
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
            400,
            "ExportTraceServiceRequest",
        ),
        (
            "/v1/trace",
            Some("application/json"),
            b"{}",
            404,
            "/v1/traces",
        ),
    ];
    for (path, content_type, body, status, explanation) in bad {
        let reply = post(&receiver, path, content_type, body).await;
        assert_eq!(reply.status, status, "{path} {content_type:?}");
        assert!(reply.text().contains(explanation), "{}", reply.text());
    }

    assert_eq!(receiver.request_counts().total(), 0);
    assert_eq!(receiver.problems().len(), 6, "{:#?}", receiver.problems());
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn wait_timeout_lists_what_was_received() {
    let receiver = CaptureReceiver::start().await;
    let reply = post_protobuf(&receiver, Signal::Traces, &trace_request("x")).await;
    assert_eq!(reply.status, 200);
    post_protobuf(&receiver, Signal::Logs, &logs_request()).await;
    post(&receiver, "/v1/metrics", Some("text/csv"), b"a,b").await;

    let started = std::time::Instant::now();
    let err = receiver
        .wait_for_span(|s| s.name == "never emitted", Duration::from_millis(200))
        .await
        .expect_err("no such span");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(3));

    let report = err.to_string();
    for expected in [
        "timed out after 200ms",
        "a span matching the predicate",
        "GET /videos/{id}",
        "SELECT videos",
        TRACE_ID,
        "transcode queue is backing up",
        "415",
        "text/csv",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    // `.unwrap()` prints Debug; it must be the readable report, not an escaped struct dump.
    assert_eq!(format!("{err:?}"), report);

    let err = receiver
        .wait_for_metric_point("no.such.metric", |_| true, Duration::from_millis(50))
        .await
        .expect_err("no such metric");
    assert!(err.to_string().contains("no.such.metric"), "{err}");
    assert!(
        receiver
            .wait_until(|r| r.logs().len() == 99, Duration::from_millis(50))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn waits_return_as_soon_as_late_data_arrives() {
    let receiver = CaptureReceiver::start().await;
    let sender = receiver.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        trace_client(&sender)
            .await
            .export(trace_request("x"))
            .await
            .expect("export");
        let mut logs = LogsServiceClient::connect(sender.grpc_endpoint())
            .await
            .expect("connect gRPC");
        logs.export(logs_request()).await.expect("export");
        let mut metrics = MetricsServiceClient::connect(sender.grpc_endpoint())
            .await
            .expect("connect gRPC");
        metrics.export(metrics_request()).await.expect("export");
    });

    let span = receiver
        .wait_for_span(|s| s.parent_span_id.as_deref() == Some(ROOT_SPAN_ID), WAIT)
        .await
        .expect("child span arrives");
    assert_eq!(span.name, "SELECT videos");
    let log = receiver
        .wait_for_log(
            |l| l.event_name.as_deref() == Some("queue.backpressure"),
            WAIT,
        )
        .await
        .expect("log arrives");
    assert_eq!(log.trace_id.as_deref(), Some(TRACE_ID));
    let point = receiver
        .wait_for_metric_point(
            "vidscope.jobs.completed",
            |p| p.value.as_i64() >= Some(7),
            WAIT,
        )
        .await
        .expect("metric arrives");
    assert_eq!(point.attr_str("job.kind"), Some("thumbnail"));
    receiver
        .wait_until(|r| r.request_counts().grpc.total() == 3, WAIT)
        .await
        .expect("three gRPC exports");
}

#[tokio::test]
async fn reject_mode_simulates_an_unavailable_collector() {
    let receiver = CaptureReceiver::start().await;
    receiver.set_reject(true);

    let mut client = trace_client(&receiver).await;
    let status = client
        .export(trace_request("x"))
        .await
        .expect_err("rejected");
    assert_eq!(status.code(), tonic::Code::Unavailable);

    let reply = post_protobuf(&receiver, Signal::Traces, &trace_request("x")).await;
    assert_eq!(reply.status, 503);

    assert_eq!(receiver.rejected_count(), 2);
    assert_eq!(receiver.request_counts().total(), 0);
    assert!(receiver.spans().is_empty());

    receiver.set_reject(false);
    client
        .export(trace_request("x"))
        .await
        .expect("accepted again");
    assert_eq!(receiver.request_counts().grpc.traces, 1);
    assert_eq!(receiver.spans().len(), 2);
    assert_eq!(receiver.rejected_count(), 2);
}

/// The misbehaviour knobs as an exporter meets them: the first request of a signal refused
/// with a server wait (HTTP `Retry-After`, a gRPC `RetryInfo`), the next accepted with a
/// partial success; every attempt recorded.
#[tokio::test]
async fn misbehaviour_refuses_with_a_wait_then_accepts_partially() {
    use tonic_types::StatusExt as _;
    let receiver = CaptureReceiver::start().await;
    let throttle = Misbehaviour {
        refuse_first: 1,
        refusal: Refusal::Throttled,
        retry_after: Some(RetryAfter::Seconds(7)),
        partial_success: Some(PartialReject {
            rejected: 2,
            message: "too old".to_owned(),
        }),
        require_gzip: false,
        delay: None,
    };
    receiver.misbehave(throttle.clone());
    let client = reqwest::Client::new();
    let body = trace_request("x").encode_to_vec();
    let send = || {
        client
            .post(receiver.http_signal_endpoint(Signal::Traces))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    let refused = send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "7");
    let accepted = send().await.unwrap();
    assert_eq!(accepted.status(), 200);
    let answer = ExportTraceServiceResponse::decode(accepted.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(
        (partial.rejected_spans, partial.error_message.as_str()),
        (2, "too old")
    );

    // The count starts afresh: gRPC's first request is refused too.
    receiver.misbehave(throttle);
    let mut grpc = trace_client(&receiver).await;
    let status = grpc.export(trace_request("x")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("a RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
    let answer = grpc.export(trace_request("x")).await.unwrap().into_inner();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 2);

    let refused: Vec<_> = receiver.attempts().into_iter().map(|a| a.refused).collect();
    assert_eq!(
        refused,
        [
            Some("429".to_owned()),
            None,
            Some("ResourceExhausted".to_owned()),
            None
        ]
    );
    assert_eq!(receiver.request_counts().traces(), 2);
}

/// `delay`: every export is answered that late, over HTTP and gRPC (a slow collector).
#[tokio::test]
async fn misbehaviour_answers_late() {
    let receiver = CaptureReceiver::start().await;
    let delay = Duration::from_millis(400);
    receiver.misbehave(Misbehaviour {
        delay: Some(delay),
        ..Misbehaviour::default()
    });
    let start = std::time::Instant::now();
    let answer = reqwest::Client::new()
        .post(receiver.http_signal_endpoint(Signal::Traces))
        .header("content-type", "application/x-protobuf")
        .body(trace_request("x").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        start.elapsed() >= delay,
        "HTTP answered after {:?}",
        start.elapsed()
    );
    let mut grpc = trace_client(&receiver).await;
    let start = std::time::Instant::now();
    grpc.export(trace_request("x")).await.unwrap();
    assert!(
        start.elapsed() >= delay,
        "gRPC answered after {:?}",
        start.elapsed()
    );
    assert_eq!(receiver.request_counts().traces(), 2);
}

/// `require_gzip`: what is not compressed is refused; what is, is checked on the bytes (a gzip
/// body, a compressed gRPC frame), decoded and recorded as gzip; a body that says gzip but is
/// not is refused.
#[tokio::test]
async fn gzip_is_checked_on_the_bytes_and_decoded() {
    use tonic::codec::CompressionEncoding::Gzip;
    let receiver = CaptureReceiver::start().await;
    receiver.misbehave(Misbehaviour {
        require_gzip: true,
        ..Misbehaviour::default()
    });
    let client = reqwest::Client::new();
    let body = trace_request("x").encode_to_vec();
    let send = |encoding: Option<&'static str>, body: Vec<u8>| {
        let mut request = client
            .post(receiver.http_signal_endpoint(Signal::Traces))
            .header("content-type", "application/x-protobuf");
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        request.body(body).send()
    };
    assert_eq!(send(None, body.clone()).await.unwrap().status(), 415);
    assert_eq!(
        send(Some("gzip"), body.clone()).await.unwrap().status(),
        400
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &body).unwrap();
    let packed = gz.finish().unwrap();
    assert_eq!(send(Some("gzip"), packed).await.unwrap().status(), 200);

    let channel = tonic::transport::Endpoint::from_shared(receiver.grpc_endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut plain = TraceServiceClient::new(channel.clone());
    let status = plain.export(trace_request("x")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let mut packed = TraceServiceClient::new(channel).send_compressed(Gzip);
    packed.export(trace_request("x")).await.unwrap();

    let seen: Vec<_> = receiver
        .attempts()
        .into_iter()
        .map(|a| (a.transport, a.gzip, a.refused.is_none()))
        .collect();
    assert_eq!(
        seen,
        [
            (Transport::Http, false, false),
            (Transport::Http, true, true),
            (Transport::Grpc, false, false),
            (Transport::Grpc, true, true),
        ]
    );
    assert_eq!(
        receiver.spans().len(),
        4,
        "two requests of two spans, decoded"
    );
}

#[tokio::test]
async fn clear_forgets_everything() {
    let receiver = CaptureReceiver::start().await;
    let reply = post_protobuf(&receiver, Signal::Traces, &trace_request("clear-me")).await;
    assert_eq!(reply.status, 200);
    assert!(receiver.raw_contains(b"clear-me"));

    receiver.clear();
    assert!(receiver.spans().is_empty());
    assert!(receiver.trace_requests().is_empty());
    assert!(receiver.raw_requests().is_empty());
    assert!(!receiver.raw_contains(b"clear-me"));
    assert_eq!(receiver.request_counts().total(), 0);
    assert_eq!(receiver.item_counts().spans, 0);
}

#[tokio::test]
async fn without_retention_only_counters_are_kept() {
    let receiver = CaptureReceiver::start_with(ReceiverOptions {
        retain: false,
        ..ReceiverOptions::default()
    })
    .await
    .expect("start");
    trace_client(&receiver)
        .await
        .export(trace_request("dropped"))
        .await
        .expect("export accepted");
    let reply = post_protobuf(&receiver, Signal::Metrics, &metrics_request()).await;
    assert_eq!(reply.status, 200);

    let items = receiver.item_counts();
    assert_eq!((items.spans, items.metric_points), (2, 3));
    assert_eq!(receiver.request_counts().total(), 2);
    assert!(receiver.spans().is_empty());
    assert!(receiver.raw_requests().is_empty());
    assert!(!receiver.raw_contains(b"dropped"));
    assert!(receiver.summary().contains("retain = false"));
}

#[tokio::test]
async fn endpoints_have_the_documented_shape() {
    let receiver = CaptureReceiver::start().await;
    let grpc = receiver.grpc_endpoint();
    let http = receiver.http_endpoint();
    assert!(grpc.starts_with("http://127.0.0.1:"), "{grpc}");
    assert!(http.starts_with("http://127.0.0.1:"), "{http}");
    assert_ne!(grpc, http);
    assert_eq!(
        receiver.http_signal_endpoint(Signal::Logs),
        format!("{http}/v1/logs")
    );
}

async fn wait_until_refused(addr: std::net::SocketAddr) -> bool {
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_servers() {
    let receiver = CaptureReceiver::start().await;
    let clone = receiver.clone();
    let (grpc, http) = (receiver.grpc_addr(), receiver.http_addr());
    drop(receiver);
    // A surviving clone keeps the servers up.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = post(&clone, "/v1/logs", Some("application/json"), b"{}").await;
    assert_eq!(reply.status, 200);

    drop(clone);
    assert!(wait_until_refused(http).await, "HTTP listener still open");
    assert!(wait_until_refused(grpc).await, "gRPC listener still open");
}

#[tokio::test]
async fn shutdown_stops_the_servers_for_all_clones() {
    let receiver = CaptureReceiver::start().await;
    let clone = receiver.clone();
    // An open gRPC connection must not keep shutdown waiting.
    let mut client = trace_client(&receiver).await;
    client.export(trace_request("x")).await.expect("export");

    tokio::time::timeout(Duration::from_secs(4), receiver.shutdown())
        .await
        .expect("shutdown finishes promptly");
    assert!(wait_until_refused(clone.http_addr()).await);
    assert!(wait_until_refused(clone.grpc_addr()).await);
    // Captured data outlives the servers.
    assert_eq!(clone.spans().len(), 2);
}

/// SDK flushes block the calling thread until the exporter gets a response; under the default
/// current-thread test runtime the receiver must still answer.
#[tokio::test]
async fn blocking_exports_from_the_test_thread_do_not_deadlock() {
    use std::io::{Read, Write};

    let receiver = CaptureReceiver::start().await;
    let body = trace_request("x").encode_to_vec();
    let mut stream = std::net::TcpStream::connect(receiver.http_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        receiver.http_addr(),
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(&body).expect("write body");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("the receiver answers while the test thread is blocked");
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(receiver.spans().len(), 2);
}

/// The drills' hung collector: connections are accepted and read, nothing ever comes back, so
/// an exporter's own timeout is the only way out; shutdown closes everything.
#[tokio::test]
async fn the_black_hole_accepts_reads_and_never_answers() {
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let hole = BlackHole::start(&[loopback, loopback]).expect("bind the black hole");
    let (grpc, http) = (hole.addrs()[0], hole.addrs()[1]);
    assert_ne!(
        grpc.port(),
        0,
        "the bound port is reported, not the requested 0"
    );

    // OTLP/HTTP: a whole request goes in, not a byte comes out, and the connection stays open.
    let body = trace_request("x").encode_to_vec();
    let mut conn = TcpStream::connect(http).await.expect("connect HTTP");
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {http}\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(500), conn.read(&mut byte)).await;
    assert!(read.is_err(), "the black hole answered or closed: {read:?}");

    // OTLP/gRPC: the client's deadline, not an answer, ends the export.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .timeout(Duration::from_millis(300))
        .connect_lazy();
    let mut client = TraceServiceClient::new(channel);
    let result = tokio::time::timeout(Duration::from_secs(5), client.export(trace_request("x")))
        .await
        .expect("the client's own deadline ends the export");
    let status = result.expect_err("a black hole never accepts an export");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded | tonic::Code::Unavailable
        ),
        "{status:?}"
    );

    assert_eq!(hole.connections(), 2);
    let expected = (head.len() + body.len()) as u64;
    assert!(
        hole.bytes() >= expected,
        "read {} bytes, sent {expected} over HTTP plus the gRPC preface",
        hole.bytes()
    );
    tokio::time::timeout(Duration::from_secs(4), hole.shutdown())
        .await
        .expect("shutdown finishes with connections held");
    assert_eq!(
        conn.read(&mut byte).await.unwrap_or(0),
        0,
        "held connections are closed at shutdown"
    );
    assert!(wait_until_refused(http).await, "HTTP listener still open");
    assert!(wait_until_refused(grpc).await, "gRPC listener still open");
}
