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

/// Every value [`action_outcome`] gives.
pub(crate) const ACTION_OUTCOMES: [&str; 3] = ["done", "refused", "not_found"];

/// How an admin's action ended, for the `outcome` label of the action counters
/// (`video.admin_actions_total`, `user.account_actions_total`): `refused` is bad input, a state
/// or a rule that does not allow it, or too many tries. `None` for a failure of the service
/// itself (the database down, say): that is not an outcome of the action, and the server
/// span's error reports it.
pub(crate) fn action_outcome<T>(result: &Result<T, ApiError>) -> Option<&'static str> {
    match result {
        Ok(_) => Some("done"),
        Err(ApiError::NotFound(_)) => Some("not_found"),
        Err(
            ApiError::BadRequest { .. }
            | ApiError::Conflict { .. }
            | ApiError::NotReady(_)
            | ApiError::TooManyRequests { .. },
        ) => Some("refused"),
        Err(_) => None,
    }
}
