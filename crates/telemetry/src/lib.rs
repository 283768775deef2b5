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
//! - `exporters`: the stock OTLP exporters (metrics on both backends, spans and logs on `sdk`)
//!   and where each signal goes.
//! - Shared: `json_log` (the JSON lines on stdout); [`export`] (export counting, the metric
//!   exporter with its fallback); [`file`](mod@file) (the Collector file-exporter format with size
//!   rotation); `console` (readable lines on stdout, `OTEL_*_EXPORTER=console`); [`catalog`]
//!   (every metric instrument, enforced with views); [`db_watch`] (slow statements and N+1
//!   repeats); [`classify`] (transient vs permanent errors, retry backoff); [`propagation`]
//!   (W3C trace context over HTTP headers and job payloads); [`redact`] (secret scrubbing).
//! - `strategies` (tests only): proptest strategies for the hand-written protobuf.

mod backend;
pub mod catalog;
pub mod classify;
pub mod config;
mod console;
pub mod db_watch;
mod error;
pub mod export;
mod exporters;
mod fast;
pub mod file;
mod filter;
pub mod init;
mod json_log;
pub mod propagation;
pub mod redact;
mod resource;
mod sdk;
mod span_ext;
mod span_policy;
#[cfg(test)]
mod strategies;

pub use catalog::Metrics;
pub use classify::{Backoff, Classify, ErrorClass};
pub use config::{Backend, ConfigError, OtlpProtocol, SamplerConfig, Signal, TelemetryConfig};
pub use console::span_kind_name;
pub use error::InitError;
pub use init::{Telemetry, TelemetryGuard, build, init, install_globals};
pub use opentelemetry_sdk::error::OTelSdkError;
pub use propagation::with_remote_parent;
pub use resource::SCHEMA_URL;
pub use span_ext::SpanExt;
