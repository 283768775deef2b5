//! `GET /api/trace-viewer/traces/{trace_id}`: every span of one trace, for the waterfall.

use axum::extract::State;

use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::openapi::path_segments::TraceIdSegment;
use crate::state::AppState;
use crate::trace_viewer::TraceDetail;

/// One trace's spans and events
#[utoipa::path(
    get, path = "/api/trace-viewer/traces/{trace_id}", operation_id = "getTrace",
    params(TraceIdSegment),
    responses(
        (status = 200, description = "The trace", body = TraceDetail),
        (status = 404, description = "Not in the files (never written, or rotated out)", body = ErrorBody),
        crate::openapi::responses::BadInput, crate::openapi::responses::Unauthorized,
        crate::openapi::responses::AdminOnly, crate::openapi::responses::DbUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceDetail>, ApiError> {
    if trace_id.len() != 32
        || !trace_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "traceId must be 32 lowercase hex digits",
        ));
    }
    let snapshot = super::snapshot(&state).await?;
    snapshot
        .detail(&trace_id, state.trace_viewer.grafana_url.as_deref())
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "trace {trace_id} not found in the trace files (not written yet, or rotated out)"
            ))
        })
}
