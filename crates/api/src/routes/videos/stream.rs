//! `GET /api/videos/{id}/{filename}` (a video's `stream_url`) and the legacy
//! `GET /api/videos/{filename}`: the bytes of a video, inside an `api.videos.stream` span
//! (seed 002, ticket 1) with the `video.access_check`, `video.range_request` and
//! `video.s3_redirect` events.
//!
//! File names are not unique (issue 28), so the stream URL names the video by id; the file
//! name stays as its last segment (a saved file keeps it) and must match. The legacy form
//! serves the oldest video of that name: the one it meant when names were unique.
//!
//! Local store, or S3 with `VIDSCOPE_S3_STREAM=proxy`: the API streams the object (or the one
//! requested range, see [`super::range`]) straight from the store to the socket, never holding
//! the file in memory. S3 in redirect mode: a 302 to a presigned GET URL, so the bytes bypass
//! the API and the player's range requests go to S3. The presigned URL is a bearer credential
//! and goes only into the `Location` header, never into a span, event or log.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use opentelemetry::KeyValue;
use tracing::Instrument;
use tracing::field::Empty;
use vidscope_core::config::S3StreamMode;
use vidscope_core::storage::{ByteRange, ObjectBody, ObjectKey, ObjectMeta};
use vidscope_core::videos::{self, Filename, VideoId};
use vidscope_telemetry::SpanExt as _;

use super::range::{RangeHeader, if_range_matches};
use super::{invalid_filename, store_error};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::byte_ranges::{ByteServing, RangeHeaders};
use crate::openapi::responses::{StoreUnavailable, Unauthorized};
use crate::state::AppState;

/// Presigned URLs live this long when the store has no default (it always has, for S3).
const FALLBACK_PRESIGN_TTL: std::time::Duration = std::time::Duration::from_secs(900);

/// Which video a stream URL names.
pub(crate) enum Lookup<'a> {
    /// `/api/videos/{id}/{filename}`: the id decides, the name must match.
    ById { id: &'a str, filename: &'a str },
    /// The legacy `/api/videos/{filename}`.
    ByFilename(&'a str),
}

// The authentication result is taken as a `Result` so `video.access_check` (with
// `hasSession=false`) is recorded before the 401, as on the legacy route.
/// A video's bytes (its `stream_url`)
#[utoipa::path(
    get, path = "/api/videos/{id_or_filename}/{filename}", operation_id = "streamVideo",
    params(
        ("id_or_filename" = crate::openapi::formats::VideoId, Path, description = "The video id"),
        ("filename" = crate::openapi::formats::Filename, Path, description = "The video's file name (it must match)"),
        RangeHeaders,
    ),
    responses(
        (status = 200, description = "The whole file", content_type = "video/*", headers(
            ("Accept-Ranges" = String, description = "`bytes`"),
            ("ETag" = String, description = "When the store has one"),
        )),
        (status = 400, description = "Not a video id, or not a valid filename (e.g. path traversal)", body = ErrorBody),
        (status = 404, description = "No such video, another file name, or no file", body = ErrorBody),
        ByteServing, Unauthorized, StoreUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((id, filename)) =
        path.map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
    let lookup = Lookup::ById {
        id: &id,
        filename: &filename,
    };
    stream(&state, user, lookup, &headers).await
}

pub(crate) async fn stream(
    state: &AppState,
    user: Result<CurrentUser, ApiError>,
    lookup: Lookup<'_>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let span = tracing::info_span!(
        "api.videos.stream",
        video.filename = Empty,
        video.id = Empty,
        video.size = Empty,
        video.content_type = Empty,
        video.delivery = Empty,
        video.range.outcome = Empty,
        storage.backend = state.store.backend_name(),
    );
    serve(state, user, lookup, headers, &span)
        .instrument(span.clone())
        .await
}

