//! The vidscope HTTP API: an axum service whose every request is a trace.
//!
//! # Layout
//! - [`startup`]: [`Application`] binds the listener (port 0 in tests) and runs until a
//!   shutdown future resolves.
//! - [`router`]: every route, in one place.
//! - `routes/<resource>/<verb>.rs`: the handlers.
//! - [`error`]: the one error type and its HTTP mapping.
//! - [`openapi`]: the OpenAPI document, collected from the handlers' `#[utoipa::path]`.
//! - [`http_telemetry`]: the server span, `traceresponse` and the request-duration metric.
//! - [`shutdown`]: the deadline after which requests still running on SIGTERM are aborted.
//! - `fuzzing` (the `fuzzing` feature only): the private parsers' entry points for `fuzz/`.

pub mod auth;
pub mod cache;
pub mod client_ip;
pub mod error;
pub mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http_telemetry;
pub mod limits;
pub mod openapi;
pub mod pages;
pub mod rate_limit;
pub mod realtime;
pub mod router;
pub mod routes;
pub mod security_headers;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod status_bridge;
pub mod trace_viewer;

pub use startup::Application;
pub use state::AppState;
