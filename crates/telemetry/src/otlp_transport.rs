//! Sending one encoded OTLP export request, for every signal of both backends: the fast
//! pipelines (`pipe`), the `sdk` backend's span and log exporters (`sdk`) and the metric
//! exporter (`exporters`) all hand their bytes to an [`OtlpClient`] here, so compression, retries
//! and the reading of the collector's answer behave the same whichever side produced the data.
//!
//! - **Compression** (`OTEL_EXPORTER_OTLP_COMPRESSION` and per signal): HTTP bodies are
//!   gzipped with `Content-Encoding: gzip`; gRPC messages carry `grpc-encoding: gzip` (tonic's
//!   own compression).
//! - **Retries** of what the OTLP specification calls retryable: gRPC `UNAVAILABLE`,
//!   `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `DATA_LOSS`, and
//!   `RESOURCE_EXHAUSTED` only when the status carries a `google.rpc.RetryInfo`; HTTP 429, 502,
//!   503, 504 and failures to connect. The wait is the server's (`RetryInfo`'s delay,
//!   `Retry-After` in seconds or as an HTTP date) or else exponential backoff with full jitter
//!   ([`backoff`]). One export never takes longer than the export timeout, retries included: a
//!   wait that would pass it ends the export as failed instead. After an export failed that
//!   way, the next ones get one attempt each until one succeeds, so a collector that is down
//!   does not turn every batch into a wait of the whole timeout.
//! - **Partial success:** an accepted export whose answer says some items were rejected is
//!   returned as a [`PartialSuccess`], which the caller counts (`ExportStats::record_accepted`).
//!
//! Why not the `opentelemetry-otlp` exporters' own features (0.32): their gRPC retry sleeps on
//! Tokio's timer, which panics on the SDK's processor and reader threads (no runtime there;
//! opentelemetry-rust issue 3432); their HTTP retry honours `Retry-After` on 429 only and has no
//! total budget (three retries of up to ten minutes each); they log a partial success at warn
//! on every batch and return success, so the rejected items cannot be counted; and their
//! builders read `OTEL_EXPORTER_OTLP_COMPRESSION` themselves and refuse its `none` value.
//!
//! Everything here runs on an export thread (the fast pipelines' own, the SDK's processor and
//! reader threads): none of it is on a request's path.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::config::EXPORT_TARGET;
use crate::config::{Compression, OtlpProtocol, Signal, TelemetryConfig};
use crate::error::InitError;
pub(crate) use crate::export::PartialSuccess;

/// Attempts per export at most (the export timeout usually ends them first).
const MAX_ATTEMPTS: u32 = 8;

/// The wait before retry `n` (1-based) when the server gave none: exponential backoff with
/// full jitter, uniform in [0, min(5 s, 100 ms × 2^(n-1))]. The same as `classify::Backoff`,
/// which cannot be used here: `classify` marks spans (through `SpanExt`), so it sits above the
/// pipelines that use this module, and importing it would close a module cycle.
fn backoff(n: u32) -> Duration {
    let cap = Duration::from_millis(100).saturating_mul(1 << n.saturating_sub(1).min(16));
    cap.min(Duration::from_secs(5)).mul_f64(jitter())
}

/// The OTLP gRPC method of a signal.
fn grpc_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// The protocol's side of a client.
enum Wire {
    Grpc {
        endpoint: String,
        metadata: tonic::metadata::MetadataMap,
        /// Built on first use, inside the caller's runtime (tonic needs one to connect).
        grpc: Option<tonic::client::Grpc<tonic::transport::Channel>>,
    },
    Http {
        url: String,
        headers: reqwest::header::HeaderMap,
        json: bool,
        client: Option<reqwest::Client>,
    },
}

/// Sends one signal's encoded export requests to its OTLP endpoint. Used from inside a Tokio
/// runtime (the fast pipelines' export threads); [`BlockingClient`] brings its own.
pub(crate) struct OtlpClient {
    signal: Signal,
    wire: Wire,
    compression: Compression,
    /// One export's whole time, retries included (`OTEL_EXPORTER_OTLP_TIMEOUT`, or the span or
    /// log batch's shorter `OTEL_BSP_EXPORT_TIMEOUT` / `OTEL_BLRP_EXPORT_TIMEOUT`).
    budget: Duration,
    /// The last export failed after retrying: try the next ones once until one succeeds.
    outage: bool,
}

/// One failed attempt.
struct Failure {
    message: String,
    /// `None`: not retryable. `Some(wait)`: retryable, after the server's wait if it gave one.
    retry: Option<Option<Duration>>,
}

