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

/// Every `outcome` label [`count_action`] gives.
pub(crate) const ACTION_OUTCOMES: [&str; 3] = ["done", "refused", "not_found"];

/// Counts an admin's or a user's action (each of `actions`) on `counter` by how it ended: its
/// `outcome` label is `done`, `not_found` or `refused` (bad input, a state or a rule that does
/// not allow it, or too many tries). A failure of the service itself (the database down, say)
/// is not an outcome of the action and is not counted: the server span's error reports it.
pub(crate) fn count_action<T>(
    counter: &opentelemetry::metrics::Counter<u64>,
    actions: &[&'static str],
    result: &Result<T, ApiError>,
) {
    let outcome = match result {
        Ok(_) => "done",
        Err(ApiError::NotFound(_)) => "not_found",
        Err(
            ApiError::BadRequest { .. }
            | ApiError::Conflict { .. }
            | ApiError::NotReady(_)
            | ApiError::TooManyRequests { .. },
        ) => "refused",
        Err(_) => return,
    };
    for action in actions {
        counter.add(
            1,
            &[
                opentelemetry::KeyValue::new("action", *action),
                opentelemetry::KeyValue::new("outcome", outcome),
            ],
        );
    }
}
