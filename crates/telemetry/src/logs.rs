//! OTLP logs straight from tracing events: a layer that builds each event's OTLP `LogRecord`
//! and a thread that scrubs secrets from the records, batches them and sends them over gRPC,
//! HTTP (protobuf or JSON) or into the log file.
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
//! Never blocks the caller: a full queue drops the record, and the drop is counted and
//! warned about (rate-limited) by the export thread.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tracing::{Event, Level, Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{OtlpProtocol, Signal};
use crate::export::ExportStats;
use crate::file::JsonLinesFile;
use crate::redact::{REDACTED, is_sensitive_key_cached, redact_str};
use crate::spans::OtelSpan;

/// Records per export call, as the SDK's batch processors default to.
const MAX_BATCH: usize = 512;

enum Msg {
    Record(&'static str, LogRecord),
    /// Export what is queued, then answer.
    Flush(SyncSender<()>),
    /// Export what is queued, answer and stop.
    Shutdown(SyncSender<()>),
}

/// Where batches go.
pub(crate) enum Transport {
    Grpc {
        endpoint: String,
        metadata: tonic::metadata::MetadataMap,
    },
    Http {
        url: String,
        headers: reqwest::header::HeaderMap,
        json: bool,
    },
    File(JsonLinesFile),
}

impl Transport {
    /// The OTLP transport for `protocol`; a bad header is a start-up error naming it.
    pub(crate) fn otlp(
        protocol: OtlpProtocol,
        endpoint: String,
        headers: &[(String, String)],
    ) -> Result<Self, String> {
        Ok(match protocol {
            OtlpProtocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                        .map_err(|e| format!("{k}: {e}"))?;
                    metadata.insert(key, v.parse().map_err(|e| format!("{k}: {e}"))?);
                }
                Self::Grpc { endpoint, metadata }
            }
            p => {
                let mut map = reqwest::header::HeaderMap::new();
                for (k, v) in headers {
                    let key = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("{k}: {e}"))?;
                    map.insert(key, v.parse().map_err(|e| format!("{k}: {e}"))?);
                }
                Self::Http {
                    url: endpoint,
                    headers: map,
                    json: p == OtlpProtocol::HttpJson,
                }
            }
        })
    }
}

/// Batching settings, from the telemetry configuration.
pub(crate) struct Batching {
    pub max_queue: usize,
    pub delay: Duration,
    pub timeout: Duration,
}

