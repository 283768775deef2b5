//! `POST /api/videos/{id}/reprocess`: an admin runs a `failed` lesson's processing again.
//!
//! 202 with the video, back to `uploaded`, once its probe job is in the outbox (in the same
//! transaction; the thumbnail job follows the probe as after an upload). A lesson in any other
//! state is a 409 naming the state: only a failure is worth repeating, and a lesson being
//! processed must not get a second pipeline.

use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry::KeyValue;
use vidscope_core::jobs::NewJob;
use vidscope_core::jobs::probe::ProbePayload;
use vidscope_core::videos::{self, Reprocess};
use vidscope_telemetry::SpanExt as _;

use super::{VideoBody, admin_video_id, count_admin_action};
use crate::auth::AdminUser;
use crate::cache;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::path_segments::IdOrFilenameSegment;
use crate::openapi::responses::{
    AdminOnly, BadInput, DbFull, DbUnavailable, NoSuchVideo, Unauthorized,
};
use crate::state::AppState;

/// Process a failed lesson again (admins)
#[utoipa::path(
    post, path = "/api/videos/{id_or_filename}/reprocess", operation_id = "reprocessVideo",
    params(IdOrFilenameSegment),
    responses(
        (status = 202, description = "Queued; the video is `uploaded` again", body = VideoBody),
        (status = 409, description = "The lesson is not `failed`; the message names its status", body = crate::error::ErrorBody),
        BadInput, Unauthorized, AdminOnly, NoSuchVideo, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(
    name = "api.videos.reprocess",
    skip_all,
    fields(user.id = %admin.id, video.id = tracing::field::Empty, video.status = tracing::field::Empty)
)]
pub async fn post(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(segment): Path<String>,
) -> Result<(StatusCode, Json<VideoBody>), ApiError> {
    let result = reprocess(&state, &admin.id, &segment).await;
    count_admin_action(&state, "reprocess", &result);
    result
}

async fn reprocess(
    state: &AppState,
    admin_id: &str,
    segment: &str,
) -> Result<(StatusCode, Json<VideoBody>), ApiError> {
    let id = admin_video_id(segment)?;
    let span = tracing::Span::current();
    span.record("video.id", id.as_str());
    let job = NewJob::new(&ProbePayload {
        video_id: id.clone(),
    });
    let job_id = job.id.clone();
    match videos::reprocess(&state.db, &id, job).await? {
        Reprocess::Queued(video) => {
            cache::invalidate_video(&state.cache, &id).await;
            span.add_event(
                "video.reprocess_requested",
                vec![
                    KeyValue::new("user.id", admin_id.to_owned()),
                    KeyValue::new("video.id", id.as_str().to_owned()),
                    KeyValue::new("job.id", job_id.clone()),
                ],
            );
            tracing::info!(
                user.id = admin_id,
                video.id = id.as_str(),
                job.id = job_id.as_str(),
                "video.reprocess_requested"
            );
            Ok((StatusCode::ACCEPTED, Json(VideoBody::from(&*video))))
        }
        Reprocess::NotFound => Err(ApiError::NotFound(format!("video {id} not found"))),
        Reprocess::NotFailed(status) => {
            span.record("video.status", status.as_str());
            Err(ApiError::NotReady(format!(
                "only a failed lesson can be reprocessed; this one is {}",
                status.as_str()
            )))
        }
    }
}
