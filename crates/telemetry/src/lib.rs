//! vidscope's telemetry: one call ([`init`]) turns a [`TelemetryConfig`] into traces, metrics
//! and logs over OTLP (gRPC or HTTP) or into Collector-format JSON files, with `tracing` as the
//! API the rest of the workspace uses.
//!
//! # Layout
//! Two backends turn tracing spans and events into OpenTelemetry
//! (`VIDSCOPE_TELEMETRY_BACKEND`): `fast`, the default, written for the performance budget, and
//! `sdk`, the stock OpenTelemetry path kept as the reference. Each imports the backend-neutral
//! modules and never the other; [`init`](mod@init) alone chooses between them.
//! - [`init`](mod@init): builds the metric provider (the SDK's, on both backends) and the
//!   chosen backend, and the guard that flushes them; `backend` is what a backend hands back
//!   (the subscriber, its signals as a trait object).
//! - `fast/`: the fast backend, and telemetry turned off. `store` (the base subscriber, where
//!   spans live, instead of tracing-subscriber's `Registry`), `spans` (tracing spans as
//!   OpenTelemetry spans, sampled at creation), `logs` (tracing events as OTLP log records),
//!   `error_events` (error events mark their span), `gate` (which spans and events exist, and
//!   which log output takes an event), `pipe` (the bounded queue and export thread of spans
//!   and logs), `wire` (their protobuf, written by hand).
//! - `sdk/`: the stock backend. tracing-opentelemetry, the log appender bridge and the SDK's
//!   batch processors on tracing-subscriber's `Registry` (`mod.rs`), the exporters wrapped so
//!   their output matches the fast backend's (`export`), the processors' queue bound that
//!   counts what they drop (`bounded`), and the layers it adds (`layers`).
//! - Backend-neutral, what both build on: [`config`] (the `OTEL_*` and `VIDSCOPE_*` variables
//!   and the seeds' aliases, validated up front); `resource` (the resource, the scope and
//!   [`SCHEMA_URL`]); `filter` (`RUST_LOG`-style directives matched at module boundaries, and
//!   the span, log, error and stdout filters); `span_policy` (the sampling decision and the
//!   span limits); [`SpanExt`] (OpenTelemetry operations on a tracing span; each backend
//!   registers its implementation once, in its subscriber); [`redact`] (secret scrubbing, one
//!   rule over every value type); [`export`] (export counting and the file fallback around
//!   every exporter); `exporters` (where each signal goes, and the metric exporter); `otlp_transport` (the one OTLP sender
//!   of every signal on both backends: compression, retries within the export timeout,
//!   partial success);
//!   [`file`](mod@file) (the Collector file-exporter format with size rotation, whole lines
//!   only when the disk is full); `json_log`
//!   (the JSON lines on stdout); `console` (readable lines on stdout,
//!   `OTEL_*_EXPORTER=console`); [`export_request`] (an OTLP export request read as groups of
//!   items with their resource and scope); [`catalog`] (every metric instrument, enforced with views);
//!   [`db_watch`] (slow statements and N+1 repeats); [`classify`] (transient vs permanent
//!   errors, retry backoff); [`propagation`] (W3C trace context over HTTP headers and job
//!   payloads, and the remote parent of a new span).
//! - `fuzzing` (the `fuzzing` feature only): the private parsers' entry points for `fuzz/`.
//! - `strategies` (tests only): proptest strategies for the hand-written protobuf.

mod backend;
pub mod catalog;
pub mod classify;
pub mod config;
mod console;
pub mod db_watch;
mod error;
pub mod export;
pub mod export_request;
mod exporters;
mod fast;
pub mod file;
mod filter;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod init;
mod json_log;
mod otlp_transport;
pub mod propagation;
pub mod redact;
mod resource;
mod sampled_gauge;
mod sdk;
mod span_ext;
mod span_policy;
#[cfg(test)]
mod strategies;

pub use catalog::Metrics;
pub use classify::{Backoff, Classify, ErrorClass};
pub use config::{
    Backend, BatchSettings, Compression, ConfigError, OtlpProtocol, SamplerConfig, Signal,
    TelemetryConfig,
};
pub use console::span_kind_name;
pub use error::InitError;
pub use init::{Telemetry, TelemetryGuard, build, init, install_globals};
pub use opentelemetry_sdk::error::OTelSdkError;
pub use propagation::with_remote_parent;
pub use resource::SCHEMA_URL;
pub use sampled_gauge::SampledGauge;
pub use span_ext::SpanExt;
