//! `GET /api/trace-viewer/traces`: recent traces, newest first, filtered.

use axum::extract::State;
use serde::Deserialize;

use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::trace_viewer::{Filter, TraceList};

/// Traces listed without `?limit=`.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest `?limit=`.
pub const MAX_LIMIT: usize = 1000;

/// The query as sent: strings, so a bad value gets a JSON 400 naming the parameter.
#[derive(Debug, Default, Deserialize)]
pub struct RawFilter {
    video: Option<String>,
    user: Option<String>,
    service: Option<String>,
    errors: Option<String>,
    limit: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl RawFilter {
    fn parse(self) -> Result<Filter, ApiError> {
        let errors_only = match self.errors.as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("errors must be true or false (got {other:?})"),
                ));
            }
        };
        // Blank, like the other parameters, counts as not given.
        let limit =
            crate::routes::limit(non_empty(self.limit).as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        Ok(Filter {
            video: non_empty(self.video),
            user: non_empty(self.user),
            service: non_empty(self.service),
            errors_only,
            limit,
        })
    }
}

/// Recent traces from the telemetry files, newest first
#[utoipa::path(
    get, path = "/api/trace-viewer/traces", operation_id = "listTraces",
    params(
        ("video" = Option<String>, Query, description = "Only traces with this `video.id` / `lesson.id`"),
        ("user" = Option<String>, Query, description = "Only traces with this `user.id`"),
        ("service" = Option<String>, Query, description = "Only traces with a span of this `service.name`"),
        ("errors" = Option<bool>, Query, description = "`true`: only traces with an error span"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many traces (default 50)"),
    ),
    responses(
        (status = 200, description = "The traces", body = TraceList),
        (status = 400, description = "A parameter is not valid (the message names it)", body = ErrorBody),
        crate::openapi::responses::Unauthorized, crate::openapi::responses::AdminOnly,
        crate::openapi::responses::DbUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Query(raw): Query<RawFilter>,
) -> Result<Json<TraceList>, ApiError> {
    let filter = raw.parse()?;
    let snapshot = super::snapshot(&state).await?;
    Ok(Json(
        snapshot.list(&filter, state.trace_viewer.grafana_url.as_deref()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(errors: Option<&str>, limit: Option<&str>) -> RawFilter {
        RawFilter {
            errors: errors.map(str::to_owned),
            limit: limit.map(str::to_owned),
            ..RawFilter::default()
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        for (r, name) in [
            (raw(Some("yes"), None), "errors"),
            (raw(None, Some("0")), "limit"),
            (raw(None, Some("1001")), "limit"),
            (raw(None, Some("ten")), "limit"),
        ] {
            match r.parse() {
                Err(ApiError::BadRequest { message, .. }) => {
                    assert!(message.starts_with(name), "{message}")
                }
                other => panic!("{name}: expected a 400, got {other:?}"),
            }
        }
        let f = raw(Some("true"), Some("7")).parse().unwrap();
        assert!(f.errors_only);
        assert_eq!(f.limit, 7);
        assert_eq!(raw(None, None).parse().unwrap().limit, DEFAULT_LIMIT);
    }
}
