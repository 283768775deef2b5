//! An OTLP receiver that stands in for the OpenTelemetry Collector in integration tests.
//!
//! Telemetry tests need to see what an exporter really put on the wire, over the transport it was
//! configured for, without running a collector container. [`CaptureReceiver`] listens for
//! OTLP/gRPC and OTLP/HTTP (protobuf and JSON) on loopback ports, keeps every request, and offers
//! flattened views (hex ids, owned attribute values) so assertions stay short. Exporters batch and
//! flush on timers, so the `wait_*` helpers poll until a condition holds and, on timeout, report
//! everything that *did* arrive so a failing test explains itself.
//!
//! The same servers back the `otlp-sink` benchmark binary, started with
//! [`ReceiverOptions::retain`] set to `false` so only counters are kept.

use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use vidscope_telemetry::export_request::{self, ScopedItems};

use crate::seen::{Noted, SeenLog};

mod black_hole;
mod misbehave;
mod server_thread;

pub use black_hole::BlackHole;
pub use misbehave::{Attempt, Misbehaviour, PartialReject, Refusal, RetryAfter};
use misbehave::{GrpcGzip, Plan, Refused};
use server_thread::ServerThread;

/// Re-exported so tests can build requests and compare enum values (`SpanKind`, `SeverityNumber`)
/// without each crate pinning its own `opentelemetry-proto`.
pub use opentelemetry_proto as proto;

/// Exporters batch aggressively; the collector's own default limits are far above the 2 MiB/4 MiB
/// defaults of axum and tonic, and a test double that refuses a large batch would report a bug
/// that does not exist in production.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Fallback poll period for the `wait_*` helpers; arrivals also wake waiters immediately, the
/// timer only matters for conditions that depend on something other than new requests.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long in-flight requests may finish after a stop before their connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Keeps the list of refused requests bounded when a misconfigured exporter retries in a loop.
const MAX_PROBLEMS: usize = 100;

/// Entries per signal shown in a timeout report; more would bury the interesting part.
const SUMMARY_ENTRIES: usize = 25;

/// Long log bodies and attribute values are cut so a timeout report stays readable.
const SUMMARY_TEXT_CHARS: usize = 100;

// ---------------------------------------------------------------------------------------------
// Public data model
// ---------------------------------------------------------------------------------------------

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

    fn bump(&mut self, signal: Signal) {
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

    fn bump(&mut self, transport: Transport, signal: Signal) {
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
    waited_for: String,
    timeout: Duration,
    received: String,
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

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Store {
    spans: Vec<CapturedSpan>,
    logs: Vec<CapturedLog>,
    metrics: Vec<CapturedMetric>,
    trace_requests: Vec<ExportTraceServiceRequest>,
    metrics_requests: Vec<ExportMetricsServiceRequest>,
    logs_requests: Vec<ExportLogsServiceRequest>,
    raw: Vec<RawRequest>,
    requests: RequestCounts,
    items: ItemCounts,
    rejected: u64,
    problems: Vec<String>,
    attempts: Vec<Attempt>,
}

struct Shared {
    retain: bool,
    tap: Option<Tap>,
    reject: AtomicBool,
    plan: Mutex<Plan>,
    store: Mutex<Store>,
    /// Set when `VIDSCOPE_TELEMETRY_SEEN_DIR` is: the registry check's record of what arrived.
    /// Not part of `Store`, so [`CaptureReceiver::clear`] cannot erase what a test emitted.
    seen: Option<Mutex<SeenLog>>,
    /// Woken on every change so waiters re-check without a polling delay.
    changed: Notify,
}

impl Shared {
    /// A panicking test thread must not turn every later query into a poison panic that hides
    /// the original failure, so poisoning is ignored; the store has no multi-step invariants.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ingest<R: OtlpRequest>(&self, transport: Transport, request: R) {
        if let Some(tap) = &self.tap {
            (tap.0)(request.export());
        }
        if let Some(seen) = &self.seen {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.note(&request) {
                seen.write();
            }
        }
        {
            let mut store = self.store();
            store.requests.bump(transport, R::SIGNAL);
            let items = request.item_count();
            match R::SIGNAL {
                Signal::Traces => store.items.spans += items,
                Signal::Metrics => store.items.metric_points += items,
                Signal::Logs => store.items.log_records += items,
            }
            if self.retain {
                request.keep(&mut store, transport);
            }
        }
        self.changed.notify_waiters();
    }

    fn record_raw(&self, signal: Signal, transport: Transport, body: Bytes) {
        if self.retain {
            self.store().raw.push(RawRequest {
                signal,
                transport,
                body,
            });
        }
    }

    /// Counts the request as rejected when reject mode is on, so exporter retry tests can see the
    /// attempts that were turned away.
    fn reject_now(&self) -> bool {
        if !self.reject.load(Ordering::SeqCst) {
            return false;
        }
        self.store().rejected += 1;
        self.changed.notify_waiters();
        true
    }

    /// Waits as long as the misbehaviour in force says before a request is looked at: a
    /// collector that is slow to answer.
    async fn slow_down(&self) {
        let delay = self
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .misbehaviour
            .delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    /// Whether the misbehaviour in force refuses this request; records the attempt when it
    /// does (accepted ones are recorded by [`Shared::accepted`]).
    fn refusal(&self, signal: Signal, transport: Transport, gzip: bool) -> Option<Refused> {
        let refused = self
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refusal(signal, gzip)?;
        self.note_attempt(signal, transport, gzip, Some(refused.name(transport)));
        Some(refused)
    }

    /// Records an accepted request's attempt and returns its answer: the partial success the
    /// misbehaviour asks for, or a plain success.
    fn accepted<R: OtlpRequest>(&self, transport: Transport, gzip: bool) -> R::Response {
        self.note_attempt(R::SIGNAL, transport, gzip, None);
        let plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        R::response(plan.misbehaviour.partial_success.as_ref())
    }

    fn note_attempt(
        &self,
        signal: Signal,
        transport: Transport,
        gzip: bool,
        refused: Option<String>,
    ) {
        if !self.retain {
            return;
        }
        self.store().attempts.push(Attempt {
            signal,
            transport,
            at: std::time::Instant::now(),
            refused,
            gzip,
        });
        self.changed.notify_waiters();
    }

    fn note_problem(&self, problem: String) {
        {
            let mut store = self.store();
            if store.problems.len() < MAX_PROBLEMS {
                store.problems.push(problem);
            }
        }
        self.changed.notify_waiters();
    }
}

/// What the servers need to know about each export request type, so the three signals share one
/// code path per transport.
trait OtlpRequest:
    prost::Message
    + Default
    + serde::Serialize
    + serde::de::DeserializeOwned
    + fmt::Debug
    + Send
    + Sync
    + 'static
    + ScopedItems<Item: Noted>
{
    const SIGNAL: Signal;
    /// The top-level field name in OTLP/JSON.
    const JSON_ROOT: &'static str;
    type Response: prost::Message + Default + serde::Serialize + Send + 'static;

    /// Spans, log records or metric data points.
    fn item_count(&self) -> u64 {
        self.groups().map(|g| g.items.len() as u64).sum()
    }
    fn export(&self) -> Export<'_>;
    /// The answer: a plain success, or one with this partial success.
    fn response(partial: Option<&PartialReject>) -> Self::Response;
    fn keep(self, store: &mut Store, transport: Transport);
}

impl OtlpRequest for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    const JSON_ROOT: &'static str = "resourceSpans";
    type Response = ExportTraceServiceResponse;

    fn response(partial: Option<&PartialReject>) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: partial.map(|p| ExportTracePartialSuccess {
                rejected_spans: p.rejected,
                error_message: p.message.clone(),
            }),
        }
    }

    fn export(&self) -> Export<'_> {
        Export::Traces(self)
    }

    fn keep(self, store: &mut Store, transport: Transport) {
        flatten_spans(&self, transport, &mut store.spans);
        store.trace_requests.push(self);
    }
}

