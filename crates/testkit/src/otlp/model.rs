//! What the receiver hands to tests: signals and transports, flattened spans, logs and
//! metrics with owned attribute values, request counts, and the receiver's options.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use super::misbehave::Misbehaviour;

/// The three OTLP signals, so counts and raw captures can be attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    /// OTLP/HTTP exporters configured with a signal-specific endpoint need the full URL, not the
    /// base endpoint, so tests build it from this.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// Which server received a request; tests use it to prove the configured protocol was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Grpc,
    Http,
}

/// An owned copy of an OTLP `AnyValue`, so assertions do not have to walk nested `Option`s.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Vec<(String, AttrValue)>),
    /// The sender set the key but no value (or a profiles-only string-table reference, which this
    /// receiver has no table for).
    Empty,
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Only `Double` values: an integer attribute where a float was expected usually means the
    /// instrumentation recorded the wrong type, which a test should notice.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// JSON form used for non-string log bodies and timeout reports; bytes become lowercase hex
    /// because that is how ids are shown everywhere else in this module.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AttrValue::Str(s) => Value::String(s.clone()),
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Int(i) => Value::from(*i),
            AttrValue::Double(d) => {
                serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
            }
            AttrValue::Bytes(b) => Value::String(hex(b)),
            AttrValue::Array(items) => Value::Array(items.iter().map(AttrValue::to_json).collect()),
            AttrValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            AttrValue::Empty => Value::Null,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

impl From<&AnyValue> for AttrValue {
    fn from(value: &AnyValue) -> Self {
        use any_value::Value;
        match &value.value {
            None | Some(Value::StringValueStrindex(_)) => AttrValue::Empty,
            Some(Value::StringValue(s)) => AttrValue::Str(s.clone()),
            Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(Value::IntValue(i)) => AttrValue::Int(*i),
            Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
            Some(Value::BytesValue(b)) => AttrValue::Bytes(b.clone()),
            Some(Value::ArrayValue(a)) => {
                AttrValue::Array(a.values.iter().map(AttrValue::from).collect())
            }
            Some(Value::KvlistValue(kv)) => AttrValue::Map(attributes(&kv.values)),
        }
    }
}

/// Attributes in the order the sender wrote them; OTLP permits duplicate keys, so this is a list
/// rather than a map and lookups return the first match.
pub type Attributes = Vec<(String, AttrValue)>;

/// Lowercase hex, the form tests write ids in.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Owned attribute values in wire order; a key sent without a value is [`AttrValue::Empty`].
pub(super) fn attributes(kvs: &[KeyValue]) -> Attributes {
    kvs.iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or(AttrValue::Empty, AttrValue::from);
            (kv.key.clone(), value)
        })
        .collect()
}

fn find_attr<'a>(attrs: &'a [(String, AttrValue)], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

macro_rules! attribute_accessors {
    ($ty:ty) => {
        impl $ty {
            /// First value recorded under `key`.
            pub fn attr(&self, key: &str) -> Option<&AttrValue> {
                find_attr(&self.attributes, key)
            }

            pub fn attr_str(&self, key: &str) -> Option<&str> {
                self.attr(key).and_then(AttrValue::as_str)
            }

            pub fn attr_i64(&self, key: &str) -> Option<i64> {
                self.attr(key).and_then(AttrValue::as_i64)
            }

            pub fn attr_f64(&self, key: &str) -> Option<f64> {
                self.attr(key).and_then(AttrValue::as_f64)
            }

            pub fn attr_bool(&self, key: &str) -> Option<bool> {
                self.attr(key).and_then(AttrValue::as_bool)
            }

            /// Asserts that each `(key, value)` is recorded here as that string.
            #[track_caller]
            pub fn assert_attr_strs(&self, expected: &[(&str, &str)]) {
                for (key, value) in expected {
                    assert_eq!(self.attr_str(key), Some(*value), "{key}");
                }
            }
        }
    };
}

macro_rules! resource_accessors {
    ($ty:ty) => {
        impl $ty {
            /// Resource attributes carry `service.name` and friends, which tests check to make
            /// sure the right process emitted the data.
            pub fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
                find_attr(&self.resource, key)
            }

            pub fn resource_attr_str(&self, key: &str) -> Option<&str> {
                self.resource_attr(key).and_then(AttrValue::as_str)
            }
        }
    };
}

