//! Handlers, one resource per module and one verb per file.

pub mod auth;
pub mod health;
pub mod openapi;
pub mod progress;
pub mod telemetry;
pub mod test_otel;
pub mod trace_viewer;
pub mod upload;
pub mod videos;
pub mod ws;