async fn serve(
    state: &AppState,
    user: Result<CurrentUser, ApiError>,
    lookup: Lookup<'_>,
    headers: &HeaderMap,
    span: &tracing::Span,
) -> Result<Response, ApiError> {
    // Parsed before anything else: a traversal attempt never reaches the database or store.
    let (id, segment) = match lookup {
        Lookup::ById { id, filename } => {
            let id = VideoId::parse(id)
                .ok_or_else(|| ApiError::bad_request("invalid_id", "a video id is a UUID"))?;
            (Some(id), filename)
        }
        Lookup::ByFilename(segment) => (None, segment),
    };
    let filename = Filename::parse(segment).map_err(invalid_filename)?;
    span.record("video.filename", filename.as_str());
    span.add_event(
        "video.access_check",
        vec![
            KeyValue::new("filename", filename.as_str().to_owned()),
            KeyValue::new("hasSession", user.is_ok()),
        ],
    );
    let CurrentUser(_) = user?;

    let video = match &id {
        Some(id) => videos::get(&state.db, id)
            .await?
            .filter(|v| v.filename == filename.as_str()),
        None => videos::get_by_filename(&state.db, &filename).await?,
    }
    .ok_or_else(|| ApiError::NotFound(format!("video {filename} not found")))?;
    span.record("video.id", video.id.as_str());
    span.record("video.size", video.size_bytes);
    span.record("video.content_type", video.content_type.as_str());
    let key = video.object_key()?;

    if state.store.backend_name() == "s3" && state.settings.s3_stream == S3StreamMode::Redirect {
        span.record("video.delivery", "redirect");
        return redirect(state, &key, span).await;
    }
    span.record(
        "video.delivery",
        if state.store.backend_name() == "s3" {
            "proxy"
        } else {
            "local"
        },
    );
    // Size and validator first: a suffix range needs the size, `If-Range` the ETag.
    let meta = state.store.head(&key).await.map_err(store_error)?;
    let requested = requested_range(headers, &meta, span)?;
    let body = state
        .store
        .get(&key, requested)
        .await
        .map_err(store_error)?;
    respond(&video.content_type, &meta, body, span)
}

/// A 302 to a presigned GET URL (S3 in redirect mode).
async fn redirect(
    state: &AppState,
    key: &ObjectKey,
    span: &tracing::Span,
) -> Result<Response, ApiError> {
    let ttl = state.store.presign_ttl().unwrap_or(FALLBACK_PRESIGN_TTL);
    let url = state
        .store
        .presign_get(key, ttl)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("S3 store returned no URL")))?;
    span.add_event(
        "video.s3_redirect",
        vec![
            KeyValue::new("s3Key", key.as_str().to_owned()),
            // The seed's marker that a URL was made; the URL itself stays out of telemetry.
            KeyValue::new("signedUrl", "generated"),
        ],
    );
    let location = HeaderValue::from_str(&url)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("presigned URL is not a header")))?;
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        // The URL expires: nobody may cache the redirect longer than that.
        .header(header::CACHE_CONTROL, "private, no-store")
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.into()))
}

/// The one range to serve, if the request asked for one that still applies; its outcome goes
/// to `video.range.outcome`. A range past the end is a 416.
fn requested_range(
    headers: &HeaderMap,
    meta: &ObjectMeta,
    span: &tracing::Span,
) -> Result<Option<ByteRange>, ApiError> {
    let condition_holds = if_range_matches(
        headers.get(header::IF_RANGE),
        meta.etag.as_deref(),
        meta.last_modified,
        std::time::SystemTime::now(),
    );
    let (outcome, range) = match RangeHeader::parse(headers.get(header::RANGE)) {
        RangeHeader::Single(_) if !condition_holds => ("if_range_mismatch", None),
        RangeHeader::Single(spec) => match spec.resolve(meta.size) {
            Some(r) => ("partial", Some(r)),
            None => {
                span.record("video.range.outcome", "unsatisfiable");
                return Err(ApiError::RangeNotSatisfiable { size: meta.size });
            }
        },
        RangeHeader::Multiple => ("multiple_ignored", None),
        RangeHeader::Malformed => ("malformed_ignored", None),
        RangeHeader::Absent => return Ok(None),
    };
    span.record("video.range.outcome", outcome);
    Ok(range)
}

/// The 200 or 206 that streams `body` from the store.
fn respond(
    content_type: &str,
    meta: &ObjectMeta,
    body: ObjectBody,
    span: &tracing::Span,
) -> Result<Response, ApiError> {
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.content_length())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private");
    if let Some(etag) = body.meta.etag.as_deref()
        && let Ok(v) = HeaderValue::from_str(etag)
    {
        response = response.header(header::ETAG, v);
    }
    // From the `head` above: a ranged S3 read does not always carry it.
    if let Some(modified) = meta.last_modified.or(body.meta.last_modified) {
        response = response.header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(super::range::whole_seconds(modified)),
        );
    }
    response = match body.range {
        Some(r) => {
            span.add_event(
                "video.range_request",
                vec![
                    KeyValue::new("start", i64::try_from(r.start).unwrap_or(i64::MAX)),
                    KeyValue::new("end", i64::try_from(r.end_inclusive).unwrap_or(i64::MAX)),
                    KeyValue::new(
                        "totalSize",
                        i64::try_from(body.meta.size).unwrap_or(i64::MAX),
                    ),
                ],
            );
            response.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end_inclusive, body.meta.size),
            )
        }
        None => response.status(StatusCode::OK),
    };
    response
        .body(Body::from_stream(body.stream))
        .map_err(|e| ApiError::Internal(e.into()))
}
