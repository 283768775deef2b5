//! `GET /player/{video_id}`: the lesson player (seeds 000/001).
//!
//! The page carries its own trace context as `<meta name="traceparent">`: the same value as the
//! response's `traceresponse` header, which a script cannot read for the page it runs in. The
//! player sends it with every request (and in the page-hide beacon's body), so its progress
//! saves and its `video.session` events continue the trace of the page load.

use std::sync::LazyLock;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};
use vidscope_core::videos::VideoId;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::propagation::traceresponse;

use crate::auth::MaybeUser;
use crate::error::{ApiError, ErrorBody};
use crate::routes::videos::get::metadata;
use crate::state::AppState;

static TEMPLATE: LazyLock<String> = LazyLock::new(|| {
    super::with_css(include_str!("../../assets/player.html"))
        .replace("/*PLAYER_JS*/", include_str!("../../assets/player.js"))
});

#[utoipa::path(
    get,
    path = "/player/{video_id}",
    operation_id = "playerPage",
    summary = "The lesson player",
    tag = "pages",
    params(("video_id" = crate::openapi::formats::VideoId, Path, description = "The video's id")),
    responses(
        (status = 200, description = "The player, resuming at the saved position", content_type = "text/html", body = String),
        (status = 303, description = "No valid session: to `/login?next=/player/...`",
            headers(("Location" = String))),
        (status = 400, description = "The id is not a UUID (checked before the session)", body = ErrorBody),
        (status = 404, description = "No such video", body = ErrorBody),
        (status = 409, description = "The video is not ready to play yet (still being processed, or failed)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "page.player", skip_all, fields(video.id = tracing::field::Empty))]
pub async fn get(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    // The id first: a URL that can never name a player is a 400 whoever asks, rather than a
    // trip through the login page that ends in one (and the document says so).
    let Path(segment) = path.map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
    let id = VideoId::parse(&segment).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            "videoId must be a UUID (a video's `id`)",
        )
    })?;
    if user.is_none() {
        return Ok(super::to_login(&uri));
    }
    tracing::Span::current().record("video.id", id.as_str());
    let video = metadata(&state, &id).await?.0;
    if video.status != "ready" {
        return Err(ApiError::NotReady(format!(
            "video {id} is not ready to play (status: {})",
            video.status
        )));
    }
    // The server span's context: `Span::current()` here is this handler's own span, a child
    // of it in the same trace; the player's requests then become its children too.
    let traceparent = traceresponse(&tracing::Span::current().span_context()).unwrap_or_default();
    let data = serde_json::json!({
        "videoId": video.id,
        "title": video.title,
        "streamUrl": video.stream_url,
        "contentType": video.content_type,
        "durationSeconds": video.duration_seconds,
    });
    let title = super::escape_html(&video.title);
    let page = TEMPLATE
        .replace("/*TRACEPARENT*/", &traceparent)
        .replace("/*TITLE*/", &title)
        .replace("/*PAGE_DATA*/", &super::script_json(&data));
    Ok(Html(page).into_response())
}
