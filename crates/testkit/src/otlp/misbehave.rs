//! The capture receiver made to misbehave, for the exporters' conformance tests: refusing the
//! first requests of each signal (retryably or not, with a server-given wait), answering with a
//! partial success, insisting on gzip, answering late. And the record of every attempt with its time, so a test
//! can check an exporter waited as long as it was told to.

use std::time::{Duration, Instant, SystemTime};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, RETRY_AFTER};

use super::{Signal, Transport};

/// What the receiver does wrong (see [`CaptureReceiver::misbehave`](super::CaptureReceiver)).
/// The default behaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Misbehaviour {
    /// Refuse this many export requests of each signal, then accept.
    pub refuse_first: u32,
    pub refusal: Refusal,
    /// Sent with each refusal: HTTP `Retry-After`, a gRPC `google.rpc.RetryInfo` detail.
    pub retry_after: Option<RetryAfter>,
    /// Accept every request with a `partial_success` rejecting this many items.
    pub partial_success: Option<PartialReject>,
    /// Refuse requests that are not gzip-compressed (HTTP 415, gRPC `UNIMPLEMENTED`).
    pub require_gzip: bool,
    /// Answer every export request this long after it arrived: a slow collector, which
    /// holds each export thread and fills its queue.
    pub delay: Option<Duration>,
}

/// How a request is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 503, gRPC `UNAVAILABLE`: retryable.
    #[default]
    Unavailable,
    /// HTTP 429, gRPC `RESOURCE_EXHAUSTED`: retryable (gRPC: only with a `retry_after`).
    Throttled,
    /// HTTP 400, gRPC `INVALID_ARGUMENT`: not retryable.
    Invalid,
}

/// A server-given wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: N`; over gRPC a `RetryInfo` of N seconds.
    Seconds(u64),
    /// `Retry-After: <HTTP date>` this long after the refusal; over gRPC the same wait.
    DateIn(Duration),
}

/// A partial success: items rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialReject {
    pub rejected: i64,
    pub message: String,
}

/// One export request as it reached the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub signal: Signal,
    pub transport: Transport,
    pub at: Instant,
    /// `None` when accepted, else the HTTP status or the gRPC code's name.
    pub refused: Option<String>,
    /// Arrived compressed, checked on the bytes (the gzip magic of an HTTP body, the
    /// compressed flag of the gRPC message frame) and decompressed.
    pub gzip: bool,
}

/// The misbehaviour in force and how many requests of each signal it has refused so far.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) misbehaviour: Misbehaviour,
    refused: [u32; 3],
}

fn idx(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl Plan {
    pub(super) fn new(misbehaviour: Misbehaviour) -> Self {
        Self {
            misbehaviour,
            refused: [0; 3],
        }
    }

    /// Whether this request of `signal` is refused, and how.
    pub(super) fn refusal(&mut self, signal: Signal, gzip: bool) -> Option<Refused> {
        let m = &self.misbehaviour;
        if m.require_gzip && !gzip {
            return Some(Refused::Uncompressed);
        }
        let count = &mut self.refused[idx(signal)];
        if *count >= m.refuse_first {
            return None;
        }
        *count += 1;
        Some(Refused::As(m.refusal, m.retry_after))
    }
}

/// Why a request is refused.
pub(super) enum Refused {
    As(Refusal, Option<RetryAfter>),
    Uncompressed,
}

impl Refused {
    /// The HTTP status or the gRPC code, for the attempt record.
    pub(super) fn name(&self, transport: Transport) -> String {
        match transport {
            Transport::Http => self.http_status().0.as_u16().to_string(),
            Transport::Grpc => format!("{:?}", self.grpc_code().0),
        }
    }

    fn http_status(&self) -> (StatusCode, Option<RetryAfter>) {
        match self {
            Refused::Uncompressed => (StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
            Refused::As(Refusal::Unavailable, r) => (StatusCode::SERVICE_UNAVAILABLE, *r),
            Refused::As(Refusal::Throttled, r) => (StatusCode::TOO_MANY_REQUESTS, *r),
            Refused::As(Refusal::Invalid, _) => (StatusCode::BAD_REQUEST, None),
        }
    }

    fn grpc_code(&self) -> (tonic::Code, Option<RetryAfter>) {
        use tonic::Code;
        match self {
            Refused::Uncompressed => (Code::Unimplemented, None),
            Refused::As(Refusal::Unavailable, r) => (Code::Unavailable, *r),
            Refused::As(Refusal::Throttled, r) => (Code::ResourceExhausted, *r),
            Refused::As(Refusal::Invalid, _) => (Code::InvalidArgument, None),
        }
    }

    /// The HTTP answer; a date in `Retry-After` is reckoned from now.
    pub(super) fn http(&self) -> Response {
        let (status, retry_after) = self.http_status();
        let mut response = (
            status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "OTLP capture receiver misbehaving on purpose",
        )
            .into_response();
        let value = retry_after.map(|r| match r {
            RetryAfter::Seconds(s) => s.to_string(),
            RetryAfter::DateIn(d) => httpdate::fmt_http_date(SystemTime::now() + d),
        });
        if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }

    /// The gRPC status.
    pub(super) fn grpc(&self) -> tonic::Status {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let (code, retry_after) = self.grpc_code();
        let message = "OTLP capture receiver misbehaving on purpose";
        match retry_after {
            None => tonic::Status::new(code, message),
            Some(r) => {
                let wait = match r {
                    RetryAfter::Seconds(s) => Duration::from_secs(s),
                    RetryAfter::DateIn(d) => d,
                };
                tonic::Status::with_error_details(
                    code,
                    message,
                    ErrorDetails::with_retry_info(Some(wait)),
                )
            }
        }
    }
}

/// A gzip body decompressed; an error when it is not gzip (the exporter said it was).
pub(super) fn gunzip(body: &[u8]) -> Result<Bytes, String> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Err("Content-Encoding: gzip but the body is not gzip".to_owned());
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
        .map_err(|e| format!("Content-Encoding: gzip but the body does not inflate: {e}"))?;
    Ok(Bytes::from(out))
}

/// Whether a gRPC request came compressed: `grpc-encoding: gzip`, and, when the body was read,
/// the message frame's compressed flag (its first byte).
pub(super) fn grpc_gzip(headers: &http::HeaderMap, body: Option<&[u8]>) -> bool {
    let said = headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    said && body.is_none_or(|b| b.first() == Some(&1))
}

/// Carries [`grpc_gzip`]'s answer from the raw-body layer to the service.
#[derive(Debug, Clone, Copy)]
pub(super) struct GrpcGzip(pub(super) bool);