impl OtlpRequest for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    const JSON_ROOT: &'static str = "resourceMetrics";
    type Response = ExportMetricsServiceResponse;

    fn response(partial: Option<&PartialReject>) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: partial.map(|p| ExportMetricsPartialSuccess {
                rejected_data_points: p.rejected,
                error_message: p.message.clone(),
            }),
        }
    }

    fn item_count(&self) -> u64 {
        self.groups()
            .flat_map(|g| g.items)
            .map(|m| export_request::points(m).len() as u64)
            .sum()
    }

    fn export(&self) -> Export<'_> {
        Export::Metrics(self)
    }

    fn keep(self, store: &mut Store, transport: Transport) {
        flatten_metrics(&self, transport, &mut store.metrics);
        store.metrics_requests.push(self);
    }
}

impl OtlpRequest for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    const JSON_ROOT: &'static str = "resourceLogs";
    type Response = ExportLogsServiceResponse;

    fn response(partial: Option<&PartialReject>) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: partial.map(|p| ExportLogsPartialSuccess {
                rejected_log_records: p.rejected,
                error_message: p.message.clone(),
            }),
        }
    }

    fn export(&self) -> Export<'_> {
        Export::Logs(self)
    }

    fn keep(self, store: &mut Store, transport: Transport) {
        flatten_logs(&self, transport, &mut store.logs);
        store.logs_requests.push(self);
    }
}

// ---------------------------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------------------------

struct Handle {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    /// The server thread only holds `Shared`, never the handle, so this is dropped (and the
    /// servers stop) when the last test clone goes away: the ports are released without an
    /// explicit shutdown call.
    server: ServerThread,
}

/// Cheap-to-clone handle to a running receiver. The servers stop when the last clone is dropped
/// or [`shutdown`](Self::shutdown) is called.
///
/// The servers run on their own thread and runtime rather than the caller's: SDK calls such as
/// `force_flush()` block the calling thread until the exporter got a response, and under the
/// default current-thread `#[tokio::test]` runtime a receiver sharing that thread could never
/// answer, so the test would hang until the exporter timed out.
#[derive(Clone)]
pub struct CaptureReceiver {
    inner: Arc<Handle>,
}

