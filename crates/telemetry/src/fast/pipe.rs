//! The export pipeline shared by spans and logs: a bounded queue the request path pushes
//! finished spans and log records into without ever blocking, and a thread that batches them
//! and sends each batch, scrubbed of secrets, over gRPC, HTTP (protobuf or JSON) or into the
//! signal's file, with the file fallback, drop counting and rate-limited warnings of
//! [`ExportStats`].
//!
//! Written by hand instead of the SDK's batch processors and OTLP exporters because of the
//! performance budget (docs/DESIGN.md): with them every item is an SDK type (a log record built
//! through the log bridge, a span through the SDK's span), each batch is converted to
//! `opentelemetry-proto` types and regrouped by resource and scope through hash maps, and
//! prost encodes the four-level request by measuring every item again at each level. Here
//! protobuf is written straight from the recorded items ([`Payload::encode`], see `wire`);
//! JSON, the file and the fallback file go through the protobuf types, grouped by a linear
//! scan. Measured with callgrind on the benchmark route: see docs/performance.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_sdk::error::OTelSdkError;

use crate::config::{BatchSettings, Signal};
use crate::export::ExportStats;
use crate::file::JsonLinesFile;
use crate::otlp_transport::{OtlpClient, PartialSuccess};
use crate::redact::{REDACTED, Redactable, ValueKind, redact_value, scrub_string};

/// A scope and its items, in arrival order.
pub(crate) type Scoped<M> = (InstrumentationScope, Vec<M>);

/// What one signal sends.
pub(crate) trait Payload: Send + 'static {
    /// What the layer queues.
    type Item: Send + 'static;
    /// The protobuf message an item becomes (`Span`, `LogRecord`).
    type Proto: prost::Message;
    type Request: serde::Serialize + Default + prost::Message + crate::console::Lines;
    const SIGNAL: Signal;
    /// The batch (drained) as protobuf, grouped by scope.
    fn scopes(batch: &mut Vec<Self::Item>) -> Vec<Scoped<Self::Proto>>;
    /// Removes secrets; runs on the export thread.
    fn scrub(item: &mut Self::Proto);
    /// The export request for one resource (for JSON, the file and the fallback file).
    fn request(resource: Resource, scopes: Vec<Scoped<Self::Proto>>) -> Self::Request;
    /// The batch as the protobuf export request, scrubbed, written without building the
    /// protobuf types (see `wire`): the same bytes as encoding [`Payload::request`] after
    /// [`Payload::scrub`] (each payload has a unit and a property test that compare them).
    /// An error when the batch holds a value type the writer does not know.
    fn encode(
        resource: &Resource,
        batch: &[Self::Item],
    ) -> Result<Vec<u8>, crate::fast::wire::Unencodable>;
}

/// The protobuf body of a batch: written by hand, or, when the writer does not know a value
/// type in it, encoded by prost from the converted request (returned too, for the fallback
/// file). Either way the batch is sent whole.
pub(crate) fn protobuf<P: Payload>(
    resource: &Resource,
    batch: &mut Vec<P::Item>,
) -> (Vec<u8>, Option<P::Request>) {
    match P::encode(resource, batch) {
        Ok(body) => (body, None),
        Err(e) => {
            tracing::warn!(
                target: "vidscope_telemetry::wire",
                signal = P::SIGNAL.as_str(),
                error = %e,
                "encoding this batch with prost instead"
            );
            let request = P::request(resource.clone(), scrubbed_scopes::<P>(batch));
            (prost::Message::encode_to_vec(&request), Some(request))
        }
    }
}

/// The batch (drained) as protobuf grouped by scope, scrubbed.
pub(crate) fn scrubbed_scopes<P: Payload>(batch: &mut Vec<P::Item>) -> Vec<Scoped<P::Proto>> {
    let mut scopes = P::scopes(batch);
    scopes
        .iter_mut()
        .flat_map(|(_, items)| items)
        .for_each(P::scrub);
    scopes
}

/// What a batch's items are grouped by: the protobuf scope itself, or what it is made from
/// (cheaper to compare than a built scope, and built once per group).
pub(crate) trait ScopeKey {
    /// Whether `scope` is this key's.
    fn is(&self, scope: &InstrumentationScope) -> bool;
    fn into_scope(self) -> InstrumentationScope;
}

impl ScopeKey for InstrumentationScope {
    fn is(&self, scope: &InstrumentationScope) -> bool {
        self == scope
    }

