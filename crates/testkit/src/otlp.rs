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
//!
//! Here: the handle ([`CaptureReceiver`]) and the state its servers share. Beside it: `model`
//! (what tests read), `over_grpc` and `over_http` (the two transports), `flatten` (requests to
//! the flat views), `report` (what a timeout prints), `misbehave` (refusals and delays on
//! demand), `black_hole` and `server_thread`.

use std::fmt;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use vidscope_telemetry::export_request::{self, ScopedItems};

use crate::seen::{Noted, SeenLog};
use flatten::{flatten_logs, flatten_metrics, flatten_spans};
use over_grpc::serve_grpc;
use over_http::serve_http;
use report::summarize;

mod black_hole;
mod flatten;
mod misbehave;
mod model;
mod over_grpc;
mod over_http;
mod report;
mod server_thread;

pub use black_hole::BlackHole;
pub use misbehave::{Attempt, Misbehaviour, PartialReject, Refusal, RetryAfter};
use misbehave::{Plan, Refused};
use server_thread::ServerThread;

pub use model::{
    AttrValue, Attributes, CapturedEvent, CapturedLink, CapturedLog, CapturedMetric, CapturedPoint,
    CapturedSpan, Export, ItemCounts, MetricKind, PointValue, RawRequest, ReceiverOptions,
    RequestCounts, Signal, SignalCounts, Tap, Temporality, Transport, WaitError,
};

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