/// The export side: owned by the guard, which flushes and stops it.
pub(crate) struct LogPipeline {
    tx: SyncSender<Msg>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The tracing side. See the module documentation.
pub(crate) struct LogLayer {
    tx: SyncSender<Msg>,
    /// Records dropped because the queue was full, reported by the export thread.
    full: Arc<AtomicU64>,
}

/// Starts the export thread. `resource`: the resource's attributes in proto form.
pub(crate) fn pipeline(
    transport: Transport,
    fallback: Option<JsonLinesFile>,
    resource: Resource,
    batching: Batching,
    stats: Arc<ExportStats>,
) -> std::io::Result<(LogPipeline, LogLayer)> {
    let (tx, rx) = sync_channel(batching.max_queue);
    let full = Arc::new(AtomicU64::new(0));
    let exporter = Exporter {
        transport,
        fallback,
        resource,
        stats,
        full: full.clone(),
        timeout: batching.timeout,
        grpc: None,
        http: None,
    };
    let delay = batching.delay;
    let thread = std::thread::Builder::new()
        .name("vidscope-otlp-logs".into())
        .spawn(move || exporter.run(rx, delay))?;
    Ok((
        LogPipeline {
            tx: tx.clone(),
            thread: std::sync::Mutex::new(Some(thread)),
        },
        LogLayer { tx, full },
    ))
}

impl LogPipeline {
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
        // The queue may be full: keep trying until the deadline rather than block forever.
        let mut m = msg(ack_tx);
        loop {
            match self.tx.try_send(m) {
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

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let now = now_nanos();
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
        match self.tx.try_send(Msg::Record(meta.target(), record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.full.fetch_add(1, Ordering::Relaxed);
            }
            // Shut down: nothing will export it any more.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// An event's fields into its record: `message` is the body, the rest attributes. Values
/// are taken as they are; the export thread scrubs them ([`scrub`]).
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

/// Replaces secrets in a string value in place.
fn scrub_string(s: &mut String) {
    if let Cow::Owned(clean) = redact_str(s) {
        *s = clean;
    }
}

/// Scrubs a record before it leaves the process: numbers and booleans cannot carry a
/// secret; any other value under a sensitive key is replaced whole, and every string (the
/// body included) is scrubbed of embedded secrets. On the export thread, off the request path.
fn scrub(record: &mut LogRecord) {
    if let Some(AnyValue {
        value: Some(Value::StringValue(body)),
    }) = &mut record.body
    {
        scrub_string(body);
    }
    for kv in &mut record.attributes {
        let Some(AnyValue { value: Some(v) }) = &mut kv.value else {
            continue;
        };
        match v {
            Value::BoolValue(_) | Value::IntValue(_) | Value::DoubleValue(_) => {}
            _ if is_sensitive_key_cached(&kv.key) => {
                *v = Value::StringValue(REDACTED.to_owned());
            }
            Value::StringValue(s) => scrub_string(s),
            _ => {}
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

/// The export thread's state.
struct Exporter {
    transport: Transport,
    fallback: Option<JsonLinesFile>,
    resource: Resource,
    stats: Arc<ExportStats>,
    full: Arc<AtomicU64>,
    timeout: Duration,
    /// Built on first use, inside the thread's runtime (tonic needs one to connect).
    grpc: Option<LogsServiceClient<tonic::transport::Channel>>,
    http: Option<reqwest::Client>,
}

impl Exporter {
    fn run(mut self, rx: Receiver<Msg>, delay: Duration) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                // Without a runtime nothing can be sent: count every record as dropped.
                tracing::warn!(target: "vidscope_telemetry::export", error = %e, "cannot start the OTLP log export thread's runtime; log records will be dropped");
                for msg in rx {
                    match msg {
                        Msg::Record(..) => self.stats.record_dropped(Signal::Logs, 1),
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
        let mut batch: Vec<(&'static str, LogRecord)> = Vec::with_capacity(MAX_BATCH);
        let mut due = Instant::now() + delay;
        loop {
            let msg = rx.recv_timeout(due.saturating_duration_since(Instant::now()));
            match msg {
                Ok(Msg::Record(target, record)) => {
                    batch.push((target, record));
                    if batch.len() >= MAX_BATCH {
                        self.export(&rt, &mut batch);
                        due = Instant::now() + delay;
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    self.export(&rt, &mut batch);
                    let _ = ack.send(());
                }
                Ok(Msg::Shutdown(ack)) => {
                    self.export(&rt, &mut batch);
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.export(&rt, &mut batch);
                    due = Instant::now() + delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.export(&rt, &mut batch);
                    return;
                }
            }
        }
    }

    /// One request for the batch: one resource, one scope per target, in arrival order.
    fn request(&self, batch: &mut Vec<(&'static str, LogRecord)>) -> ExportLogsServiceRequest {
        let mut scopes: Vec<ScopeLogs> = Vec::new();
        for (target, mut record) in batch.drain(..) {
            scrub(&mut record);
            match scopes
                .iter_mut()
                .find(|s| s.scope.as_ref().is_some_and(|sc| sc.name == target))
            {
                Some(s) => s.log_records.push(record),
                None => scopes.push(ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: target.to_owned(),
                        ..Default::default()
                    }),
                    log_records: vec![record],
                    schema_url: String::new(),
                }),
            }
        }
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: scopes,
                schema_url: String::new(),
            }],
        }
    }

    fn export(&mut self, rt: &tokio::runtime::Runtime, batch: &mut Vec<(&'static str, LogRecord)>) {
        let full = self.full.swap(0, Ordering::Relaxed);
        if full > 0 {
            self.stats.record_failure(
                Signal::Logs,
                full as usize,
                &crate::OTelSdkError::InternalFailure("the log export queue is full".into()),
                false,
            );
        }
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let request = self.request(batch);
        let result = match &self.transport {
            Transport::File(f) => f.write_json(&request).map_err(|e| e.to_string()),
            Transport::Grpc { .. } | Transport::Http { .. } => {
                let copy = self.fallback.as_ref().map(|_| request.clone());
                let sent = rt.block_on(self.send(request));
                match (sent, copy, &self.fallback) {
                    (Err(e), Some(copy), Some(f)) => {
                        let fell_back = f.write_json(&copy).is_ok();
                        self.stats.record_failure(
                            Signal::Logs,
                            n,
                            &crate::OTelSdkError::InternalFailure(e),
                            fell_back,
                        );
                        return;
                    }
                    (r, _, _) => r,
                }
            }
        };
        match result {
            Ok(()) => self.stats.record_exported(Signal::Logs, n),
            Err(e) => self.stats.record_failure(
                Signal::Logs,
                n,
                &crate::OTelSdkError::InternalFailure(e),
                false,
            ),
        }
    }

    async fn send(&mut self, request: ExportLogsServiceRequest) -> Result<(), String> {
        let timeout = self.timeout;
        match &self.transport {
            Transport::Grpc { endpoint, metadata } => {
                if self.grpc.is_none() {
                    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                        .map_err(|e| format!("endpoint {endpoint}: {e}"))?
                        .timeout(timeout)
                        .connect_lazy();
                    self.grpc = Some(LogsServiceClient::new(channel));
                }
                let Some(client) = self.grpc.as_mut() else {
                    return Err("no gRPC client".into());
                };
                let mut req = tonic::Request::new(request);
                *req.metadata_mut() = metadata.clone();
                req.set_timeout(timeout);
                match tokio::time::timeout(timeout, client.export(req)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(status)) => Err(format!("gRPC {endpoint}: {status}")),
                    Err(_) => Err(format!("gRPC {endpoint}: timed out after {timeout:?}")),
                }
            }
            Transport::Http { url, headers, json } => {
                let client = self.http.get_or_insert_with(reqwest::Client::new);
                let (body, content_type) = if *json {
                    (
                        serde_json::to_vec(&request).map_err(|e| format!("encode: {e}"))?,
                        "application/json",
                    )
                } else {
                    (
                        prost::Message::encode_to_vec(&request),
                        "application/x-protobuf",
                    )
                };
                let response = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .timeout(timeout)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("POST {url}: {}", response.status()))
                }
            }
            Transport::File(_) => Ok(()),
        }
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
            now_nanos()
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
            REDACTED
        );
        assert_eq!(attribute(login, "attempts").unwrap()["intValue"], "3");
        assert_eq!(attribute(login, "remembered").unwrap()["boolValue"], true);
        assert!(
            attribute(login, "header").unwrap()["stringValue"]
                .as_str()
                .unwrap()
                .contains(REDACTED)
        );
        let outside = &records[1];
        assert_eq!(outside["body"]["stringValue"], "outside any span");
        assert_eq!(outside["severityNumber"], 9);
        assert_eq!(outside["traceId"], "");
    }
}
