//! `GET /api/videos/{id}/thumbnail`: the image the worker made, served from the store. The
//! path parameter keeps the name of the sibling route's (`{id_or_filename}`) because the router
//! requires one name per position; only ids are accepted here.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use vidscope_core::storage::ObjectKey;
use vidscope_core::videos::{self, VideoId};

use super::store_error;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::openapi::path_segments::IdOrFilenameSegment;
use crate::openapi::responses::{BadInput, StoreUnavailable, Unauthorized};
use crate::state::AppState;

/// A video's thumbnail
#[utoipa::path(
    get, path = "/api/videos/{id_or_filename}/thumbnail", operation_id = "getThumbnail",
    params(IdOrFilenameSegment),
    responses(
        (status = 200, description = "The thumbnail image", content_type = "image/*"),
        (status = 404, description = "No such video, or no thumbnail yet", body = ErrorBody),
        BadInput, Unauthorized, StoreUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
    Path(segment): Path<String>,
) -> Result<Response, ApiError> {
    let id = VideoId::parse(&segment)
        .ok_or_else(|| ApiError::bad_request("invalid_id", "a video id is a UUID"))?;
    let video = videos::get(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))?;
    let key = video
        .thumbnail_key
        .as_deref()
        .ok_or_else(|| ApiError::NotFound(format!("video {id} has no thumbnail yet")))?;
    let key = ObjectKey::parse(key).map_err(|e| ApiError::Core(e.into()))?;
    let body = state.store.get(&key, None).await.map_err(store_error)?;
    let content_type = body
        .meta
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.content_length())
        .header(header::CACHE_CONTROL, "private, max-age=300")
        .body(Body::from_stream(body.stream))
        .map_err(|e| ApiError::Internal(e.into()))
}