impl fmt::Debug for CaptureReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReceiver")
            .field("grpc", &self.inner.grpc_addr)
            .field("http", &self.inner.http_addr)
            .field("retain", &self.inner.shared.retain)
            .finish()
    }
}

impl CaptureReceiver {
    /// Starts on ephemeral loopback ports, so parallel tests never collide.
    ///
    /// # Panics
    /// If loopback ports cannot be bound; a test cannot do anything useful in that environment.
    pub async fn start() -> CaptureReceiver {
        match Self::start_with(ReceiverOptions::default()).await {
            Ok(receiver) => receiver,
            Err(err) => panic!("CaptureReceiver::start: cannot bind loopback listeners: {err}"),
        }
    }

    /// Binds both listeners before returning, so the endpoints are connectable immediately and an
    /// exporter started next cannot race the server.
    pub async fn start_with(options: ReceiverOptions) -> std::io::Result<CaptureReceiver> {
        let grpc_listener = bind(options.grpc_addr, "OTLP/gRPC")?;
        let http_listener = bind(options.http_addr, "OTLP/HTTP")?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let shared = Arc::new(Shared {
            retain: options.retain,
            tap: options.tap,
            reject: AtomicBool::new(false),
            plan: Mutex::new(Plan::new(options.misbehaviour)),
            store: Mutex::new(Store::default()),
            seen: SeenLog::from_env().map(Mutex::new),
            changed: Notify::new(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads.max(1))
            .thread_name("otlp-capture-worker")
            .enable_all()
            .build()?;
        let server_shared = Arc::clone(&shared);
        let server = ServerThread::spawn("otlp-capture", runtime, move |stop| {
            run_servers(grpc_listener, http_listener, server_shared, stop)
        })?;

        Ok(CaptureReceiver {
            inner: Arc::new(Handle {
                shared,
                grpc_addr,
                http_addr,
                server,
            }),
        })
    }

    /// Stops both servers for every clone of this handle and waits until the ports are released.
    /// In-flight requests get a short grace period so an exporter's final flush is not cut
    /// mid-request.
    pub async fn shutdown(&self) {
        self.inner.server.shutdown().await;
    }

    /// `http://127.0.0.1:PORT`, the form tonic-based exporters expect.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.inner.grpc_addr)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.inner.grpc_addr
    }

    /// `http://127.0.0.1:PORT` without a path, the form `OTEL_EXPORTER_OTLP_ENDPOINT` takes.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.inner.http_addr)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.inner.http_addr
    }

