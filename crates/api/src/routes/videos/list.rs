//! `GET /api/videos`: the library, newest first.

use axum::extract::State;
use serde::Serialize;

use super::VideoBody;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct VideoList {
    pub videos: Vec<VideoBody>,
}

/// Any signed-in user (viewer or admin) sees every video, whatever its status, so an admin can
/// follow processing; players check `status` before offering playback. Unpaginated: a lesson
/// library is hundreds of rows, not millions.
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
) -> Result<Json<VideoList>, ApiError> {
    let videos = vidscope_core::videos::list(&state.db).await?;
    Ok(Json(VideoList {
        videos: videos.iter().map(VideoBody::from).collect(),
    }))
}
