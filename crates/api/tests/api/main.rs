//! Integration tests: the real app on port 0, its own database, telemetry captured over OTLP.
//! One binary so the workspace links once.

// Written once here rather than on each long test.
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]

mod accounts;
mod auth;
mod authz;
mod backends;
mod collector_down;
mod db_watch;
mod faults;
mod file_mode;
mod health;
mod helpers;
mod http_metrics;
mod lessons;
mod limits;
mod list_scale;
mod migrate;
mod openapi;
mod pages;
mod player_telemetry;
mod progress;
mod redaction;
mod sampling;
mod test_otel;
mod trace_viewer;
mod trace_viewer_crosscheck;
mod upload;
mod videos;
mod ws;