    fn into_scope(self) -> InstrumentationScope {
        self
    }
}

/// The batch (drained) as [`Payload::scopes`] wants it: `split` gives each item's scope key and
/// protobuf form; scopes and their items keep their arrival order. A linear scan: a batch has
/// a handful of scopes.
pub(crate) fn group_by_scope<T, K: ScopeKey, M>(
    batch: &mut Vec<T>,
    split: impl Fn(T) -> (K, M),
) -> Vec<Scoped<M>> {
    let mut scopes: Vec<Scoped<M>> = Vec::new();
    for item in batch.drain(..) {
        let (key, proto) = split(item);
        match scopes.iter_mut().find(|(scope, _)| key.is(scope)) {
            Some((_, items)) => items.push(proto),
            None => scopes.push((key.into_scope(), vec![proto])),
        }
    }
    scopes
}

/// What wakes the export thread. Items do not: they wait in the data channel until the
/// timer fires or a full batch is ready.
enum Msg {
    /// A full batch is waiting.
    Ready,
    /// Export what is queued, then answer.
    Flush(SyncSender<()>),
    /// Export what is queued, answer and stop.
    Shutdown(SyncSender<()>),
}

/// Where batches go.
pub(crate) enum Transport {
    /// OTLP over gRPC or HTTP (see `otlp_transport`).
    Otlp(Box<OtlpClient>),
    File(JsonLinesFile),
    /// Readable lines on stdout (see `console`).
    Console(crate::console::Console),
}

/// Where a batch goes, for diagnostics: the protocol and endpoint or the file, never a header.
impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Otlp(client) => client.fmt(f),
            Self::File(file) => write!(f, "file {}", file.path().display()),
            Self::Console(_) => f.write_str("console"),
        }
    }
}

/// State shared by the queue's clones and the export thread.
struct Shared {
    /// Items in the data channel.
    queued: AtomicUsize,
    /// A `Ready` is on its way; no need to send another.
    woken: AtomicBool,
    /// Items dropped because the queue was full, reported by the export thread.
    full: AtomicU64,
    /// Wake the export thread at this many queued items: a full batch, or half the queue
    /// when the queue is smaller than a batch.
    wake_at: usize,
    /// Items per export request at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, ...).
    max_batch: usize,
}