    /// Full per-signal URL (`.../v1/traces`), which programmatic OTLP/HTTP exporter builders need
    /// because they use the configured endpoint verbatim.
    pub fn http_signal_endpoint(&self, signal: Signal) -> String {
        format!("http://{}{}", self.inner.http_addr, signal.http_path())
    }

    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.shared().store().spans.clone()
    }

    pub fn logs(&self) -> Vec<CapturedLog> {
        self.shared().store().logs.clone()
    }

    pub fn metrics(&self) -> Vec<CapturedMetric> {
        self.shared().store().metrics.clone()
    }

    /// Trace ids are compared case-insensitively because some tools print them upper-case.
    pub fn spans_in_trace(&self, trace_id: &str) -> Vec<CapturedSpan> {
        self.spans_where(|s| s.trace_id.eq_ignore_ascii_case(trace_id))
    }

    pub fn spans_named(&self, name: &str) -> Vec<CapturedSpan> {
        self.spans_where(|s| s.name == name)
    }

    pub fn spans_where(&self, pred: impl Fn(&CapturedSpan) -> bool) -> Vec<CapturedSpan> {
        let store = self.shared().store();
        store.spans.iter().filter(|s| pred(s)).cloned().collect()
    }

    pub fn logs_in_trace(&self, trace_id: &str) -> Vec<CapturedLog> {
        self.logs_where(|l| {
            l.trace_id
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(trace_id))
        })
    }

    pub fn logs_where(&self, pred: impl Fn(&CapturedLog) -> bool) -> Vec<CapturedLog> {
        let store = self.shared().store();
        store.logs.iter().filter(|l| pred(l)).cloned().collect()
    }

    pub fn metrics_named(&self, name: &str) -> Vec<CapturedMetric> {
        let store = self.shared().store();
        store
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .cloned()
            .collect()
    }

    /// All data points of every export of metric `name`, in arrival order. Metadata (unit, kind)
    /// is on [`metrics_named`](Self::metrics_named).
    pub fn metric_points(&self, name: &str) -> Vec<CapturedPoint> {
        let store = self.shared().store();
        store
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .flat_map(|m| m.points.iter().cloned())
            .collect()
    }

    /// Decoded requests as received, for assertions the flattened views do not cover.
    pub fn trace_requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.shared().store().trace_requests.clone()
    }

    pub fn metrics_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.shared().store().metrics_requests.clone()
    }

    pub fn logs_requests(&self) -> Vec<ExportLogsServiceRequest> {
        self.shared().store().logs_requests.clone()
    }

    /// Bodies of every request that reached a handler, including rejected and undecodable ones:
    /// a secret in a refused request still left the process.
    pub fn raw_requests(&self) -> Vec<RawRequest> {
        self.shared().store().raw.clone()
    }

    /// Whether `needle` occurs anywhere in what was captured: the raw bodies as received, and
    /// renderings of every decoded request (protobuf re-encoding, OTLP/JSON, `Debug`). The
    /// renderings matter because the wire form may hide a value (OTLP/JSON escapes quotes and may
    /// escape non-ASCII) and because ids are binary on the wire but hex in the JSON rendering, so
    /// a leaked trace id can be searched for the way it appears in logs.
    ///
    /// An empty needle is contained in everything and returns `true`, so a leak check against an
    /// accidentally empty secret fails loudly instead of passing vacuously.
    pub fn raw_contains(&self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return true;
        }
        let store = self.shared().store();
        if store.raw.iter().any(|r| contains(&r.body, needle)) {
            return true;
        }
        store
            .trace_requests
            .iter()
            .any(|r| rendering_contains(r, needle))
            || store
                .metrics_requests
                .iter()
                .any(|r| rendering_contains(r, needle))
            || store
                .logs_requests
                .iter()
                .any(|r| rendering_contains(r, needle))
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.shared().store().requests
    }

    pub fn item_counts(&self) -> ItemCounts {
        self.shared().store().items
    }

    /// Requests turned away while [`set_reject`](Self::set_reject) was on.
    pub fn rejected_count(&self) -> u64 {
        self.shared().store().rejected
    }

    /// Requests refused for reasons other than reject mode (wrong content type, undecodable body,
    /// unknown path), with the reason; a silent exporter is usually explained here.
    pub fn problems(&self) -> Vec<String> {
        self.shared().store().problems.clone()
    }

    /// Simulates a collector outage: gRPC answers `UNAVAILABLE` and HTTP answers 503, both of
    /// which OTLP exporters treat as retryable.
    pub fn set_reject(&self, reject: bool) {
        self.shared().reject.store(reject, Ordering::SeqCst);
    }

    /// Makes the receiver misbehave from now on (the default [`Misbehaviour`] behaves again),
    /// with the count of refused requests per signal started afresh.
    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        *self
            .shared()
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Plan::new(misbehaviour);
    }

    /// Every export request that reached a handler, refused or accepted, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared().store().attempts.clone()
    }

    /// Forgets everything received and resets all counters; reject mode is left as it is.
    pub fn clear(&self) {
        *self.shared().store() = Store::default();
        self.shared().changed.notify_waiters();
    }

    /// Waits for the first span (in arrival order) matching `pred`.
    pub async fn wait_for_span(
        &self,
        pred: impl Fn(&CapturedSpan) -> bool,
        timeout: Duration,
    ) -> Result<CapturedSpan, WaitError> {
        self.wait_for_value("a span matching the predicate", timeout, || {
            self.shared()
                .store()
                .spans
                .iter()
                .find(|s| pred(s))
                .cloned()
        })
        .await
    }

    /// Waits for the span named `name` in trace `trace_id`.
    pub async fn wait_for_span_in(
        &self,
        trace_id: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<CapturedSpan, WaitError> {
        self.wait_for_span(|s| s.trace_id == trace_id && s.name == name, timeout)
            .await
    }

    pub async fn wait_for_log(
        &self,
        pred: impl Fn(&CapturedLog) -> bool,
        timeout: Duration,
    ) -> Result<CapturedLog, WaitError> {
        self.wait_for_value("a log record matching the predicate", timeout, || {
            self.shared().store().logs.iter().find(|l| pred(l)).cloned()
        })
        .await
    }

    /// Waits for the first point of metric `name` matching `pred`. Periodic readers re-export
    /// cumulative values, so a predicate like `value >= 3` is usually what a test wants.
    pub async fn wait_for_metric_point(
        &self,
        name: &str,
        pred: impl Fn(&CapturedPoint) -> bool,
        timeout: Duration,
    ) -> Result<CapturedPoint, WaitError> {
        let waited_for = format!("a point of metric {name:?} matching the predicate");
        self.wait_for_value(&waited_for, timeout, || {
            let store = self.shared().store();
            store
                .metrics
                .iter()
                .filter(|m| m.name == name)
                .flat_map(|m| &m.points)
                .find(|p| pred(p))
                .cloned()
        })
        .await
    }

    /// Waits until `cond` holds; it is re-evaluated whenever something arrives (and every 25 ms).
    pub async fn wait_until(
        &self,
        cond: impl Fn(&CaptureReceiver) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.wait_for_value("the condition to hold", timeout, || {
            cond(self).then_some(())
        })
        .await
    }

    /// Human-readable account of everything received; the same text a [`WaitError`] carries, for
    /// use in custom assertion messages.
    pub fn summary(&self) -> String {
        let store = self.shared().store();
        summarize(&store, self.shared().retain)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    async fn wait_for_value<T>(
        &self,
        waited_for: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Result<T, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before probing, so an arrival between the probe and the sleep still
            // wakes us.
            let mut notified = pin!(self.shared().changed.notified());
            notified.as_mut().enable();
            if let Some(value) = probe() {
                return Ok(value);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(WaitError {
                    waited_for: waited_for.to_owned(),
                    timeout,
                    received: self.summary(),
                });
            }
            let wake = (now + POLL_INTERVAL).min(deadline);
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }
}

/// Binds with std so bind errors surface synchronously in the caller, before the server thread
/// exists.
fn bind(addr: SocketAddr, what: &str) -> std::io::Result<std::net::TcpListener> {
    let with_context = |err: std::io::Error| {
        std::io::Error::new(
            err.kind(),
            format!("binding {what} listener on {addr}: {err}"),
        )
    };
    let listener = std::net::TcpListener::bind(addr).map_err(with_context)?;
    listener.set_nonblocking(true).map_err(with_context)?;
    Ok(listener)
}

async fn run_servers(
    grpc_listener: std::net::TcpListener,
    http_listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let (grpc_listener, http_listener) = match (
        TcpListener::from_std(grpc_listener),
        TcpListener::from_std(http_listener),
    ) {
        (Ok(grpc), Ok(http)) => (grpc, http),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("OTLP capture receiver: cannot register listeners: {err}");
            return;
        }
    };
    let grpc = tokio::spawn(serve_grpc(grpc_listener, Arc::clone(&shared), stop.clone()));
    let http = tokio::spawn(serve_http(http_listener, shared, stop.clone()));
    stop_requested(stop).await;
    let drained = async {
        let _ = grpc.await;
        let _ = http.await;
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn rendering_contains<R: OtlpRequest>(request: &R, needle: &[u8]) -> bool {
    if contains(&request.encode_to_vec(), needle) {
        return true;
    }
    if serde_json::to_vec(request).is_ok_and(|json| contains(&json, needle)) {
        return true;
    }
    contains(format!("{request:?}").as_bytes(), needle)
}

async fn stop_requested(mut stop: watch::Receiver<bool>) {
    // An error means the handle is gone, which is also a reason to stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

// ---------------------------------------------------------------------------------------------
// OTLP/gRPC
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct GrpcReceiver {
    shared: Arc<Shared>,
}

impl GrpcReceiver {
    fn handle<R: OtlpRequest>(
        &self,
        request: tonic::Request<R>,
    ) -> Result<tonic::Response<R::Response>, tonic::Status> {
        if self.shared.reject_now() {
            return Err(tonic::Status::unavailable(
                "OTLP capture receiver is rejecting exports (set_reject(true))",
            ));
        }
        let gzip = request.extensions().get::<GrpcGzip>().is_some_and(|g| g.0);
        if let Some(refused) = self.shared.refusal(R::SIGNAL, Transport::Grpc, gzip) {
            return Err(refused.grpc());
        }
        self.shared.ingest(Transport::Grpc, request.into_inner());
        Ok(tonic::Response::new(
            self.shared.accepted::<R>(Transport::Grpc, gzip),
        ))
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.shared.slow_down().await;
        self.handle(request)
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.shared.slow_down().await;
        self.handle(request)
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.shared.slow_down().await;
        self.handle(request)
    }
}

/// Buffers each gRPC request body and records it before tonic decodes it, so the raw capture is
/// the bytes on the wire (unknown fields included) and also covers requests tonic then refuses.
#[derive(Clone)]
struct RecordRawBody<S> {
    inner: S,
    shared: Arc<Shared>,
    signal: Signal,
}

impl<S> Service<http::Request<tonic::body::Body>> for RecordRawBody<S>
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // tower contract: the instance that was polled ready must serve the call.
        let replacement = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, replacement);
        let shared = Arc::clone(&self.shared);
        let signal = self.signal;
        Box::pin(async move {
            if !shared.retain {
                let gzip = misbehave::grpc_gzip(request.headers(), None);
                let mut request = request;
                request.extensions_mut().insert(GrpcGzip(gzip));
                return inner.call(request).await;
            }
            let (mut parts, body) = request.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(status) => return Ok(status.into_http()),
            };
            let gzip = misbehave::grpc_gzip(&parts.headers, Some(&bytes));
            parts.extensions.insert(GrpcGzip(gzip));
            shared.record_raw(signal, Transport::Grpc, bytes.clone());
            let request =
                http::Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes)));
            inner.call(request).await
        })
    }
}

