//! `GET /api/videos`: the library, newest first.

use axum::extract::State;
use serde::Serialize;

use super::VideoBody;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoList {
    pub videos: Vec<VideoBody>,
}

/// Any signed-in user (viewer or admin) sees every video, whatever its status, so an admin can
/// follow processing; players check `status` before offering playback. Unpaginated: a lesson
/// library is hundreds of rows, not millions.
#[utoipa::path(
    get,
    path = "/api/videos",
    operation_id = "listVideos",
    summary = "List the videos",
    tag = "videos",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every video, newest first", body = VideoList),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
) -> Result<Json<VideoList>, ApiError> {
    let videos = vidscope_core::videos::list(&state.db).await?;
    Ok(Json(VideoList {
        videos: videos.iter().map(VideoBody::from).collect(),
    }))
}
