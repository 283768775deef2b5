//! Test harness for vidscope: the real application on port 0 with its own database, an OTLP
//! capture receiver standing in for the Collector, and an S3-compatible server.
//!
//! Tests use Tokio's default current-thread runtime: [`spawn_app`] installs the app's tracing
//! subscriber for the test's thread only, so tests running in parallel in one process each see
//! their own telemetry. The capture receiver runs on its own thread and the exporters' gRPC
//! connections on a shared background runtime, so flushing or dropping telemetry never waits
//! on the (blocked) test thread.

pub mod app;
pub mod command;
pub mod db;
pub mod disk;
pub mod files;
pub mod media;
pub mod otlp;
pub mod router;
pub mod s3;
pub mod seen;
pub mod snapshot;

pub use app::{
    LogBuffer, TestApp, TestAppBuilder, TestUser, ThreadTelemetry, background, expect_error,
    spawn_app, spawn_app_with, with_backend_from_env,
};

/// The ids a response's W3C `traceresponse` header (`00-<trace>-<span>-<flags>`) names.
/// Panics with the header when it is missing or malformed: tests want to see why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceResponse {
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
}

impl TraceResponse {
    pub fn of(headers: &reqwest::header::HeaderMap) -> Self {
        let raw = headers
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no traceresponse header in {headers:?}"));
        match raw.split('-').collect::<Vec<_>>()[..] {
            ["00", trace, span, flags] => Self {
                trace_id: trace.to_owned(),
                span_id: span.to_owned(),
                sampled: flags == "01",
            },
            _ => panic!("malformed traceresponse {raw:?}"),
        }
    }
}
