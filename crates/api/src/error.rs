//! Errors map to HTTP in this one place. 4xx bodies say what was wrong; 5xx bodies are
//! generic and the cause goes to the span and the log line of the request's trace.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
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
    /// No valid session. The reason goes to the `auth.failed` event, not the body.
    #[error("authentication required")]
    Unauthorized,
    /// A refused login; same answer for unknown e-mail and wrong password.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    /// A 403 whose code says why (`account_disabled`, `password_change_required`), so a
    /// client can act on it.
    #[error("{message}")]
    Denied {
        code: &'static str,
        message: &'static str,
    },
    /// A 409: the request is well formed but the state of things does not allow it; the code
    /// says which rule (`last_admin`, `cannot_disable_self`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The resource exists but is not in a state that allows this (e.g. a video still being
    /// processed).
    #[error("{0}")]
    NotReady(String),
    #[error("too many attempts, retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client went quiet in the middle of a request body.
    #[error("{0}")]
    RequestTimeout(String),
    /// A `Range` the object cannot satisfy; `size` goes into `Content-Range: bytes */size`.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// The shutdown deadline passed while the request was still running (see
    /// [`crate::shutdown`]); what it had stored is removed.
    #[error("the server is shutting down: the request was abandoned and nothing was kept; retry")]
    ShuttingDown,
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

// A type rather than a `json!` so the OpenAPI document describes exactly what is sent.
/// Every error answer of the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable, machine-readable (`unauthorized`, `invalid_json`, `not_found`, ...).
    pub code: &'a str,
    /// For people: 4xx messages name the field or parameter at fault; 5xx are generic.
    pub message: &'a str,
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail { code, message },
        }),
    )
        .into_response()
}

