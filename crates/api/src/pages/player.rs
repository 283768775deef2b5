//! `GET /player/{video_id}`: the lesson player (seeds 000/001), or, for a lesson that cannot
//! play yet (uploaded, processing, failed), a page saying so (issue 28: not a JSON error). An
//! admin's page links to the lesson's traces in the trace viewer, where a failure's cause is
//! (the video row does not store one).
//!
//! The page carries its own trace context as `<meta name="traceparent">`: the same value as the
//! response's `traceresponse` header, which a script cannot read for the page it runs in. The
//! player sends it with every request (and in the page-hide beacon's body), so its progress
//! saves and its `video.session` events continue the trace of the page load.

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vidscope_core::videos::VideoId;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::propagation::traceresponse;

use crate::auth::MaybeUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::openapi::path_segments::VideoIdSegment;
use crate::openapi::responses::{DbUnavailable, NoSuchVideo, ToLogin};
use crate::routes::videos::VideoBody;
use crate::routes::videos::get::metadata;
use crate::state::AppState;

/// The player page (`templates/player.html`, its script `assets/player.js`).
#[derive(Template)]
#[template(path = "player.html")]
struct PlayerPage<'a> {
    /// The page load's own trace context, for `<meta name="traceparent">`.
    traceparent: &'a str,
    title: &'a str,
    /// Empty: no paragraph.
    description: &'a str,
    data: PageData<'a>,
}

/// A lesson that cannot play yet (`templates/lesson_status.html`).
#[derive(Template)]
#[template(path = "lesson_status.html")]
struct LessonStatusPage<'a> {
    title: &'a str,
    description: &'a str,
    /// `uploaded`, `processing` or `failed`: a CSS class and what `message` describes.
    status: &'a str,
    message: &'a str,
    /// Reload while the worker may still finish it.
    refresh: bool,
    /// Admins only (the trace viewer is theirs); empty otherwise.
    trace_url: &'a str,
}

/// What the player's script reads from `<script id="page-data">`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageData<'a> {
    video_id: &'a str,
    title: &'a str,
    stream_url: &'a str,
    content_type: &'a str,
    duration_seconds: Option<f64>,
}

/// The lesson player
#[utoipa::path(
    get, path = "/player/{video_id}", operation_id = "playerPage",
    params(VideoIdSegment),
    responses(
        (status = 200, description = "The player, resuming at the saved position; for a lesson not ready yet (uploaded, processing, failed), a page with its status (and, for admins, a link to its traces)", content_type = "text/html", body = String),
        (status = 400, description = "The id is not a UUID (checked before the session)", body = ErrorBody),
        ToLogin, NoSuchVideo, DbUnavailable,
    )
)]
#[tracing::instrument(
    name = "page.player",
    skip_all,
    fields(video.id = tracing::field::Empty, video.status = tracing::field::Empty)
)]
pub async fn get(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    uri: Uri,
    Path(segment): Path<String>,
) -> Result<Response, ApiError> {
    // The id first: a URL that can never name a player is a 400 whoever asks, rather than a
    // trip through the login page that ends in one (and the document says so).
    let id = VideoId::parse(&segment).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            "videoId must be a UUID (a video's `id`)",
        )
    })?;
    let Some(user) = user else {
        return Ok(super::to_login(&uri));
    };
    tracing::Span::current().record("video.id", id.as_str());
    let video = metadata(&state, &id).await?.0;
    tracing::Span::current().record("video.status", video.status.as_str());
    if video.status != "ready" {
        return not_ready(&video, user.is_admin());
    }
    // The server span's context: `Span::current()` here is this handler's own span, a child
    // of it in the same trace; the player's requests then become its children too.
    let traceparent = traceresponse(&tracing::Span::current().span_context()).unwrap_or_default();
    let page = PlayerPage {
        traceparent: &traceparent,
        title: &video.title,
        description: &video.description,
        data: PageData {
            video_id: &video.id,
            title: &video.title,
            stream_url: &video.stream_url,
            content_type: &video.content_type,
            duration_seconds: video.duration_seconds,
        },
    };
    Ok(super::render(&page)?.into_response())
}

/// The status page of a lesson that cannot play yet.
fn not_ready(video: &VideoBody, admin: bool) -> Result<Response, ApiError> {
    let (message, refresh) = match video.status.as_str() {
        "failed" => (
            "This lesson could not be processed, so it cannot be played. An admin can see why \
             in its traces.",
            false,
        ),
        _ => (
            "This lesson is still being processed (its file is checked and its thumbnail made). \
             This page reloads every 10 seconds and plays it once it is ready.",
            true,
        ),
    };
    let trace_url = if admin {
        format!("/trace-viewer?video={}", video.id)
    } else {
        String::new()
    };
    let page = LessonStatusPage {
        title: &video.title,
        description: &video.description,
        status: &video.status,
        message,
        refresh,
        trace_url: &trace_url,
    };
    Ok(super::render(&page)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A title is user input: markup and quotes in it come out as text, in the page and in its
    /// data, whatever they try to close.
    #[test]
    fn a_hostile_title_comes_out_escaped() {
        let title = r#"</title></h2></script><script>alert("x")</script>' onload='x"#;
        let page = PlayerPage {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            title,
            // The description is user input too.
            description: title,
            data: PageData {
                video_id: "v",
                title,
                stream_url: "/api/videos/v.mp4",
                content_type: "video/mp4",
                duration_seconds: None,
            },
        };
        let html = page.render().unwrap();
        for raw in ["<script>alert", "</title></h2>", "' onload='"] {
            assert!(
                !html.contains(raw),
                "{raw:?} came through unescaped:\n{html}"
            );
        }
        assert_eq!(
            html.matches("<script").count(),
            2,
            "only the page's own scripts"
        );
        let data = html
            .split(r#"<script id="page-data" type="application/json">"#)
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .expect("the page data");
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            data["title"], title,
            "the script reads the title back unchanged"
        );
    }
}