impl<S: NamedService> NamedService for RecordRawBody<S> {
    const NAME: &'static str = S::NAME;
}

async fn serve_grpc(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    use tonic::codec::CompressionEncoding::Gzip;
    let receiver = GrpcReceiver {
        shared: Arc::clone(&shared),
    };
    let traces = RecordRawBody {
        inner: TraceServiceServer::new(receiver.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .accept_compressed(Gzip)
            .send_compressed(Gzip),
        shared: Arc::clone(&shared),
        signal: Signal::Traces,
    };
    let metrics = RecordRawBody {
        inner: MetricsServiceServer::new(receiver.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .accept_compressed(Gzip)
            .send_compressed(Gzip),
        shared: Arc::clone(&shared),
        signal: Signal::Metrics,
    };
    let logs = RecordRawBody {
        inner: LogsServiceServer::new(receiver)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .accept_compressed(Gzip)
            .send_compressed(Gzip),
        shared,
        signal: Signal::Logs,
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = tonic::transport::Server::builder()
        .add_service(traces)
        .add_service(metrics)
        .add_service(logs)
        .serve_with_incoming_shutdown(incoming, stop_requested(stop))
        .await;
    if let Err(err) = result {
        eprintln!("OTLP capture receiver: gRPC server stopped: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum BodyEncoding {
    Protobuf,
    Json,
}

async fn serve_http(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let app = axum::Router::new()
        .route("/v1/traces", post(http_export::<ExportTraceServiceRequest>))
        .route(
            "/v1/metrics",
            post(http_export::<ExportMetricsServiceRequest>),
        )
        .route("/v1/logs", post(http_export::<ExportLogsServiceRequest>))
        .fallback(http_unknown_route)
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(shared);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(stop_requested(stop))
        .await;
    if let Err(err) = result {
        eprintln!("OTLP capture receiver: HTTP server stopped: {err}");
    }
}

async fn http_export<R: OtlpRequest>(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.slow_down().await;
    let path = R::SIGNAL.http_path();
    let refuse = |status: StatusCode, message: String| {
        shared.note_problem(format!("HTTP POST {path}: {status}: {message}"));
        text_response(status, message)
    };
    // Kept decompressed, so a leak check searches what the exporter sent.
    let (body, gzip) = match content_coding(&headers, body) {
        Ok(decoded) => decoded,
        Err((status, message, body)) => {
            shared.record_raw(R::SIGNAL, Transport::Http, body);
            return refuse(status, message);
        }
    };
    shared.record_raw(R::SIGNAL, Transport::Http, body.clone());
    if shared.reject_now() {
        return text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "OTLP capture receiver is rejecting exports (set_reject(true))".to_owned(),
        );
    }
    if let Some(refused) = shared.refusal(R::SIGNAL, Transport::Http, gzip) {
        return refused.http();
    }

    let encoding = match body_encoding(&headers) {
        Ok(encoding) => encoding,
        Err(message) => return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, message),
    };
    let decoded = match encoding {
        BodyEncoding::Protobuf => R::decode(body)
            .map_err(|err| format!("body is not a valid protobuf {}: {err}", type_name::<R>())),
        BodyEncoding::Json => decode_json::<R>(&body),
    };
    let request = match decoded {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    shared.ingest(Transport::Http, request);

    let response = shared.accepted::<R>(Transport::Http, gzip);
    match encoding {
        BodyEncoding::Protobuf => (
            [(CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        BodyEncoding::Json => match serde_json::to_vec(&response) {
            Ok(json) => ([(CONTENT_TYPE, "application/json")], json).into_response(),
            Err(err) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the JSON response failed: {err}"),
            ),
        },
    }
}

/// The body without its `Content-Encoding` (none, `identity` or `gzip`), and whether it was
/// gzipped; a refusal, with the body as received, for any other coding or a false gzip.
#[allow(clippy::result_large_err, reason = "a test double's refusal path")]
fn content_coding(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Bytes, bool), (StatusCode, String, Bytes)> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok((body, false));
    };
    let value = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    if value.eq_ignore_ascii_case("identity") {
        Ok((body, false))
    } else if value.eq_ignore_ascii_case("gzip") {
        match misbehave::gunzip(&body) {
            Ok(inflated) => Ok((inflated, true)),
            Err(message) => Err((StatusCode::BAD_REQUEST, message, body)),
        }
    } else {
        Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Encoding {value:?}; the capture receiver accepts gzip and \
                 uncompressed bodies"
            ),
            body,
        ))
    }
}

async fn http_unknown_route(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    let message = format!(
        "no OTLP route for {method} {path}; this receiver serves POST /v1/traces, /v1/metrics \
         and /v1/logs (exporters given a signal-specific endpoint need the full path)",
        path = uri.path()
    );
    shared.note_problem(format!("HTTP {method} {}: 404", uri.path()));
    text_response(StatusCode::NOT_FOUND, message)
}

fn text_response(status: StatusCode, message: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn body_encoding(headers: &HeaderMap) -> Result<BodyEncoding, String> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(
            "missing Content-Type; OTLP/HTTP requires application/x-protobuf or \
                    application/json"
                .to_owned(),
        );
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let media_type = value.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/x-protobuf")
        || media_type.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(BodyEncoding::Protobuf)
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Ok(BodyEncoding::Json)
    } else {
        Err(format!(
            "unsupported Content-Type {value:?}; OTLP/HTTP requires application/x-protobuf or \
             application/json"
        ))
    }
}

