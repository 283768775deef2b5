//! `GET /api/videos/{id_or_filename}`: one route for two resources, because axum (matchit)
//! cannot register two patterns for the same path shape. A segment that parses as a UUID is a
//! video id and gets the metadata; anything else is a filename and gets the bytes
//! ([`super::stream`]). Filenames always carry an extension, so the two never overlap.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use vidscope_core::videos::{self, VideoId};

use super::VideoBody;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

/// The authentication result is taken as a `Result` so the stream branch can record
/// `video.access_check` (with `hasSession=false`) before answering 401; the extractor has
/// already put the `auth.failed` event on the server span either way.
pub async fn get(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(segment) = path.map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
    match VideoId::parse(&segment) {
        Some(id) => {
            let CurrentUser(_) = user?;
            metadata(&state, &id).await.map(IntoResponse::into_response)
        }
        None => super::stream::stream(&state, user, &segment, &headers).await,
    }
}

async fn metadata(state: &AppState, id: &VideoId) -> Result<Json<VideoBody>, ApiError> {
    match videos::get(&state.db, id).await? {
        Some(v) => Ok(Json(VideoBody::from(&v))),
        None => Err(ApiError::NotFound(format!("video {id} not found"))),
    }
}