/// One span, denormalised with its resource and scope so it can be asserted on alone.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedSpan {
    /// Lowercase hex, 32 characters when the sender set a valid id.
    pub trace_id: String,
    /// Lowercase hex, 16 characters when the sender set a valid id.
    pub span_id: String,
    /// `None` for roots: OTLP encodes "no parent" as empty (some senders use all zeroes).
    pub parent_span_id: Option<String>,
    pub trace_state: String,
    pub name: String,
    /// `proto::tonic::trace::v1::span::SpanKind as i32`.
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Attributes,
    pub events: Vec<CapturedEvent>,
    pub links: Vec<CapturedLink>,
    /// `proto::tonic::trace::v1::status::StatusCode as i32`; 0 (unset) when no status was sent.
    pub status_code: i32,
    pub status_message: String,
    pub resource: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub transport: Transport,
}

impl CapturedSpan {
    /// First event with this name; exceptions arrive as an event named `exception`.
    pub fn event(&self, name: &str) -> Option<&CapturedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nano.saturating_sub(self.start_unix_nano))
    }
}

attribute_accessors!(CapturedSpan);
resource_accessors!(CapturedSpan);

#[derive(Debug, Clone, PartialEq)]
pub struct CapturedEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Attributes,
}

attribute_accessors!(CapturedEvent);

#[derive(Debug, Clone, PartialEq)]
pub struct CapturedLink {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Attributes,
}

attribute_accessors!(CapturedLink);

/// One log record, denormalised with its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedLog {
    /// `None` when the record was emitted outside a span (empty or all-zero id on the wire).
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    /// `proto::tonic::logs::v1::SeverityNumber as i32`.
    pub severity_number: i32,
    pub severity_text: String,
    /// String bodies verbatim; structured bodies as compact JSON so `contains` checks still work.
    pub body: Option<String>,
    /// The body as sent, for tests that care about structure.
    pub body_value: Option<AttrValue>,
    pub attributes: Attributes,
    pub event_name: Option<String>,
    pub flags: u32,
    pub resource: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub transport: Transport,
}

attribute_accessors!(CapturedLog);
resource_accessors!(CapturedLog);

/// Aggregation temporality; a wrong temporality silently breaks rate queries in the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Unspecified,
    Delta,
    Cumulative,
}

impl From<i32> for Temporality {
    fn from(value: i32) -> Self {
        match value {
            1 => Temporality::Delta,
            2 => Temporality::Cumulative,
            _ => Temporality::Unspecified,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Sum {
        monotonic: bool,
        temporality: Temporality,
    },
    Histogram {
        temporality: Temporality,
    },
    ExponentialHistogram {
        temporality: Temporality,
    },
    Summary,
    /// The metric carried no data field at all.
    Empty,
}

/// One metric from one export request; repeated exports of the same instrument appear as
/// separate entries in arrival order (cumulative sums: the last one is the current total).
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedMetric {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: MetricKind,
    pub points: Vec<CapturedPoint>,
    pub resource: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub transport: Transport,
}

resource_accessors!(CapturedMetric);

#[derive(Debug, Clone, PartialEq)]
pub struct CapturedPoint {
    pub attributes: Attributes,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: PointValue,
    pub exemplars_count: usize,
    pub flags: u32,
}

attribute_accessors!(CapturedPoint);

#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    Int(i64),
    Double(f64),
    Histogram {
        count: u64,
        sum: Option<f64>,
        bucket_counts: Vec<u64>,
        explicit_bounds: Vec<f64>,
        min: Option<f64>,
        max: Option<f64>,
    },
    ExponentialHistogram {
        count: u64,
        sum: Option<f64>,
        scale: i32,
        zero_count: u64,
        min: Option<f64>,
        max: Option<f64>,
    },
    Summary {
        count: u64,
        sum: f64,
        /// `(quantile, value)` pairs.
        quantiles: Vec<(f64, f64)>,
    },
    /// A number point with neither `asInt` nor `asDouble` set.
    Empty,
}

impl PointValue {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PointValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PointValue::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// Either number representation, for tests that do not care which one the SDK picked.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            PointValue::Int(i) => Some(*i as f64),
            PointValue::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// Observation count of any histogram or summary point.
    pub fn count(&self) -> Option<u64> {
        match self {
            PointValue::Histogram { count, .. }
            | PointValue::ExponentialHistogram { count, .. }
            | PointValue::Summary { count, .. } => Some(*count),
            _ => None,
        }
    }
}

/// A request body exactly as it arrived: for gRPC the length-prefixed frames, for HTTP the body
/// bytes (JSON or protobuf) before any decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    pub signal: Signal,
    pub transport: Transport,
    pub body: Bytes,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalCounts {
    pub traces: u64,
    pub metrics: u64,
    pub logs: u64,
}

impl SignalCounts {
    pub fn total(&self) -> u64 {
        self.traces + self.metrics + self.logs
    }

