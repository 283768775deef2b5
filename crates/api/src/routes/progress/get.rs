//! `GET /api/progress/{videoId}`: the caller's resume position.
//!
//! A video the caller never saved progress for answers 200 with a zero position and
//! `updatedAt: null` (the player starts from the beginning without treating it as an error);
//! an unknown video is a 404, an id that is not a UUID a 400.

use axum::extract::{Path, State};
use vidscope_core::CoreError;
use vidscope_core::progress::{self, find_video, parse_video_id};

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::path_segments::VideoIdSegment;
use crate::openapi::responses::{BadInput, DbUnavailable, NoSuchVideo, Unauthorized};
use crate::routes::progress::ProgressBody;
use crate::state::AppState;

/// The caller's resume position in a video
#[utoipa::path(
    get, path = "/api/progress/{video_id}", operation_id = "getProgress",
    params(VideoIdSegment),
    responses(
        (status = 200, description = "The caller's resume position (zero and `updatedAt: null` if never saved)", body = ProgressBody),
        BadInput, Unauthorized, NoSuchVideo, DbUnavailable,
    )
)]
#[tracing::instrument(
    name = "api.progress.get",
    skip_all,
    fields(user.id = %user.id, video.id = tracing::field::Empty)
)]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(video_id): Path<String>,
) -> Result<Json<ProgressBody>, ApiError> {
    let video_id = parse_video_id("videoId", &video_id)?;
    tracing::Span::current().record("video.id", video_id.as_str());
    find_video(&state.db, &video_id)
        .await?
        .ok_or(CoreError::NotFound("video"))?;
    let stored = progress::get(&state.db, &user.id, video_id.as_str()).await?;
    Ok(Json(match &stored {
        Some(p) => ProgressBody::from(p),
        None => ProgressBody {
            video_id: video_id.as_str().to_owned(),
            position_seconds: 0.0,
            watch_time: 0.0,
            completed: false,
            updated_at: None,
        },
    }))
}
