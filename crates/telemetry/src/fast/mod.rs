//! The `fast` backend (the default, and telemetry turned off): tracing spans and events become
//! OpenTelemetry data through this crate's own span store, recording, log layer and export
//! pipeline, written for the performance budget. See the crate's layout in `lib.rs`.

pub(crate) mod error_events;
pub(crate) mod logs;
pub(crate) mod pipe;
pub(crate) mod spans;
pub(crate) mod store;
pub(crate) mod wire;