impl Failure {
    fn permanent(message: String) -> Self {
        Self {
            message,
            retry: None,
        }
    }

    fn retryable(message: String, wait: Option<Duration>) -> Self {
        Self {
            message,
            retry: Some(wait),
        }
    }
}

impl OtlpClient {
    /// The client for `signal` as configured; a bad header or gRPC endpoint is an error naming it.
    pub(crate) fn new(config: &TelemetryConfig, signal: Signal) -> Result<Self, InitError> {
        let endpoint = config.endpoints.get(&signal).cloned().unwrap_or_default();
        let wire = match config.protocol {
            OtlpProtocol::Grpc => {
                tonic::transport::Endpoint::from_shared(endpoint.clone()).map_err(|e| {
                    InitError::Exporter {
                        signal: signal.as_str(),
                        endpoint: endpoint.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Wire::Grpc {
                    metadata: http_headers(&config.headers)
                        .map(tonic::metadata::MetadataMap::from_headers)
                        .map_err(InitError::Headers)?,
                    endpoint,
                    grpc: None,
                }
            }
            p => Wire::Http {
                url: endpoint,
                headers: http_headers(&config.headers).map_err(InitError::Headers)?,
                json: p == OtlpProtocol::HttpJson,
                client: None,
            },
        };
        Ok(Self {
            signal,
            wire,
            compression: config.compression(signal),
            budget: config.signal_export_timeout(signal),
            outage: false,
        })
    }

    /// Whether requests go as OTLP/JSON (otherwise protobuf).
    pub(crate) fn is_json(&self) -> bool {
        matches!(self.wire, Wire::Http { json: true, .. })
    }

    /// `request` in this client's encoding.
    pub(crate) fn encode<R: prost::Message + serde::Serialize>(
        &self,
        request: &R,
    ) -> Result<Vec<u8>, String> {
        if self.is_json() {
            serde_json::to_vec(request).map_err(|e| format!("encode: {e}"))
        } else {
            Ok(request.encode_to_vec())
        }
    }

    /// Sends an encoded request (protobuf, or JSON for `http/json`), retrying what may succeed
    /// later for as long as the export timeout allows. `Ok` once the collector accepted it,
    /// with what it refused of it.
    pub(crate) async fn send(&mut self, body: Vec<u8>) -> Result<PartialSuccess, String> {
        let deadline = Instant::now() + self.budget;
        let body = match (&self.wire, self.compression) {
            (Wire::Http { .. }, Compression::Gzip) => gzip(&body)?,
            _ => body,
        };
        let body = Bytes::from(body);
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            tracing::debug!(
                target: EXPORT_TARGET,
                signal = self.signal.as_str(),
                destination = %self,
                attempt,
                bytes = body.len(),
                compression = self.compression.as_str(),
                "sending a telemetry export"
            );
            let failure = match self.attempt(body.clone(), remaining).await {
                Ok(accepted) => {
                    self.outage = false;
                    return Ok(accepted);
                }
                Err(failure) => failure,
            };
            let Some(server_wait) = failure.retry else {
                return Err(failure.message);
            };
            if self.outage {
                return Err(format!(
                    "{} (not retried: the previous export failed too)",
                    failure.message
                ));
            }
            let wait = server_wait.unwrap_or_else(|| backoff(attempt));
            if attempt >= MAX_ATTEMPTS || Instant::now() + wait >= deadline {
                self.outage = true;
                return Err(format!(
                    "{} (gave up after {attempt} attempt(s): no retry fits in the export \
                     timeout of {:?})",
                    failure.message, self.budget
                ));
            }
            tracing::debug!(
                target: EXPORT_TARGET,
                signal = self.signal.as_str(),
                error = %failure.message,
                wait_ms = wait.as_millis() as u64,
                server_wait = server_wait.is_some(),
                "retrying a telemetry export"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&mut self, body: Bytes, timeout: Duration) -> Result<PartialSuccess, Failure> {
        let signal = self.signal;
        let compression = self.compression;
        match &mut self.wire {
            Wire::Grpc {
                endpoint,
                metadata,
                grpc,
            } => {
                let grpc = match grpc {
                    Some(grpc) => grpc,
                    None => grpc.insert(grpc_client(endpoint, timeout, compression)?),
                };
                grpc_attempt(grpc, endpoint, metadata, signal, body, timeout).await
            }
            Wire::Http {
                url,
                headers,
                json,
                client,
            } => {
                let client = client.get_or_insert_with(reqwest::Client::new);
                let mut request = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        if *json {
                            "application/json"
                        } else {
                            "application/x-protobuf"
                        },
                    )
                    .timeout(timeout);
                if compression == Compression::Gzip {
                    request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
                let response = request.body(body).send().await.map_err(|e| {
                    // Could not connect, or no answer in time: the collector may be back later.
                    Failure::retryable(format!("POST {url}: {e}"), None)
                })?;
                http_outcome(url, *json, signal, response).await
            }
        }
    }
}

/// Where batches go, for diagnostics: the protocol and endpoint, never a header.
impl std::fmt::Display for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.wire {
            Wire::Grpc { endpoint, .. } => write!(f, "otlp grpc {endpoint}"),
            Wire::Http {
                url, json: true, ..
            } => write!(f, "otlp http/json {url}"),
            Wire::Http { url, .. } => write!(f, "otlp http/protobuf {url}"),
        }
    }
}

async fn grpc_attempt(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    endpoint: &str,
    metadata: &tonic::metadata::MetadataMap,
    signal: Signal,
    body: Bytes,
    timeout: Duration,
) -> Result<PartialSuccess, Failure> {
    let call = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = metadata.clone();
        request.set_timeout(timeout);
        grpc.unary(
            request,
            http::uri::PathAndQuery::from_static(grpc_path(signal)),
            Encoded,
        )
        .await
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(protobuf_partial_success(response.get_ref())),
        Ok(Err(status)) => Err(grpc_failure(endpoint, &status)),
        Err(_) => Err(Failure::retryable(
            format!("gRPC {endpoint}: no answer within {timeout:?}"),
            None,
        )),
    }
}

/// The OTLP specification's table of retryable gRPC codes; `RESOURCE_EXHAUSTED` only when the
/// server says when to come back (`google.rpc.RetryInfo`), whose delay is then the wait.
fn grpc_failure(endpoint: &str, status: &tonic::Status) -> Failure {
    use tonic::Code;
    use tonic_types::StatusExt as _;
    let message = format!("gRPC {endpoint}: {:?}: {}", status.code(), status.message());
    let server_wait = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    match status.code() {
        Code::ResourceExhausted if server_wait.is_some() => {
            Failure::retryable(message, server_wait)
        }
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Failure::retryable(message, server_wait),
        _ => Failure::permanent(message),
    }
}

/// The answer to an HTTP export: 2xx with its partial success, or a failure classified by the
/// OTLP specification (429, 502, 503, 504 retryable, honouring `Retry-After`).
async fn http_outcome(
    url: &str,
    json: bool,
    signal: Signal,
    response: reqwest::Response,
) -> Result<PartialSuccess, Failure> {
    let status = response.status();
    if status.is_success() {
        // Accepted: an answer that cannot be read is a full success.
        let body = response.bytes().await.unwrap_or_default();
        return Ok(if json {
            json_partial_success(signal, &body)
        } else {
            protobuf_partial_success(&body)
        });
    }
    let message = format!("POST {url}: {status}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, SystemTime::now()));
            Err(Failure::retryable(message, wait))
        }
        _ => Err(Failure::permanent(message)),
    }
}