fn decode_json<R: OtlpRequest>(body: &[u8]) -> Result<R, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not valid JSON: {err}"))?;
    // proto3 JSON lets senders omit empty repeated fields, but the generated serde impl of the
    // top-level request insists on it; an empty export (`{}`) is legal and must not be a 400.
    if let Some(object) = value.as_object_mut() {
        object
            .entry(R::JSON_ROOT)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_value(value)
        .map_err(|err| format!("body is not a valid OTLP/JSON {}: {err}", type_name::<R>()))
}

fn type_name<R>() -> &'static str {
    let full = std::any::type_name::<R>();
    full.rsplit("::").next().unwrap_or(full)
}

// ---------------------------------------------------------------------------------------------
// Flattening
// ---------------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// OTLP uses both "empty" and "all zeroes" for an absent id depending on the SDK.
fn optional_id(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(|b| *b == 0) {
        None
    } else {
        Some(hex(bytes))
    }
}

fn attributes(kvs: &[KeyValue]) -> Attributes {
    kvs.iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or(AttrValue::Empty, AttrValue::from);
            (kv.key.clone(), value)
        })
        .collect()
}

fn resource_attributes(resource: Option<&Resource>) -> Attributes {
    resource
        .map(|r| attributes(&r.attributes))
        .unwrap_or_default()
}

