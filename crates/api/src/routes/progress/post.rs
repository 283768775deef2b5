//! `POST /api/progress`: saves the caller's position in a video.
//!
//! 200 with `{"saved": bool, "duplicate": bool, "autoCompleted": bool, "progress": {...}}`.
//! A repeat of the same position within five seconds (seed 001's double tracking) is not
//! written again: `saved: false, duplicate: true`. Unknown video → 404; a `videoId` that is not
//! a UUID or bad numbers → 400 naming the field.

use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};
use vidscope_core::CoreError;
use vidscope_core::progress::{ProgressInput, SaveOutcome, Seconds, find_video, parse_video_id};
use vidscope_telemetry::SpanExt as _;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::responses::{
    BadInput, DbFull, DbUnavailable, NoSuchVideo, NotJson, TooLarge, Unauthorized,
};
use crate::routes::progress::{ProgressBody, count_rejected, origin_connection, save};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBody {
    #[schema(value_type = crate::openapi::formats::VideoId)]
    video_id: String,
    /// Where the viewer is: at most a week, and at most the video's duration plus 2 s (a 400
    /// naming `positionSeconds` otherwise).
    #[schema(minimum = 0, maximum = 604800)]
    position_seconds: f64,
    /// Seconds actually watched so far, at most a week.
    #[schema(minimum = 0, maximum = 604800)]
    watch_time: f64,
    /// Set by the server anyway at 95 % of the duration.
    #[serde(default)]
    completed: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaveResponse {
    /// `false` when this repeated the last save (same position within 5 s).
    pub saved: bool,
    pub duplicate: bool,
    /// The position reached 95 % of the duration, so the video counts as completed.
    pub auto_completed: bool,
    /// What is stored now.
    pub progress: ProgressBody,
}

/// Save the caller's position in a video
#[utoipa::path(
    post, path = "/api/progress", operation_id = "saveProgress",
    request_body = UpdateBody,
    params(("x-vidscope-connection" = Option<String>, Header, description = "The saving tab's WebSocket connection id, so the change is not pushed back to it")),
    responses(
        (status = 200, description = "Saved, or skipped as a duplicate", body = SaveResponse),
        BadInput, Unauthorized, NoSuchVideo, TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(
    name = "api.progress.update",
    skip_all,
    fields(user.id = %user.id, video.id = tracing::field::Empty)
)]
pub async fn post(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Json(body): Json<UpdateBody>,
) -> Result<Json<SaveResponse>, ApiError> {
    let span = tracing::Span::current();
    span.add_event(
        "progress.data_received",
        vec![
            KeyValue::new("watchTime", body.watch_time),
            KeyValue::new("positionSeconds", body.position_seconds),
            KeyValue::new("completed", body.completed),
        ],
    );
    let checked = async {
        let video_id = parse_video_id("videoId", &body.video_id)?;
        span.record("video.id", video_id.as_str());
        let input = ProgressInput {
            position: Seconds::parse("positionSeconds", body.position_seconds)?,
            watch_time: Some(Seconds::parse("watchTime", body.watch_time)?),
            completed: body.completed,
        };
        let video = find_video(&state.db, &video_id)
            .await?
            .ok_or(CoreError::NotFound("video"))?;
        let checked = video.check(input, "positionSeconds")?;
        Ok::<_, CoreError>((video, checked))
    }
    .await;
    let (video, checked) = match checked {
        Ok(v) => v,
        Err(e) => {
            if matches!(e, CoreError::Invalid(_) | CoreError::NotFound(_)) {
                count_rejected(&state);
            }
            return Err(e.into());
        }
    };
    let outcome = save(
        &state,
        &span,
        &user.id,
        &video,
        &checked,
        origin_connection(&headers),
    )
    .await?;
    Ok(Json(SaveResponse {
        saved: matches!(outcome, SaveOutcome::Saved(_)),
        duplicate: matches!(outcome, SaveOutcome::Duplicate(_)),
        auto_completed: checked.auto_completed,
        progress: ProgressBody::from(outcome.progress()),
    }))
}