/// `Retry-After`: a number of seconds or an HTTP date (a date in the past means now).
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A jitter fraction in [0, 1): std's per-instance random hash keys, no RNG crate needed.
fn jitter() -> f64 {
    use std::hash::BuildHasher as _;
    let bits = std::hash::RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The HTTP body gzipped, at flate2's default level (tonic's for gRPC too).
fn gzip(body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|e| format!("gzip: {e}"))
}

/// The three export responses have one shape: `partial_success` (field 1) holding the rejected
/// count (field 1) and the message (field 2). One message type reads all three.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<ProtoPartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoPartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// The partial success in a protobuf export response; an unreadable one is a full success.
fn protobuf_partial_success(body: &[u8]) -> PartialSuccess {
    let Ok(ExportResponse {
        partial_success: Some(p),
    }) = prost::Message::decode(body)
    else {
        return PartialSuccess::default();
    };
    PartialSuccess {
        rejected: u64::try_from(p.rejected).unwrap_or(0),
        message: p.error_message,
    }
}

/// The partial success in an OTLP/JSON export response. The count is an int64, which proto3
/// JSON writes as a string; a number is accepted too.
fn json_partial_success(signal: Signal, body: &[u8]) -> PartialSuccess {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return PartialSuccess::default();
    };
    let p = &value["partialSuccess"];
    let key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let rejected = match &p[key] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    };
    PartialSuccess {
        rejected: rejected.unwrap_or(0),
        message: p["errorMessage"].as_str().unwrap_or_default().to_owned(),
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` as HTTP headers (gRPC metadata is HTTP/2 headers too); an
/// error names the bad header.
fn http_headers(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let key = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("{k}: {e}"))?;
        map.insert(key, v.parse().map_err(|e| format!("{k}: {e}"))?);
    }
    Ok(map)
}

/// The gRPC client: a lazily connecting channel, with gzip both ways when configured.
fn grpc_client(
    endpoint: &str,
    timeout: Duration,
    compression: Compression,
) -> Result<tonic::client::Grpc<tonic::transport::Channel>, Failure> {
    let channel = grpc_channel(endpoint, timeout).map_err(Failure::permanent)?;
    let grpc = tonic::client::Grpc::new(channel);
    Ok(match compression {
        Compression::Gzip => grpc
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        Compression::None => grpc,
    })
}

/// A lazily connecting channel to `endpoint`; `https://` gets TLS with the WebPKI roots. Must
/// run inside a Tokio runtime.
fn grpc_channel(endpoint: &str, timeout: Duration) -> Result<tonic::transport::Channel, String> {
    let mut ep = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| format!("endpoint {endpoint}: {e}"))?
        .timeout(timeout);
    if endpoint.starts_with("https://") {
        ep = ep
            .tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots())
            .map_err(|e| format!("TLS for {endpoint}: {e}"))?;
    }
    Ok(ep.connect_lazy())
}

