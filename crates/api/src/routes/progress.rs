//! Watch progress (seeds 000/001): save and read the caller's resume position.
//!
//! The user always comes from the session; request bodies never name one.

pub mod get;
pub mod post;

use std::time::Instant;

use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use serde::Serialize;
use vidscope_core::progress::{self, CheckedProgress, Progress, SaveOutcome, VideoRef};
use vidscope_telemetry::SpanExt as _;

use crate::error::ApiError;
use crate::state::AppState;

/// Header naming the WebSocket connection of the tab that saves, so the change is not echoed
/// back to it (its id comes in the socket's `hello` message).
pub const CONNECTION_HEADER: &str = "x-vidscope-connection";

/// A resume position as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressBody {
    pub video_id: String,
    pub position_seconds: f64,
    pub watch_time: f64,
    pub completed: bool,
    /// Unix milliseconds of the last save; `null` when nothing was saved yet.
    pub updated_at: Option<i64>,
}

impl From<&Progress> for ProgressBody {
    fn from(p: &Progress) -> Self {
        Self {
            video_id: p.video_id.clone(),
            position_seconds: p.position_seconds,
            watch_time: p.watch_time_seconds,
            completed: p.completed,
            updated_at: Some(p.updated_at),
        }
    }
}

/// The originating connection id from [`CONNECTION_HEADER`], when it looks like one.
pub fn origin_connection(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONNECTION_HEADER)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| v.to_owned())
}

/// Counts a save refused for its input (`progress.updates_total{outcome=rejected}`).
pub fn count_rejected(state: &AppState) {
    state
        .metrics
        .progress_updates_total
        .add(1, &[KeyValue::new("outcome", "rejected")]);
}

/// Saves a checked position: the seed's events on `span`, both progress metrics, and a push to
/// the user's other connections when something was written.
pub async fn save(
    state: &AppState,
    span: &tracing::Span,
    user_id: &str,
    video: &VideoRef,
    checked: &CheckedProgress,
    origin: Option<String>,
) -> Result<SaveOutcome, ApiError> {
    if checked.auto_completed {
        span.add_event(
            "progress.auto_complete_triggered",
            vec![
                KeyValue::new("positionSeconds", checked.position.get()),
                KeyValue::new("durationSeconds", video.duration_seconds.unwrap_or(0.0)),
                KeyValue::new("threshold", progress::AUTO_COMPLETE_RATIO),
            ],
        );
    }
    let start = Instant::now();
    let result = progress::save(&state.db, user_id, &video.id, checked).await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    let outcome = match &result {
        Ok(o) => o.label(),
        Err(_) => "error",
    };
    let labels = [KeyValue::new("outcome", outcome)];
    state
        .metrics
        .progress_save_time_ms
        .record(elapsed_ms, &labels);
    let saved = result?;
    state.metrics.progress_updates_total.add(1, &labels);
    match &saved {
        SaveOutcome::Saved(p) => {
            let receivers = state.realtime.progress_updated(user_id, origin, p);
            span.add_event(
                "progress.saved",
                vec![
                    KeyValue::new("positionSeconds", p.position_seconds),
                    KeyValue::new("completed", p.completed),
                    KeyValue::new("realtime.receivers", receivers as i64),
                ],
            );
        }
        SaveOutcome::Duplicate(p) => {
            span.add_event(
                "progress.duplicate_skipped",
                vec![
                    KeyValue::new("positionSeconds", checked.position.get()),
                    KeyValue::new("storedPositionSeconds", p.position_seconds),
                    KeyValue::new("windowMs", progress::DUPLICATE_WINDOW.as_millis() as i64),
                ],
            );
        }
    }
    Ok(saved)
}
