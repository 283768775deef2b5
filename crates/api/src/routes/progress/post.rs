//! `POST /api/progress`: saves the caller's position in a video.
//!
//! 200 with `{"saved": bool, "duplicate": bool, "autoCompleted": bool, "progress": {...}}`.
//! A repeat of the same position within five seconds (seed 001's double tracking) is not
//! written again: `saved: false, duplicate: true`. Unknown video → 404; bad numbers → 400
//! naming the field.

use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use vidscope_core::CoreError;
use vidscope_core::progress::{ProgressInput, SaveOutcome, Seconds, VideoId, find_video};

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::progress::{ProgressBody, count_rejected, origin_connection, save};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBody {
    video_id: String,
    position_seconds: f64,
    watch_time: f64,
    #[serde(default)]
    completed: bool,
}

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
) -> Result<Json<Value>, ApiError> {
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
        let video_id = VideoId::parse("videoId", &body.video_id)?;
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
    Ok(Json(json!({
        "saved": matches!(outcome, SaveOutcome::Saved(_)),
        "duplicate": matches!(outcome, SaveOutcome::Duplicate(_)),
        "autoCompleted": checked.auto_completed,
        "progress": ProgressBody::from(outcome.progress()),
    })))
}