/// A gRPC codec for requests already encoded to protobuf, whose answer is kept as bytes (read
/// by [`protobuf_partial_success`]).
///
/// Why not tonic-prost's codec: prost writing straight into tonic's buffer goes through the
/// `BufMut` bounds checks of `BytesMut` for every varint and field; encoding into a `Vec` and
/// copying once took the benchmark route at 100 % sampling from ~136 500 to ~128 000
/// instructions per request (callgrind).
struct Encoded;

impl tonic::codec::Codec for Encoded {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Encoded {
        Encoded
    }

    fn decoder(&mut self) -> Encoded {
        Encoded
    }
}

impl tonic::codec::Encoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}

/// An [`OtlpClient`] for callers without a Tokio runtime: the SDK calls exporters on its batch
/// processors' and periodic reader's own threads. It brings a current-thread runtime, driven
/// only while an export is being sent.
pub(crate) struct BlockingClient {
    client: Mutex<OtlpClient>,
    runtime: OwnRuntime,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish_non_exhaustive()
    }
}

/// A runtime that may be dropped anywhere: dropping a Tokio runtime inside another's context
/// panics, and the SDK may drop its exporter on an application thread.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl BlockingClient {
    pub(crate) fn new(config: &TelemetryConfig, signal: Signal) -> Result<Self, InitError> {
        let client = OtlpClient::new(config, signal)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| InitError::ExportThread {
                signal: signal.as_str(),
                source,
            })?;
        Ok(Self {
            client: Mutex::new(client),
            runtime: OwnRuntime(Some(runtime)),
        })
    }

    /// Encodes and sends `request`, blocking the calling thread (see [`OtlpClient::send`]).
    pub(crate) fn send<R: prost::Message + serde::Serialize>(
        &self,
        request: &R,
    ) -> Result<PartialSuccess, String> {
        let send = || {
            let Ok(mut client) = self.client.lock() else {
                return Err("the exporter's lock is poisoned".to_owned());
            };
            let body = client.encode(request)?;
            let Some(rt) = &self.runtime.0 else {
                return Err("the exporter is shut down".to_owned());
            };
            rt.block_on(client.send(body))
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // On a runtime's thread a runtime cannot block: send from a scoped thread.
            std::thread::scope(|s| {
                s.spawn(send)
                    .join()
                    .unwrap_or_else(|_| Err("the export panicked".to_owned()))
            })
        } else {
            send()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message as _;

    fn note(rejected: u64, message: &str) -> PartialSuccess {
        PartialSuccess {
            rejected,
            message: message.to_owned(),
        }
    }

    /// The one response type reads each signal's generated response, protobuf and JSON.
    #[test]
    fn partial_success_is_read_from_each_signals_response() {
        let traces = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "spans too old".into(),
            }),
        };
        let metrics = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 4,
                error_message: "bad unit".into(),
            }),
        };
        let logs = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 5,
                error_message: String::new(),
            }),
        };
        let cases = [
            (
                Signal::Traces,
                traces.encode_to_vec(),
                serde_json::to_vec(&traces).unwrap(),
                note(3, "spans too old"),
            ),
            (
                Signal::Metrics,
                metrics.encode_to_vec(),
                serde_json::to_vec(&metrics).unwrap(),
                note(4, "bad unit"),
            ),
            (
                Signal::Logs,
                logs.encode_to_vec(),
                serde_json::to_vec(&logs).unwrap(),
                note(5, ""),
            ),
        ];
        for (signal, protobuf, json, expected) in cases {
            assert_eq!(protobuf_partial_success(&protobuf), expected, "{signal:?}");
            assert_eq!(json_partial_success(signal, &json), expected, "{signal:?}");
        }
        // proto3 JSON writes an int64 as a string.
        let json = br#"{"partialSuccess":{"rejectedSpans":"7","errorMessage":"m"}}"#;
        assert_eq!(json_partial_success(Signal::Traces, json), note(7, "m"));
        // An empty answer, or one that cannot be read, is a full success.
        for body in [&b""[..], b"{}", b"\xff\xff"] {
            assert_eq!(protobuf_partial_success(body), PartialSuccess::default());
            assert_eq!(
                json_partial_success(Signal::Logs, body),
                PartialSuccess::default()
            );
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    /// The specification's table: what is retried, and that `RESOURCE_EXHAUSTED` is only with
    /// a `RetryInfo`, whose delay is the wait.
    #[test]
    fn grpc_codes_are_retried_as_the_otlp_specification_says() {
        use tonic::Code;
        use tonic_types::{ErrorDetails, StatusExt as _};
        let retry = |status: tonic::Status| grpc_failure("e", &status).retry;
        assert_eq!(retry(tonic::Status::unavailable("x")), Some(None));
        assert_eq!(retry(tonic::Status::resource_exhausted("x")), None);
        let wait = Duration::from_millis(1500);
        let throttled = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(wait)),
        );
        assert_eq!(retry(throttled), Some(Some(wait)));
        let unavailable = tonic::Status::with_error_details(
            Code::Unavailable,
            "later",
            ErrorDetails::with_retry_info(Some(wait)),
        );
        assert_eq!(retry(unavailable), Some(Some(wait)));
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Internal,
            Code::Unimplemented,
            Code::Unknown,
        ] {
            assert_eq!(retry(tonic::Status::new(code, "x")), None, "{code:?}");
        }
        for code in [Code::Cancelled, Code::DeadlineExceeded, Code::Aborted] {
            assert_eq!(retry(tonic::Status::new(code, "x")), Some(None), "{code:?}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..100 {
            assert!(backoff(1) <= Duration::from_millis(100));
            assert!(backoff(3) <= Duration::from_millis(400));
            assert!(backoff(30) <= Duration::from_secs(5));
        }
        let longest = (0..200).map(|_| backoff(4)).max().unwrap();
        assert!(longest > Duration::from_millis(400), "{longest:?}");
    }

    #[test]
    fn gzip_round_trips_and_jitter_stays_in_range() {
        let body = b"resource spans resource spans resource spans".repeat(20);
        let packed = gzip(&body).unwrap();
        assert_eq!(&packed[..2], &[0x1f, 0x8b], "gzip magic");
        assert!(packed.len() < body.len());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .unwrap();
        assert_eq!(out, body);
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&jitter()));
        }
    }

    /// The first byte a channel sends to a listener: a TLS handshake record (0x16) for
    /// `https://`, the HTTP/2 preface (`P`) for `http://`.
    #[test]
    fn https_endpoints_speak_tls_and_http_ones_do_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (scheme, first) in [("https", 0x16_u8), ("http", b'P')] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            listener.set_nonblocking(true).unwrap();
            let seen = std::thread::spawn(move || {
                // 0 when nothing connects within 5 s (the test then fails, not hangs).
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok((mut conn, _)) = listener.accept() {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut byte = [0u8; 1];
                        return match std::io::Read::read_exact(&mut conn, &mut byte) {
                            Ok(()) => byte[0],
                            Err(_) => 0,
                        };
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                0
            });
            let endpoint = format!("{scheme}://127.0.0.1:{port}");
            rt.block_on(async {
                let channel = grpc_channel(&endpoint, Duration::from_secs(2)).unwrap();
                let mut grpc = tonic::client::Grpc::new(channel);
                // Fails (nobody answers); it only has to connect and send its first bytes.
                let call = async {
                    grpc.ready().await.ok()?;
                    grpc.unary(
                        tonic::Request::new(Bytes::new()),
                        http::uri::PathAndQuery::from_static("/x.Y/Z"),
                        Encoded,
                    )
                    .await
                    .ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), call).await;
            });
            assert_eq!(seen.join().unwrap(), first, "{endpoint}");
        }
        assert!(grpc_channel("not a url", Duration::from_secs(1)).is_err());
    }
}
