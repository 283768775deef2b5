//! Handlers, one resource per module and one verb per file.

pub mod account;
pub mod auth;
pub mod health;
pub mod openapi;
pub mod progress;
pub mod telemetry;
pub mod test_otel;
pub mod trace_viewer;
pub mod upload;
pub mod users;
pub mod videos;
pub mod ws;

use crate::error::ApiError;

/// A list's `?limit=`: `default` when absent, else a whole number from 1 to `max`. The 400
/// names the parameter and shows the start of what was sent.
pub(crate) fn limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(v) = raw else {
        return Ok(default);
    };
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            let sent: String = v.chars().take(32).collect();
            ApiError::bad_request(
                "invalid_parameter",
                format!("limit must be a whole number from 1 to {max} (got {sent:?})"),
            )
        })
}