fn scope_parts(scope: Option<&InstrumentationScope>) -> (String, String) {
    scope
        .map(|s| (s.name.clone(), s.version.clone()))
        .unwrap_or_default()
}

fn flatten_spans(
    request: &ExportTraceServiceRequest,
    transport: Transport,
    out: &mut Vec<CapturedSpan>,
) {
    for resource_spans in &request.resource_spans {
        let resource = resource_attributes(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            let (scope_name, scope_version) = scope_parts(scope_spans.scope.as_ref());
            for span in &scope_spans.spans {
                let status = span.status.as_ref();
                out.push(CapturedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: optional_id(&span.parent_span_id),
                    trace_state: span.trace_state.clone(),
                    name: span.name.clone(),
                    kind: span.kind,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    events: span
                        .events
                        .iter()
                        .map(|event| CapturedEvent {
                            name: event.name.clone(),
                            time_unix_nano: event.time_unix_nano,
                            attributes: attributes(&event.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|link| CapturedLink {
                            trace_id: hex(&link.trace_id),
                            span_id: hex(&link.span_id),
                            attributes: attributes(&link.attributes),
                        })
                        .collect(),
                    status_code: status.map_or(0, |s| s.code),
                    status_message: status.map(|s| s.message.clone()).unwrap_or_default(),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    transport,
                });
            }
        }
    }
}

fn flatten_logs(
    request: &ExportLogsServiceRequest,
    transport: Transport,
    out: &mut Vec<CapturedLog>,
) {
    for resource_logs in &request.resource_logs {
        let resource = resource_attributes(resource_logs.resource.as_ref());
        for scope_logs in &resource_logs.scope_logs {
            let (scope_name, scope_version) = scope_parts(scope_logs.scope.as_ref());
            for record in &scope_logs.log_records {
                let body_value = record
                    .body
                    .as_ref()
                    .map(AttrValue::from)
                    .filter(|v| *v != AttrValue::Empty);
                let body = body_value.as_ref().map(|v| match v {
                    AttrValue::Str(s) => s.clone(),
                    other => other.to_json().to_string(),
                });
                out.push(CapturedLog {
                    trace_id: optional_id(&record.trace_id),
                    span_id: optional_id(&record.span_id),
                    time_unix_nano: record.time_unix_nano,
                    observed_time_unix_nano: record.observed_time_unix_nano,
                    severity_number: record.severity_number,
                    severity_text: record.severity_text.clone(),
                    body,
                    body_value,
                    attributes: attributes(&record.attributes),
                    event_name: Some(record.event_name.clone()).filter(|n| !n.is_empty()),
                    flags: record.flags,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    transport,
                });
            }
        }
    }
}

fn flatten_metrics(
    request: &ExportMetricsServiceRequest,
    transport: Transport,
    out: &mut Vec<CapturedMetric>,
) {
    for resource_metrics in &request.resource_metrics {
        let resource = resource_attributes(resource_metrics.resource.as_ref());
        for scope_metrics in &resource_metrics.scope_metrics {
            let (scope_name, scope_version) = scope_parts(scope_metrics.scope.as_ref());
            for metric in &scope_metrics.metrics {
                let (kind, points) = match &metric.data {
                    None => (MetricKind::Empty, Vec::new()),
                    Some(metric::Data::Gauge(gauge)) => (
                        MetricKind::Gauge,
                        gauge.data_points.iter().map(number_point).collect(),
                    ),
                    Some(metric::Data::Sum(sum)) => (
                        MetricKind::Sum {
                            monotonic: sum.is_monotonic,
                            temporality: sum.aggregation_temporality.into(),
                        },
                        sum.data_points.iter().map(number_point).collect(),
                    ),
                    Some(metric::Data::Histogram(histogram)) => (
                        MetricKind::Histogram {
                            temporality: histogram.aggregation_temporality.into(),
                        },
                        histogram.data_points.iter().map(histogram_point).collect(),
                    ),
                    Some(metric::Data::ExponentialHistogram(histogram)) => (
                        MetricKind::ExponentialHistogram {
                            temporality: histogram.aggregation_temporality.into(),
                        },
                        histogram
                            .data_points
                            .iter()
                            .map(exponential_histogram_point)
                            .collect(),
                    ),
                    Some(metric::Data::Summary(summary)) => (
                        MetricKind::Summary,
                        summary.data_points.iter().map(summary_point).collect(),
                    ),
                };
                out.push(CapturedMetric {
                    name: metric.name.clone(),
                    description: metric.description.clone(),
                    unit: metric.unit.clone(),
                    kind,
                    points,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    transport,
                });
            }
        }
    }
}

fn number_point(point: &NumberDataPoint) -> CapturedPoint {
    CapturedPoint {
        attributes: attributes(&point.attributes),
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        value: match point.value {
            Some(number_data_point::Value::AsInt(i)) => PointValue::Int(i),
            Some(number_data_point::Value::AsDouble(d)) => PointValue::Double(d),
            None => PointValue::Empty,
        },
        exemplars_count: point.exemplars.len(),
        flags: point.flags,
    }
}

fn histogram_point(point: &HistogramDataPoint) -> CapturedPoint {
    CapturedPoint {
        attributes: attributes(&point.attributes),
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        value: PointValue::Histogram {
            count: point.count,
            sum: point.sum,
            bucket_counts: point.bucket_counts.clone(),
            explicit_bounds: point.explicit_bounds.clone(),
            min: point.min,
            max: point.max,
        },
        exemplars_count: point.exemplars.len(),
        flags: point.flags,
    }
}

fn exponential_histogram_point(point: &ExponentialHistogramDataPoint) -> CapturedPoint {
    CapturedPoint {
        attributes: attributes(&point.attributes),
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        value: PointValue::ExponentialHistogram {
            count: point.count,
            sum: point.sum,
            scale: point.scale,
            zero_count: point.zero_count,
            min: point.min,
            max: point.max,
        },
        exemplars_count: point.exemplars.len(),
        flags: point.flags,
    }
}

fn summary_point(point: &SummaryDataPoint) -> CapturedPoint {
    CapturedPoint {
        attributes: attributes(&point.attributes),
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        value: PointValue::Summary {
            count: point.count,
            sum: point.sum,
            quantiles: point
                .quantile_values
                .iter()
                .map(|q| (q.quantile, q.value))
                .collect(),
        },
        exemplars_count: 0,
        flags: point.flags,
    }
}

// ---------------------------------------------------------------------------------------------
// Timeout reports
// ---------------------------------------------------------------------------------------------

fn summarize(store: &Store, retain: bool) -> String {
    let mut out = String::new();
    let counts = store.requests;
    let _ = writeln!(
        out,
        "received {} span(s), {} log record(s), {} metric point(s) in {} accepted export \
         request(s) [grpc: traces={} metrics={} logs={}; http: traces={} metrics={} logs={}]; \
         {} rejected by set_reject",
        store.items.spans,
        store.items.log_records,
        store.items.metric_points,
        counts.total(),
        counts.grpc.traces,
        counts.grpc.metrics,
        counts.grpc.logs,
        counts.http.traces,
        counts.http.metrics,
        counts.http.logs,
        store.rejected,
    );
    if !retain {
        out.push_str("(receiver started with retain = false: contents were not kept)\n");
    }

    write_list(&mut out, "spans", &store.spans, |s| {
        format!(
            "{:?} trace={} span={} parent={} via {:?}",
            truncate(&s.name),
            s.trace_id,
            s.span_id,
            s.parent_span_id.as_deref().unwrap_or("-"),
            s.transport,
        )
    });
    write_list(&mut out, "metrics", &store.metrics, |m| {
        let values: Vec<String> = m.points.iter().take(5).map(point_summary).collect();
        format!(
            "{:?} {:?} {} point(s) [{}] via {:?}",
            truncate(&m.name),
            m.kind,
            m.points.len(),
            values.join(", "),
            m.transport,
        )
    });
    write_list(&mut out, "logs", &store.logs, |l| {
        format!(
            "[{}] {:?} trace={} via {:?}",
            if l.severity_text.is_empty() {
                l.severity_number.to_string()
            } else {
                l.severity_text.clone()
            },
            truncate(l.body.as_deref().unwrap_or("")),
            l.trace_id.as_deref().unwrap_or("-"),
            l.transport,
        )
    });
    write_list(&mut out, "refused requests", &store.problems, |p| {
        truncate(p)
    });
    out
}

fn write_list<T>(out: &mut String, title: &str, items: &[T], render: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    let skipped = items.len().saturating_sub(SUMMARY_ENTRIES);
    if skipped > 0 {
        let _ = writeln!(out, "  ... {skipped} earlier entries omitted");
    }
    for item in &items[skipped..] {
        let _ = writeln!(out, "  - {}", render(item));
    }
}

fn point_summary(point: &CapturedPoint) -> String {
    match &point.value {
        PointValue::Int(i) => i.to_string(),
        PointValue::Double(d) => d.to_string(),
        PointValue::Histogram { count, sum, .. }
        | PointValue::ExponentialHistogram { count, sum, .. } => match sum {
            Some(sum) => format!("count={count} sum={sum}"),
            None => format!("count={count}"),
        },
        PointValue::Summary { count, sum, .. } => format!("count={count} sum={sum}"),
        PointValue::Empty => "empty".to_owned(),
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(SUMMARY_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