fn unavailable(message: &str) -> Response {
    let mut r = body(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

impl ApiError {
    /// A 400 naming what was wrong with the input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl ApiError {
    /// What a client is told of a 4xx: the error's own text, or a longer one saying what to do.
    fn client_message(&self) -> String {
        match self {
            ApiError::Unauthorized => {
                "authentication required: log in with POST /api/auth/login".to_owned()
            }
            ApiError::InvalidCredentials => "the e-mail or password is wrong".to_owned(),
            ApiError::RangeNotSatisfiable { size } => {
                format!("the requested range is outside the object ({size} bytes)")
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (status, code) = match &self {
            ApiError::Unavailable { dependency, cause } => {
                return dependency_unavailable(dependency, cause);
            }
            ApiError::Core(e) => return core_error(e),
            ApiError::Internal(e) => return internal_error(e),
            ApiError::BadRequest { code, .. } => (S::BAD_REQUEST, *code),
            ApiError::NotFound(_) => (S::NOT_FOUND, "not_found"),
            ApiError::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            ApiError::InvalidCredentials => (S::UNAUTHORIZED, "invalid_credentials"),
            ApiError::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            ApiError::Denied { code, .. } => (S::FORBIDDEN, *code),
            ApiError::Conflict { code, .. } => (S::CONFLICT, *code),
            ApiError::NotReady(_) => (S::CONFLICT, "not_ready"),
            ApiError::TooManyRequests { .. } => (S::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout(_) => (S::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UnsupportedMediaType(_) => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RangeNotSatisfiable { .. } => {
                (S::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::ShuttingDown => (S::SERVICE_UNAVAILABLE, "shutting_down"),
        };
        let mut r = body(status, code, &self.client_message());
        match self {
            ApiError::TooManyRequests { retry_after_secs } => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::ShuttingDown => {
                // Another replica takes the retry; this connection is not reused.
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        r
    }
}

/// A 503 for a dependency that did not answer; the cause goes to the span and the log.
fn dependency_unavailable(dependency: &str, cause: &str) -> Response {
    record_error(
        &tracing::Span::current(),
        ErrorClass::Transient,
        "dependency.unavailable",
        cause,
    );
    tracing::warn!(dependency, cause = %cause, "dependency unavailable");
    unavailable(&format!("{dependency} is unavailable, retry later"))
}

/// The core's errors: bad input, conflicts and misses say so; a transient failure is a 503
/// (a 507 when it is a lack of space), anything else a generic 500, all three recorded on the
/// span. The bodies name the dependency, never its error.
fn core_error(e: &CoreError) -> Response {
    match e {
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
        _ => {
            record_error(
                &tracing::Span::current(),
                e.class(),
                e.error_type(),
                &e.to_string(),
            );
            let dependency = e.dependency().unwrap_or("a dependency");
            if e.is_out_of_space() {
                // Not a warning: only an operator freeing space ends it.
                tracing::error!(error = %e, error.type = e.error_type(), "out of storage space");
                body(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    &format!(
                        "{dependency} is out of storage space; nothing was saved, retry once space is freed"
                    ),
                )
            } else if e.class() == ErrorClass::Transient {
                tracing::warn!(error = %e, error.type = e.error_type(), "dependency unavailable");
                unavailable(&format!("{dependency} is unavailable, retry later"))
            } else {
                tracing::error!(error = %e, error.type = e.error_type(), "request failed");
                internal_body()
            }
        }
    }
}

fn internal_error(e: &anyhow::Error) -> Response {
    let cause = format!("{e:#}");
    record_error(
        &tracing::Span::current(),
        ErrorClass::Permanent,
        "internal",
        &cause,
    );
    tracing::error!(error = cause, "request failed");
    internal_body()
}

fn internal_body() -> Response {
    body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal server error",
    )
}

/// The JSON body of a route that does not exist.
pub fn route_not_found(method: &str, path: &str) -> Response {
    body(
        StatusCode::NOT_FOUND,
        "route_not_found",
        &format!("no route for {method} {path}"),
    )
}

/// A body over the router's global limit ([`crate::limits::BODY_LIMIT`]).
fn body_too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body exceeds the limit of {} bytes",
        crate::limits::BODY_LIMIT
    ))
}

/// Gives the answers that tower layers and the router make themselves (the body limit's 413,
/// the timeout's 408, a wrong method's 405: plain text or empty) the API's JSON error body, so
/// a client can rely on one error shape. Headers are kept (the 405's `Allow`). Responses that
/// already are JSON pass through untouched.
pub async fn json_layer_errors(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let mut json = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => body_too_large().into_response(),
        StatusCode::REQUEST_TIMEOUT => body(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long and was abandoned",
        ),
        StatusCode::METHOD_NOT_ALLOWED => body(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take this method; `Allow` lists the ones it takes",
        ),
        _ => return response,
    };
    let (parts, _) = response.into_parts();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        // A body cut off by the size limit (no Content-Length, so the limit layer could not
        // answer up front) is too large, not malformed.
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return body_too_large();
        }
        match r {
            J::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ),
            // The body text names the field and the problem ("missing field `email`").
            other => ApiError::bad_request("invalid_json", other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json_of(r: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn layer_answers_get_the_json_error_body() {
        // The timeout layer's empty 408 and the body limit's plain-text 413.
        let timeout = StatusCode::REQUEST_TIMEOUT.into_response();
        let r = json_layer_errors(timeout).await;
        assert_eq!(r.status(), 408);
        assert_eq!(json_of(r).await["error"]["code"], "request_timeout");

        let limit = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let r = json_layer_errors(limit).await;
        assert_eq!(r.status(), 413);
        assert_eq!(json_of(r).await["error"]["code"], "payload_too_large");

        // A JSON answer, even with one of those statuses, is left alone.
        let own = ApiError::PayloadTooLarge("a player batch is at most 65536 bytes".into());
        let r = json_layer_errors(own.into_response()).await;
        let body = json_of(r).await;
        assert_eq!(
            body["error"]["message"],
            "a player batch is at most 65536 bytes"
        );
        // The router's empty 405 keeps its `Allow`.
        let wrong = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
        )
            .into_response();
        let r = json_layer_errors(wrong).await;
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(json_of(r).await["error"]["code"], "method_not_allowed");
        // Other statuses are not touched.
        let r = json_layer_errors(StatusCode::NO_CONTENT.into_response()).await;
        assert_eq!(r.status(), 204);
    }
}
