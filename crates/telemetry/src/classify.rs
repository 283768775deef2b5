//! Error classification (seed 003): every failure is either transient (worth retrying) or
//! permanent (retrying cannot help). The class is recorded on the span as `error.type` plus
//! `error.class`, and retry loops ask the same question, so what the trace says and what the
//! code does cannot drift apart.

use std::time::Duration;

use crate::span_ext::SpanExt as _;
use opentelemetry::trace::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Timeouts, refused or reset connections, 429/502/503/504, pool exhaustion.
    Transient,
    /// Bad input, missing objects, authorization failures, bugs.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }

    pub fn is_retryable(self) -> bool {
        self == ErrorClass::Transient
    }
}

/// Implemented by each crate's error enum.
pub trait Classify {
    fn class(&self) -> ErrorClass;
    /// Low-cardinality name of the failure (`timeout`, `db.unavailable`, `http.503`), used as
    /// `error.type` on spans and metric labels.
    fn error_type(&self) -> &'static str;
}

/// Class of an I/O error by kind.
pub fn classify_io(e: &std::io::Error) -> (ErrorClass, &'static str) {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut => (ErrorClass::Transient, "timeout"),
        ConnectionRefused => (ErrorClass::Transient, "connection_refused"),
        ConnectionReset | ConnectionAborted | BrokenPipe => {
            (ErrorClass::Transient, "connection_reset")
        }
        Interrupted | WouldBlock => (ErrorClass::Transient, "interrupted"),
        NotFound => (ErrorClass::Permanent, "not_found"),
        PermissionDenied => (ErrorClass::Permanent, "permission_denied"),
        InvalidInput | InvalidData => (ErrorClass::Permanent, "invalid_data"),
        _ => (ErrorClass::Permanent, "io"),
    }
}

/// Class of an HTTP response status from a dependency.
pub fn classify_http_status(status: u16) -> ErrorClass {
    match status {
        408 | 425 | 429 | 500 | 502 | 503 | 504 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Marks `span` as failed: status ERROR with the message, `error.type`, `error.class`.
pub fn record_error(
    span: &tracing::Span,
    class: ErrorClass,
    error_type: &'static str,
    message: &str,
) {
    span.set_status(Status::error(
        crate::redact::redact_str(message).into_owned(),
    ));
    span.set_attribute("error.type", error_type);
    span.set_attribute("error.class", class.as_str());
}

/// [`record_error`] for anything [`Classify`].
pub fn record_classified<E: Classify + std::fmt::Display>(span: &tracing::Span, e: &E) {
    record_error(span, e.class(), e.error_type(), &e.to_string());
}

/// Exponential backoff with full jitter, for retries of transient errors.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl Backoff {
    /// Whether attempt `attempt` (1-based, the one that just failed) may be retried.
    pub fn should_retry(&self, class: ErrorClass, attempt: u32) -> bool {
        class.is_retryable() && attempt < self.max_attempts
    }

    /// Delay before retry number `attempt` (1-based): uniform in `[0, min(max, base*2^(n-1))]`.
    pub fn delay(&self, attempt: u32, jitter01: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
        exp.min(self.max).mul_f64(jitter01.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify_http_status(503), ErrorClass::Transient);
        assert_eq!(classify_http_status(429), ErrorClass::Transient);
        assert_eq!(classify_http_status(404), ErrorClass::Permanent);
        assert_eq!(classify_http_status(401), ErrorClass::Permanent);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_io(&refused).0, ErrorClass::Transient);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(classify_io(&missing).0, ErrorClass::Permanent);
    }

    #[test]
    fn backoff_grows_caps_and_stops() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 4,
        };
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(200));
        assert!(b.should_retry(ErrorClass::Transient, 3));
        assert!(!b.should_retry(ErrorClass::Transient, 4));
        assert!(!b.should_retry(ErrorClass::Permanent, 1));
    }
}
