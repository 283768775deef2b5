//! Test harness for vidscope: the real application on port 0 with its own database, an OTLP
//! capture receiver standing in for the Collector, and an S3-compatible server.
//!
//! Tests use Tokio's default current-thread runtime: [`spawn_app`] installs the app's tracing
//! subscriber for the test's thread only, so tests running in parallel in one process each see
//! their own telemetry. The capture receiver runs on its own thread and the exporters' gRPC
//! connections on a shared background runtime, so flushing or dropping telemetry never waits
//! on the (blocked) test thread.

pub mod app;
pub mod otlp;
pub mod s3;

pub use app::{LogBuffer, TestApp, TestAppBuilder, TestUser, background, spawn_app};
