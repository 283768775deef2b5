//! vidscope's telemetry: one call ([`init`]) turns a [`TelemetryConfig`] into traces, metrics
//! and logs over OTLP (gRPC or HTTP) or into Collector-format JSON files, with `tracing` as the
//! API the rest of the workspace uses.
//!
//! # Layout
//! Two backends turn tracing spans and events into OpenTelemetry
//! (`VIDSCOPE_TELEMETRY_BACKEND`): `fast`, the default, written for the performance budget, and
//! `sdk`, the stock OpenTelemetry path kept as the reference. They share everything else.
//! - [`config`]: the `OTEL_*` and `VIDSCOPE_*` telemetry variables and the seeds' aliases,
//!   validated up front.
//! - [`init`](mod@init): the metric provider, the chosen backend's subscriber and export
//!   pipelines, the guard that flushes.
//! - `fast/` (the `fast` backend, and telemetry turned off): `store` (the base subscriber, where
//!   spans live, instead of tracing-subscriber's `Registry`); `spans` (tracing spans as
//!   OpenTelemetry spans, sampled at creation); `logs` (tracing events as OTLP log records);
//!   `error_events` (error events mark their span); `pipe` (the bounded queue and export
//!   thread of spans and logs); `wire` (their protobuf, written by hand). `gate` (which spans
//!   and events exist, and which log output takes an event) is the fast backend's, with the
//!   directive parsing `sdk` uses.
//! - `sdk/` (the `sdk` backend): tracing-opentelemetry, the log appender bridge, the SDK's batch
//!   processors on tracing-subscriber's `Registry`, plus what makes their output match the fast
//!   backend's.
//! - `exporters`: where each signal goes; `otlp_transport`: the one OTLP sender of every signal
//!   on both backends (compression, retries within the export timeout, partial success).
//! - Shared: `json_log` (the JSON lines on stdout); [`export`] (export counting, the metric
//!   exporter with its fallback); [`file`](mod@file) (the Collector file-exporter format with size
//!   rotation); `console` (readable lines on stdout, `OTEL_*_EXPORTER=console`); [`catalog`]
//!   (every metric instrument, enforced with views); [`db_watch`] (slow statements and N+1
//!   repeats); [`classify`] (transient vs permanent errors, retry backoff); [`propagation`]
//!   (W3C trace context over HTTP headers and job payloads); [`redact`] (secret scrubbing).
//! - `strategies` (tests only): proptest strategies for the hand-written protobuf.

pub mod catalog;
pub mod classify;
pub mod config;
mod console;
mod db_thresholds;
pub mod db_watch;
mod error;
pub mod export;
mod exporters;
mod fast;
pub mod file;
mod gate;
pub mod init;
mod json_log;
mod otlp_transport;
pub mod propagation;
pub mod redact;
mod sdk;
mod span_ext;
#[cfg(test)]
mod strategies;

pub use catalog::Metrics;
pub use classify::{Backoff, Classify, ErrorClass};
pub use config::{
    Backend, Compression, ConfigError, OtlpProtocol, SamplerConfig, Signal, TelemetryConfig,
};
pub use console::span_kind_name;
pub use error::InitError;
pub use fast::spans::with_remote_parent;
pub use init::{Telemetry, TelemetryGuard, build, init, install_globals};
pub use opentelemetry_sdk::error::OTelSdkError;
pub use span_ext::SpanExt;

/// The semantic-conventions version the attribute names follow (`db.system.name`,
/// `db.query.text`, `messaging.operation.type`, `http.response.status_code`): the schema of
/// opentelemetry-semantic-conventions 0.32, stamped on the resource and on this crate's
/// instrumentation scope so a backend can translate names when the conventions move.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.36.0";

/// The instrumentation scope of every span and metric: this crate's name for the
/// application, its version and [`SCHEMA_URL`]. (Log records are scoped by their target, as
/// the OpenTelemetry appender does, with no version: a target names a module, often a
/// dependency's.)
pub(crate) fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build()
}

pub(crate) const SCOPE_NAME: &str = "vidscope";
