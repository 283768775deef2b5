//! `GET /player/{video_id}`: the lesson player (seeds 000/001).
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
use crate::openapi::responses::{DbUnavailable, NoSuchVideo, ToLogin};
use crate::routes::videos::get::metadata;
use crate::state::AppState;

/// The player page (`templates/player.html`, its script `assets/player.js`).
#[derive(Template)]
#[template(path = "player.html")]
struct PlayerPage<'a> {
    /// The page load's own trace context, for `<meta name="traceparent">`.
    traceparent: &'a str,
    title: &'a str,
    data: PageData<'a>,
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

#[utoipa::path(
    get,
    path = "/player/{video_id}",
    operation_id = "playerPage",
    summary = "The lesson player",
    tag = "pages",
    params(("video_id" = crate::openapi::formats::VideoId, Path, description = "The video's id")),
    responses(
        (status = 200, description = "The player, resuming at the saved position", content_type = "text/html", body = String),
        (status = 400, description = "The id is not a UUID (checked before the session)", body = ErrorBody),
        (status = 409, description = "The video is not ready to play yet (still being processed, or failed)", body = ErrorBody),
        ToLogin, NoSuchVideo, DbUnavailable,
    )
)]
#[tracing::instrument(name = "page.player", skip_all, fields(video.id = tracing::field::Empty))]
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
    let page = PlayerPage {
        traceparent: &traceparent,
        title: &video.title,
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