    pub(super) fn bump(&mut self, signal: Signal) {
        match signal {
            Signal::Traces => self.traces += 1,
            Signal::Metrics => self.metrics += 1,
            Signal::Logs => self.logs += 1,
        }
    }
}

/// Accepted export requests per transport; refused ones (reject mode, undecodable bodies) are
/// not counted here so a count proves data really got through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub grpc: SignalCounts,
    pub http: SignalCounts,
}

impl RequestCounts {
    pub fn traces(&self) -> u64 {
        self.grpc.traces + self.http.traces
    }

    pub fn metrics(&self) -> u64 {
        self.grpc.metrics + self.http.metrics
    }

    pub fn logs(&self) -> u64 {
        self.grpc.logs + self.http.logs
    }

    pub fn total(&self) -> u64 {
        self.grpc.total() + self.http.total()
    }

    pub(super) fn bump(&mut self, transport: Transport, signal: Signal) {
        match transport {
            Transport::Grpc => self.grpc.bump(signal),
            Transport::Http => self.http.bump(signal),
        }
    }
}

/// Items in accepted requests; maintained even when nothing is retained so the sink can report
/// throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    pub spans: u64,
    pub log_records: u64,
    pub metric_points: u64,
}

/// One accepted export request, decoded, as the [`Tap`] sees it.
#[derive(Debug, Clone, Copy)]
pub enum Export<'a> {
    Traces(&'a ExportTraceServiceRequest),
    Metrics(&'a ExportMetricsServiceRequest),
    Logs(&'a ExportLogsServiceRequest),
}

/// Called with every accepted request, retained or not: lets the benchmark sink measure what
/// arrives (bytes, series, traces) without the receiver keeping it.
#[derive(Clone)]
pub struct Tap(pub Arc<dyn Fn(Export<'_>) + Send + Sync>);

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tap(..)")
    }
}

#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// `false` keeps only counters: no decoded requests, flattened views or raw bytes. Used by the
    /// benchmark sink, whose memory would otherwise grow with every request.
    pub retain: bool,
    /// Threads of the receiver's private runtime. One is plenty for tests; the benchmark sink uses
    /// more so decoding never becomes the bottleneck it is measuring around.
    pub worker_threads: usize,
    pub tap: Option<Tap>,
    /// What the receiver does wrong from the start (see [`CaptureReceiver::misbehave`]).
    pub misbehaviour: Misbehaviour,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        ReceiverOptions {
            grpc_addr: loopback,
            http_addr: loopback,
            retain: true,
            worker_threads: 1,
            tap: None,
            misbehaviour: Misbehaviour::default(),
        }
    }
}

/// Returned by the `wait_*` helpers. `Debug` prints the same report as `Display` because tests
/// typically `.unwrap()`/`.expect()` the result, and an escaped one-line struct dump would hide
/// the list of what arrived.
#[derive(Clone)]
pub struct WaitError {
    pub(super) waited_for: String,
    pub(super) timeout: Duration,
    pub(super) received: String,
}

impl WaitError {
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The receiver's summary at the moment the wait gave up.
    pub fn received(&self) -> &str {
        &self.received
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}\n{}",
            self.timeout, self.waited_for, self.received
        )
    }
}

impl fmt::Debug for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for WaitError {}
