//! `DELETE /api/videos/{id}`: an admin deletes a lesson.
//!
//! 204 once the row, its progress and its pending processing jobs are gone, in one
//! transaction that also queues the `video.purge` job which removes its objects (the video and
//! its thumbnail) from the store. Why in that order, and why the answer does not wait for the
//! store: `vidscope_core::videos::delete`.

use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry::KeyValue;
use vidscope_core::jobs::NewJob;
use vidscope_core::jobs::purge::PurgePayload;
use vidscope_core::videos;
use vidscope_telemetry::SpanExt as _;

use super::{admin_video_id, count_admin_action};
use crate::auth::AdminUser;
use crate::cache;
use crate::error::ApiError;
use crate::extract::Path;
use crate::openapi::path_segments::IdOrFilenameSegment;
use crate::openapi::responses::{
    AdminOnly, BadInput, DbFull, DbUnavailable, NoSuchVideo, Unauthorized,
};
use crate::state::AppState;

/// Delete a lesson, its progress, its pending jobs and (shortly after) its objects (admins)
#[utoipa::path(
    delete, path = "/api/videos/{id_or_filename}", operation_id = "deleteVideo",
    params(IdOrFilenameSegment),
    responses(
        (status = 204, description = "Deleted; the worker removes its objects from the store (retrying while the store is down)"),
        BadInput, Unauthorized, AdminOnly, NoSuchVideo, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(
    name = "api.videos.delete",
    skip_all,
    fields(user.id = %admin.id, video.id = tracing::field::Empty)
)]
pub async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(segment): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = remove(&state, &admin.id, &segment).await;
    count_admin_action(&state, "delete", &result);
    result
}

async fn remove(state: &AppState, admin_id: &str, segment: &str) -> Result<StatusCode, ApiError> {
    let id = admin_video_id(segment)?;
    tracing::Span::current().record("video.id", id.as_str());
    let purge = |_: &videos::Video, keys: Vec<String>| {
        NewJob::new(&PurgePayload {
            video_id: id.clone(),
            keys,
        })
    };
    let deleted = videos::delete(&state.db, &id, purge)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))?;
    cache::invalidate_video(&state.cache, &id).await;
    // Who did it, and what went: the log line and the span event of the audit trail.
    tracing::Span::current().add_event(
        "video.deleted",
        vec![
            KeyValue::new("user.id", admin_id.to_owned()),
            KeyValue::new("video.id", id.as_str().to_owned()),
            KeyValue::new("video.filename", deleted.video.filename.clone()),
            KeyValue::new("video.progress_rows", deleted.progress_rows as i64),
            KeyValue::new("video.pending_jobs", deleted.pending_jobs as i64),
            KeyValue::new("video.objects", deleted.object_keys.len() as i64),
        ],
    );
    tracing::info!(
        user.id = admin_id,
        video.id = id.as_str(),
        video.filename = deleted.video.filename.as_str(),
        video.progress_rows = deleted.progress_rows as i64,
        video.pending_jobs = deleted.pending_jobs as i64,
        video.objects = deleted.object_keys.len() as i64,
        "video.deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
