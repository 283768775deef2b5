//! `GET /api/videos/{id_or_filename}`: one route for two resources, because axum (matchit)
//! cannot register two patterns for the same path shape. A segment that parses as a UUID is a
//! video id and gets the metadata; anything else is a filename and gets the bytes
//! ([`super::stream`]; the legacy form of a stream URL: the oldest video of that name).
//! Filenames always carry an extension, so the two never overlap.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use vidscope_core::videos::{self, VideoId};

use super::VideoBody;
use crate::auth::CurrentUser;
use crate::cache;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::openapi::byte_ranges::{ByteServing, RangeHeaders};
use crate::openapi::responses::{StoreUnavailable, Unauthorized};
use crate::state::AppState;

// The authentication result is taken as a `Result` so the stream branch can record
// `video.access_check` (with `hasSession=false`) before answering 401; the extractor has
// already put the `auth.failed` event on the server span either way.
/// A video's metadata (by id) or its bytes (by filename)
#[utoipa::path(
    get, path = "/api/videos/{id_or_filename}", operation_id = "getVideo",
    params(
        ("id_or_filename" = crate::openapi::formats::VideoIdOrFilename, Path, description = "A video id (UUID) for its metadata, or a filename for the bytes of the oldest video uploaded from a file of that name (legacy: file names are not unique, use `stream_url`)"),
        RangeHeaders,
    ),
    responses(
        (status = 200, description = "An id: the video's metadata. A filename: the whole file", content(
            (VideoBody = "application/json"),
            ("video/*"),
        ), headers(
            ("Accept-Ranges" = String, description = "`bytes` (file only)"),
            ("ETag" = String, description = "File only, when the store has one"),
        )),
        (status = 400, description = "Neither an id nor a valid filename (e.g. path traversal)", body = ErrorBody),
        (status = 404, description = "No such video or file", body = ErrorBody),
        ByteServing, Unauthorized, StoreUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match VideoId::parse(&segment) {
        Some(id) => {
            let CurrentUser(_) = user?;
            metadata(&state, &id).await.map(IntoResponse::into_response)
        }
        None => {
            let lookup = super::stream::Lookup::ByFilename(&segment);
            super::stream::stream(&state, user, lookup, &headers).await
        }
    }
}

/// Read through the cache: players ask for a video's metadata on every page load, while it
/// only changes when the worker moves the video on (which invalidates it).
pub(crate) async fn metadata(state: &AppState, id: &VideoId) -> Result<Json<VideoBody>, ApiError> {
    let key = cache::video_key(id);
    let body = state
        .cache
        .get_or_load(&key, &key, cache::VIDEO_TTL, || async {
            Ok(videos::get(&state.db, id)
                .await?
                .as_ref()
                .map(VideoBody::from))
        })
        .await?;
    body.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))
}
