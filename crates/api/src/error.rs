//! Errors map to HTTP in this one place. 4xx bodies say what was wrong; 5xx bodies are
//! generic and the cause goes to the span and the log line of the request's trace.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vidscope_core::CoreError;
use vidscope_telemetry::classify::{Classify, ErrorClass, record_error};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: &'static str,
        cause: String,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn unavailable(message: &str) -> Response {
    let mut r = body(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let span = tracing::Span::current();
        match self {
            ApiError::BadRequest { code, message } => body(StatusCode::BAD_REQUEST, code, &message),
            ApiError::NotFound(m) => body(StatusCode::NOT_FOUND, "not_found", &m),
            ApiError::Unavailable { dependency, cause } => {
                record_error(
                    &span,
                    ErrorClass::Transient,
                    "dependency.unavailable",
                    &cause,
                );
                tracing::warn!(dependency, cause = %cause, "dependency unavailable");
                unavailable(&format!("{dependency} is unavailable, retry later"))
            }
            ApiError::Core(e) => match &e {
                CoreError::Invalid(m) => body(StatusCode::BAD_REQUEST, "invalid", m),
                CoreError::Conflict(what) => body(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("{what} already exists"),
                ),
                CoreError::NotFound(what) => body(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("{what} not found"),
                ),
                _ if e.class() == ErrorClass::Transient => {
                    record_error(&span, e.class(), e.error_type(), &e.to_string());
                    tracing::warn!(error = %e, error.type = e.error_type(), "dependency unavailable");
                    unavailable("a dependency is unavailable, retry later")
                }
                _ => {
                    record_error(&span, e.class(), e.error_type(), &e.to_string());
                    tracing::error!(error = %e, error.type = e.error_type(), "request failed");
                    body(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal server error",
                    )
                }
            },
            ApiError::Internal(e) => {
                record_error(&span, ErrorClass::Permanent, "internal", &format!("{e:#}"));
                tracing::error!(error = format!("{e:#}"), "request failed");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}

/// The JSON body of a route that does not exist.
pub fn route_not_found(method: &str, path: &str) -> Response {
    body(
        StatusCode::NOT_FOUND,
        "route_not_found",
        &format!("no route for {method} {path}"),
    )
}