/// The request side: cheap to clone, never blocks.
///
/// Why two channels: a thread blocked on a channel is woken by every send, which on a busy
/// service is a futex wake and a context switch per span and per log record. The export thread
/// sleeps on the control channel instead and is woken once per full batch (or by its timer).
pub(crate) struct Queue<T> {
    data: SyncSender<T>,
    control: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            data: self.data.clone(),
            control: self.control.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T> Queue<T> {
    /// Queues `item`, or counts it as dropped when the queue is full.
    ///
    /// The count goes up before the item is in the channel: counted after, the export thread
    /// could take the item and count it down first, and the count would wrap below zero (an
    /// overflow panic on the request path in a debug build).
    pub(crate) fn push(&self, item: T) {
        let queued = self.shared.queued.fetch_add(1, Ordering::Relaxed) + 1;
        match self.data.try_send(item) {
            Ok(()) => {
                if queued >= self.shared.wake_at && !self.shared.woken.swap(true, Ordering::AcqRel)
                {
                    // Full control channel: a message is already waiting, which also wakes it.
                    let _ = self.control.try_send(Msg::Ready);
                }
            }
            Err(TrySendError::Full(_)) => {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                self.shared.full.fetch_add(1, Ordering::Relaxed);
            }
            // Shut down: nothing will export it any more.
            Err(TrySendError::Disconnected(_)) => {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The export side's take: the next item in the channel, counted down. Saturating, so a
/// counting mistake can never wrap the count.
fn take<T>(data: &Receiver<T>, shared: &Shared) -> Option<T> {
    let item = data.try_recv().ok()?;
    let _ = shared
        .queued
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
    Some(item)
}

/// The export side: owned by the guard, which flushes and stops it.
pub(crate) struct Pipeline {
    control: SyncSender<Msg>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Starts the export thread for `P`. `resource`: the resource in proto form.
pub(crate) fn start<P: Payload>(
    transport: Transport,
    fallback: Option<JsonLinesFile>,
    resource: Resource,
    batching: &BatchSettings,
    stats: Arc<ExportStats>,
) -> std::io::Result<(Pipeline, Queue<P::Item>)> {
    let (queue, data, control) = queue(batching.max_queue_size, batching.max_export_batch_size);
    let exporter = Exporter::<P> {
        transport,
        fallback,
        resource,
        stats,
        shared: queue.shared.clone(),
        _payload: std::marker::PhantomData,
    };
    let delay = batching.scheduled_delay;
    let thread = std::thread::Builder::new()
        .name(format!("vidscope-otlp-{}", P::SIGNAL.as_str()))
        .spawn(move || exporter.run(data, control, delay))?;
    Ok((
        Pipeline {
            control: queue.control.clone(),
            thread: std::sync::Mutex::new(Some(thread)),
        },
        queue,
    ))
}

/// A queue and the receiving ends of its data and control channels.
fn queue<T>(capacity: usize, max_batch: usize) -> (Queue<T>, Receiver<T>, Receiver<Msg>) {
    let max_batch = max_batch.max(1);
    let (data, data_rx) = sync_channel(capacity);
    // Room for a `Ready` plus flushes and a shutdown from the guard.
    let (control, control_rx) = sync_channel(4);
    (
        Queue {
            data,
            control,
            shared: Arc::new(Shared {
                queued: AtomicUsize::new(0),
                woken: AtomicBool::new(false),
                full: AtomicU64::new(0),
                wake_at: max_batch.min(capacity / 2).max(1),
                max_batch,
            }),
        },
        data_rx,
        control_rx,
    )
}

/// For tests: a queue whose items are read back with the returned function.
#[cfg(test)]
pub(crate) fn test_queue<T>() -> (Queue<T>, impl Fn() -> Vec<T>) {
    let (q, data, _control) = queue(1024, 512);
    (q, move || data.try_iter().collect())
}

impl Pipeline {
    /// Exports everything queued so far; waits at most `deadline`.
    pub(crate) fn flush(&self, deadline: Duration) {
        self.ask(Msg::Flush, deadline);
    }

    /// Exports everything queued and stops the thread; waits at most `deadline`.
    pub(crate) fn shutdown(&self, deadline: Duration) {
        if self.ask(Msg::Shutdown, deadline)
            && let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }

    fn ask(&self, msg: fn(SyncSender<()>) -> Msg, deadline: Duration) -> bool {
        let (ack_tx, ack_rx) = sync_channel(1);
        let start = Instant::now();
        // The control channel may be full: keep trying until the deadline rather than block.
        let mut m = msg(ack_tx);
        loop {
            match self.control.try_send(m) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if start.elapsed() >= deadline {
                        return false;
                    }
                    m = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_sub(start.elapsed()))
            .is_ok()
    }
}

/// Nanoseconds since the Unix epoch, as OTLP wants them.
pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Applies the redaction rule ([`redact_value`]) to protobuf attributes in place.
pub(crate) fn scrub_attributes(attributes: &mut [KeyValue]) {
    for kv in attributes {
        if let Some(AnyValue { value: Some(v) }) = &mut kv.value {
            redact_value(&kv.key, v);
        }
    }
}

impl Redactable for Value {
    fn kind(&self) -> ValueKind {
        match self {
            Value::BoolValue(_) => ValueKind::Bool,
            Value::IntValue(_) | Value::DoubleValue(_) => ValueKind::Number,
            _ => ValueKind::Other,
        }
    }
    fn replace(&mut self) {
        *self = Value::StringValue(REDACTED.to_owned());
    }
    /// A string, or the strings of a list (not nested further: attributes written by code
    /// hold flat lists).
    fn scrub_strings(&mut self) {
        match self {
            Value::StringValue(s) => scrub_string(s),
            Value::ArrayValue(a) => {
                for item in &mut a.values {
                    if let Some(Value::StringValue(s)) = &mut item.value {
                        scrub_string(s);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The export thread's state.
struct Exporter<P: Payload> {
    transport: Transport,
    fallback: Option<JsonLinesFile>,
    resource: Resource,
    stats: Arc<ExportStats>,
    shared: Arc<Shared>,
    _payload: std::marker::PhantomData<P>,
}

impl<P: Payload> Exporter<P> {
    fn run(mut self, data: Receiver<P::Item>, control: Receiver<Msg>, delay: Duration) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                // Without a runtime nothing can be sent: count every item as dropped.
                tracing::warn!(
                    target: crate::config::EXPORT_TARGET,
                    signal = P::SIGNAL.as_str(),
                    error = %e,
                    "cannot start the export thread's runtime; this signal will be dropped"
                );
                for msg in control {
                    let dropped = data.try_iter().count();
                    self.stats.record_dropped(P::SIGNAL, dropped);
                    match msg {
                        Msg::Ready => {}
                        Msg::Flush(ack) => drop(ack.send(())),
                        Msg::Shutdown(ack) => {
                            let _ = ack.send(());
                            return;
                        }
                    }
                }
                return;
            }
        };
        let mut batch: Vec<P::Item> = Vec::with_capacity(self.shared.max_batch);
        let mut due = Instant::now() + delay;
        loop {
            let msg = control.recv_timeout(due.saturating_duration_since(Instant::now()));
            // Whatever woke the thread, everything queued so far goes out.
            self.drain(&rt, &data, &mut batch);
            match msg {
                Ok(Msg::Ready) => {}
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Ok(Msg::Shutdown(ack)) => {
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => due = Instant::now() + delay,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Exports everything in the data channel, in batches of at most the configured size.
    fn drain(
        &mut self,
        rt: &tokio::runtime::Runtime,
        data: &Receiver<P::Item>,
        batch: &mut Vec<P::Item>,
    ) {
        self.shared.woken.store(false, Ordering::Release);
        while let Some(item) = take(data, &self.shared) {
            batch.push(item);
            if batch.len() >= self.shared.max_batch {
                self.export(rt, batch);
            }
        }
        self.export(rt, batch);
    }

    fn fail(&self, items: usize, error: String, fell_back: bool) {
        self.stats.record_failure(
            P::SIGNAL,
            items,
            &OTelSdkError::InternalFailure(error),
            fell_back,
        );
    }

    fn export(&mut self, rt: &tokio::runtime::Runtime, batch: &mut Vec<P::Item>) {
        let full = self.shared.full.swap(0, Ordering::Relaxed);
        if full > 0 {
            self.fail(
                full as usize,
                format!("the {} export queue is full", P::SIGNAL.as_str()),
                false,
            );
        }
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        tracing::debug!(
            target: crate::config::EXPORT_TARGET,
            signal = P::SIGNAL.as_str(),
            items = n,
            destination = %self.transport,
            "exporting a telemetry batch"
        );
        match &self.transport {
            Transport::File(f) => {
                let request = P::request(self.resource.clone(), scrubbed_scopes::<P>(batch));
                // No fallback behind the file itself.
                self.stats
                    .record_written(P::SIGNAL, n, &f.write_json(&request));
            }
            Transport::Console(c) => {
                let request = P::request(self.resource.clone(), scrubbed_scopes::<P>(batch));
                let written = c.write(&request).map(|()| PartialSuccess::default());
                self.settle(n, written.map_err(|e| e.to_string()), P::Request::default);
            }
            Transport::Otlp(client) if client.is_json() => {
                let request = P::request(self.resource.clone(), scrubbed_scopes::<P>(batch));
                let sent = match serde_json::to_vec(&request) {
                    Ok(body) => self.send(rt, body),
                    Err(e) => Err(format!("encode: {e}")),
                };
                self.settle(n, sent, || request);
            }
            Transport::Otlp(_) => {
                let (body, request) = protobuf::<P>(&self.resource, batch);
                let sent = self.send(rt, body);
                // The request is built only if the fallback file needs it.
                self.settle(n, sent, || {
                    request.unwrap_or_else(|| {
                        P::request(self.resource.clone(), scrubbed_scopes::<P>(batch))
                    })
                });
                batch.clear();
            }
        }
    }

    /// Counts a batch as exported (less what the collector rejected of it), or as lost or
    /// written to the fallback file.
    fn settle(
        &self,
        n: usize,
        result: Result<PartialSuccess, String>,
        unsent: impl FnOnce() -> P::Request,
    ) {
        match result {
            Ok(answer) => self.stats.record_accepted(P::SIGNAL, n, &answer),
            Err(e) => {
                let fell_back = self
                    .fallback
                    .as_ref()
                    .is_some_and(|f| f.write_json(&unsent()).is_ok());
                self.fail(n, e, fell_back);
            }
        }
    }

    /// Sends an encoded request (protobuf, or JSON for `http/json`) over OTLP; its retries,
    /// within the export timeout, hold this thread, never a request (see `otlp_transport`).
    fn send(
        &mut self,
        rt: &tokio::runtime::Runtime,
        body: Vec<u8>,
    ) -> Result<PartialSuccess, String> {
        match &mut self.transport {
            Transport::Otlp(client) => rt.block_on(client.send(body)),
            Transport::File(_) | Transport::Console(_) => Ok(PartialSuccess::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Producers pushing while the export side takes: the queued count ends at zero. Counted
    /// after the send, a take between send and count left the count one too high per race
    /// here (and wrapped it below zero without the saturating take).
    /// A payload whose hand-written encoder never knows its values.
    struct Unknowable;

    impl Payload for Unknowable {
        type Item = String;
        type Proto = opentelemetry_proto::tonic::logs::v1::LogRecord;
        type Request = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        const SIGNAL: Signal = Signal::Logs;
        fn scopes(batch: &mut Vec<String>) -> Vec<Scoped<Self::Proto>> {
            let records = batch
                .drain(..)
                .map(|body| Self::Proto {
                    severity_text: body,
                    ..Default::default()
                })
                .collect();
            vec![(InstrumentationScope::default(), records)]
        }
        fn scrub(item: &mut Self::Proto) {
            scrub_string(&mut item.severity_text);
        }
        fn request(resource: Resource, scopes: Vec<Scoped<Self::Proto>>) -> Self::Request {
            Self::Request {
                resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
                    resource: Some(resource),
                    scope_logs: scopes
                        .into_iter()
                        .map(|(scope, log_records)| {
                            opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                                scope: Some(scope),
                                log_records,
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }],
            }
        }
        fn encode(_: &Resource, _: &[String]) -> Result<Vec<u8>, crate::fast::wire::Unencodable> {
            Err(crate::fast::wire::Unencodable { key: "k".into() })
        }
    }

    /// A value type the writer does not know sends the batch through prost, whole and
    /// scrubbed, instead of empty values.
    #[test]
    fn an_unencodable_batch_goes_through_prost() {
        use prost::Message as _;
        let mut batch = vec!["one".to_owned(), "password=hunter2".to_owned()];
        let (body, request) = protobuf::<Unknowable>(&Resource::default(), &mut batch);
        let request = request.expect("the converted request, for the fallback file");
        assert_eq!(body, request.encode_to_vec());
        let decoded =
            <Unknowable as Payload>::Request::decode(body.as_slice()).expect("valid protobuf");
        let texts: Vec<_> = decoded.resource_logs[0].scope_logs[0]
            .log_records
            .iter()
            .map(|r| r.severity_text.as_str())
            .collect();
        assert_eq!(texts, ["one", "password=[REDACTED]"]);
    }

    #[test]
    fn the_pipeline_writes_known_value_types_by_hand() {
        use opentelemetry::{Array, KeyValue, Value};
        let known = [
            KeyValue::new("a", true),
            KeyValue::new("b", 1),
            KeyValue::new("c", 0.5),
            KeyValue::new("d", "x"),
            KeyValue::new("e", Value::Array(Array::Bool(vec![true]))),
            KeyValue::new("f", Value::Array(Array::I64(vec![1]))),
            KeyValue::new("g", Value::Array(Array::F64(vec![1.0]))),
            KeyValue::new("h", Value::Array(Array::String(vec!["s".into()]))),
        ];
        assert_eq!(crate::fast::wire::check(&known), Ok(()));
    }

    #[test]
    fn the_queued_count_survives_pushes_racing_takes() {
        let (q, data, _control) = queue::<u32>(64, 16);
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = {
            let shared = q.shared.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut taken = 0u64;
                loop {
                    match take(&data, &shared) {
                        Some(_) => taken += 1,
                        // Every push happened before the stop: what is left is in the channel.
                        None if stop.load(Ordering::Acquire) => {
                            while take(&data, &shared).is_some() {
                                taken += 1;
                            }
                            return taken;
                        }
                        None => std::hint::spin_loop(),
                    }
                }
            })
        };
        let producers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || (0..1_000_000).for_each(|i| q.push(i)))
            })
            .collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        stop.store(true, Ordering::Release);
        let taken = consumer.join().unwrap();
        let full = q.shared.full.load(Ordering::Relaxed);
        assert_eq!(
            taken + full,
            3_000_000,
            "every push taken or counted as dropped"
        );
        assert_eq!(q.shared.queued.load(Ordering::Relaxed), 0);
    }
}
