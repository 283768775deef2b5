//! `POST /api/telemetry/player`: a batch of player events (seeds 000/001: slow loads, resume
//! timing, double tracking, missing persistence on page hide).
//!
//! ```json
//! {"videoId": "v1", "events": [
//!   {"name": "video.loaded", "loadTimeMs": 850},
//!   {"name": "video.resume_attempt", "success": false, "expected": 120, "actual": 0, "resumeTimeMs": 300},
//!   {"name": "video.resume_position_mismatch", "expected": 120, "actual": 0},
//!   {"name": "video.buffering", "durationMs": 1200},
//!   {"name": "video.page_hidden", "finalPosition": 131.5, "watchTime": 140}
//! ]}
//! ```
//!
//! The whole batch is validated before anything is recorded: an unknown event name or a value
//! out of range is a 400 whose message starts with `events[<index>].<field>`. Each event then
//! becomes an event on one `video.session` span that continues the page's `traceparent` (so
//! the player's trace and the server's line up), and feeds the player metrics. A
//! `video.page_hidden` with `finalPosition` saves progress, so a tab closed between periodic
//! saves still persists where the viewer stopped. Any content type is accepted, because
//! `navigator.sendBeacon` (what a page-hide handler can still use) sends `text/plain`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Instrument;
use vidscope_core::CoreError;
use vidscope_core::progress::{ProgressInput, Seconds, VideoId, VideoRef, find_video};
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::propagation::{extract_http, extract_traceparent, with_remote_parent};

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::routes::progress::{ProgressBody, origin_connection, save};
use crate::state::AppState;

/// Events per batch; players flush more often than this fills.
pub const MAX_EVENTS: usize = 100;
/// Request body limit of this route.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest load, resume or buffering time accepted, in milliseconds (10 minutes).
pub const MAX_DURATION_MS: f64 = 600_000.0;

// Events stay free-form JSON until `parse_event`, so an error can name the index and field.
/// A batch of player events for one video; all are validated before any is recorded.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    #[schema(value_type = crate::openapi::formats::ProgressVideoId)]
    video_id: String,
    /// 1 to 100 events. An event may repeat `videoId`, and then it must be the batch's.
    #[schema(value_type = Vec<EventSchema>, min_items = 1, max_items = 100)]
    events: Vec<Value>,
    /// The page's W3C `traceparent`, for senders that cannot set headers
    /// (`navigator.sendBeacon`). A `traceparent` header wins over it. One with an all-zero id
    /// is ignored (the batch gets a trace of its own).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::formats::Traceparent>)]
    traceparent: Option<String>,
}

/// One player event as [`parse_event`] checks it, for the OpenAPI document only: the handler
/// reads events as JSON values so that an error can name the event's index. Times are in
/// milliseconds (at most 10 minutes), positions in seconds (at most a week); `null` counts as
/// absent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "name")]
#[schema(as = PlayerEvent)]
#[allow(dead_code, reason = "documentation only")]
enum EventSchema {
    #[serde(rename = "video.loaded", rename_all = "camelCase")]
    Loaded {
        #[schema(minimum = 0, maximum = 600000)]
        load_time_ms: f64,
    },
    #[serde(rename = "video.resume_attempt", rename_all = "camelCase")]
    ResumeAttempt {
        success: bool,
        #[schema(minimum = 0, maximum = 604800)]
        expected: f64,
        #[schema(minimum = 0, maximum = 604800)]
        actual: f64,
        #[serde(default)]
        #[schema(minimum = 0, maximum = 600000)]
        resume_time_ms: Option<f64>,
    },
    #[serde(rename = "video.resume_position_mismatch", rename_all = "camelCase")]
    ResumePositionMismatch {
        #[schema(minimum = 0, maximum = 604800)]
        expected: f64,
        #[schema(minimum = 0, maximum = 604800)]
        actual: f64,
    },
    #[serde(rename = "video.buffering", rename_all = "camelCase")]
    Buffering {
        #[serde(default)]
        #[schema(minimum = 0, maximum = 600000)]
        duration_ms: Option<f64>,
    },
    /// Saves `finalPosition` as progress (at most the video's duration plus 2 s).
    #[serde(rename = "video.page_hidden", rename_all = "camelCase")]
    PageHidden {
        #[schema(minimum = 0, maximum = 604800)]
        final_position: f64,
        #[serde(default)]
        #[schema(minimum = 0, maximum = 604800)]
        watch_time: Option<f64>,
    },
}

/// A checked batch.
struct Parsed {
    video_id: VideoId,
    events: Vec<PlayerEvent>,
    /// The parent carried in the body (`Context::new()` when there is none).
    parent: opentelemetry::Context,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// Events recorded.
    pub accepted: usize,
    /// The position saved from a `video.page_hidden` event, if the batch had one.
    pub progress: Option<ProgressBody>,
}

/// One validated player event.
#[derive(Debug, Clone, PartialEq)]
enum PlayerEvent {
    Loaded {
        load_time_ms: f64,
    },
    ResumeAttempt {
        success: bool,
        expected: f64,
        actual: f64,
        resume_time_ms: Option<f64>,
    },
    ResumePositionMismatch {
        expected: f64,
        actual: f64,
    },
    Buffering {
        duration_ms: Option<f64>,
    },
    PageHidden {
        input: ProgressInput,
        field: String,
    },
}

fn bad(index: usize, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_player_event", format!("events[{index}].{message}"))
}

/// Reads the fields of event `index`, naming `events[index].<field>` in every error.
struct Fields<'a> {
    index: usize,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn number(&self, name: &str, max: f64) -> Result<Option<f64>, ApiError> {
        let Some(v) = self.obj.get(name).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let n = v
            .as_f64()
            .ok_or_else(|| bad(self.index, format_args!("{name} must be a number")))?;
        if !(0.0..=max).contains(&n) {
            return Err(bad(
                self.index,
                format_args!("{name} is out of range (got {n}, expected 0 to {max})"),
            ));
        }
        Ok(Some(n))
    }

    fn required_number(&self, name: &str, max: f64) -> Result<f64, ApiError> {
        self.number(name, max)?
            .ok_or_else(|| bad(self.index, format_args!("{name} is required")))
    }

    fn seconds(&self, name: &str) -> Result<Option<Seconds>, ApiError> {
        self.number(name, vidscope_core::progress::MAX_SECONDS)?
            .map(|n| Seconds::parse(&format!("events[{}].{name}", self.index), n))
            .transpose()
            .map_err(Into::into)
    }

    fn required_bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.obj.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(
                self.index,
                format_args!("{name} must be true or false"),
            )),
            None => Err(bad(self.index, format_args!("{name} is required"))),
        }
    }
}

fn parse_event(index: usize, value: &Value, video_id: &VideoId) -> Result<PlayerEvent, ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad(index, "name: the event must be an object with a name"))?;
    let f = Fields { index, obj };
    if let Some(v) = obj.get("videoId")
        && v.as_str() != Some(video_id.as_str())
    {
        return Err(bad(index, "videoId differs from the batch's videoId"));
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(index, "name is required (a string)"))?;
    let max_pos = vidscope_core::progress::MAX_SECONDS;
    Ok(match name {
        "video.loaded" => PlayerEvent::Loaded {
            load_time_ms: f.required_number("loadTimeMs", MAX_DURATION_MS)?,
        },
        "video.resume_attempt" => PlayerEvent::ResumeAttempt {
            success: f.required_bool("success")?,
            expected: f.required_number("expected", max_pos)?,
            actual: f.required_number("actual", max_pos)?,
            resume_time_ms: f.number("resumeTimeMs", MAX_DURATION_MS)?,
        },
        "video.resume_position_mismatch" => PlayerEvent::ResumePositionMismatch {
            expected: f.required_number("expected", max_pos)?,
            actual: f.required_number("actual", max_pos)?,
        },
        "video.buffering" => PlayerEvent::Buffering {
            duration_ms: f.number("durationMs", MAX_DURATION_MS)?,
        },
        "video.page_hidden" => PlayerEvent::PageHidden {
            input: ProgressInput {
                position: f
                    .seconds("finalPosition")?
                    .ok_or_else(|| bad(index, "finalPosition is required"))?,
                watch_time: f.seconds("watchTime")?,
                completed: false,
            },
            field: format!("events[{index}].finalPosition"),
        },
        other => {
            return Err(bad(
                index,
                format_args!(
                    "name: unknown event {:?}",
                    other.chars().take(64).collect::<String>()
                ),
            ));
        }
    })
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("a player batch is at most {MAX_BODY_BYTES} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

/// Whether `tp` has the form of a version-00 `traceparent`, lowercase hex only (the OpenAPI
/// document's pattern). Checked here because the propagator is laxer (it takes short, signed
/// or upper-case fields). A well-formed value with an all-zero id is invalid for W3C and is
/// ignored like an invalid `traceparent` header: the batch gets a trace of its own.
fn is_traceparent(tp: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let parts: Vec<&str> = tp.split('-').collect();
    matches!(parts.as_slice(), ["00", trace, span, flags] if hex(trace, 32) && hex(span, 16) && hex(flags, 2))
}

/// Parses and validates the whole batch; nothing is recorded unless all of it is valid.
fn parse_batch(bytes: &[u8]) -> Result<Parsed, ApiError> {
    let batch: Batch = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid batch: {e}")))?;
    let video_id = VideoId::parse("videoId", &batch.video_id)?;
    if batch.events.is_empty() || batch.events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(
            "invalid_player_event",
            format!(
                "events must hold 1 to {MAX_EVENTS} events (got {})",
                batch.events.len()
            ),
        ));
    }
    let events = batch
        .events
        .iter()
        .enumerate()
        .map(|(i, v)| parse_event(i, v, &video_id))
        .collect::<Result<_, _>>()?;
    let parent = match batch.traceparent {
        None => opentelemetry::Context::new(),
        Some(tp) if is_traceparent(&tp) => extract_traceparent(&tp),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_traceparent",
                "traceparent is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>)",
            ));
        }
    };
    Ok(Parsed {
        video_id,
        events,
        parent,
    })
}

/// Adds the event to `span` and feeds the player metrics.
fn record(state: &AppState, span: &tracing::Span, event: &PlayerEvent) {
    let m = &state.metrics;
    match *event {
        PlayerEvent::Loaded { load_time_ms } => {
            span.add_event(
                "video.loaded",
                vec![KeyValue::new("loadTimeMs", load_time_ms)],
            );
            m.video_load_time_ms.record(load_time_ms, &[]);
        }
        PlayerEvent::ResumeAttempt {
            success,
            expected,
            actual,
            resume_time_ms,
        } => {
            let mut attrs = vec![
                KeyValue::new("success", success),
                KeyValue::new("expected", expected),
                KeyValue::new("actual", actual),
            ];
            if let Some(ms) = resume_time_ms {
                attrs.push(KeyValue::new("resumeTimeMs", ms));
                m.video_resume_time_ms
                    .record(ms, &[KeyValue::new("success", success)]);
            }
            span.add_event("video.resume_attempt", attrs);
            if !success {
                m.video_resume_failures_total.add(1, &[]);
            }
        }
        PlayerEvent::ResumePositionMismatch { expected, actual } => {
            span.add_event(
                "video.resume_position_mismatch",
                vec![
                    KeyValue::new("expected", expected),
                    KeyValue::new("actual", actual),
                    KeyValue::new("delta", actual - expected),
                ],
            );
        }
        PlayerEvent::Buffering { duration_ms } => {
            let attrs = duration_ms
                .map(|ms| vec![KeyValue::new("durationMs", ms)])
                .unwrap_or_default();
            span.add_event("video.buffering", attrs);
            m.video_buffering_events_total.add(1, &[]);
        }
        PlayerEvent::PageHidden { input, .. } => {
            span.add_event(
                "video.page_hidden",
                vec![KeyValue::new("finalPosition", input.position.get())],
            );
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/telemetry/player",
    operation_id = "playerTelemetry",
    summary = "Record a batch of player events",
    tag = "telemetry",
    security(("session" = [])),
    request_body(content(
        (Batch = "application/json"),
        (Batch = "text/plain"),
    ), description = "JSON under any content type (`navigator.sendBeacon` sends `text/plain`); at most 64 KiB"),
    params(
        ("traceparent" = Option<String>, Header, description = "The page's W3C trace context: the `video.session` span continues it"),
        ("x-vidscope-connection" = Option<String>, Header, description = "The tab's WebSocket connection id"),
    ),
    responses(
        (status = 200, description = "Every event was recorded", body = BatchResponse),
        (status = 400, description = "Bad JSON, an unknown event or a value out of range; the message starts with `events[i].field`", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such video", body = ErrorBody),
        (status = 413, description = "The batch is over 64 KiB", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn post(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let bytes = read_body(&headers, body).await?;
    let Parsed {
        video_id,
        events,
        parent,
    } = parse_batch(&bytes)?;
    let video: VideoRef = find_video(&state.db, &video_id)
        .await?
        .ok_or(CoreError::NotFound("video"))?;
    // Check page-hide positions against the duration before recording anything.
    let mut saves = Vec::new();
    for e in &events {
        if let PlayerEvent::PageHidden { input, field } = e {
            saves.push(video.check(*input, field)?);
        }
    }

    // A child of the page's span when it sent `traceparent` (header, else body), else of the
    // server span.
    let header_parent = extract_http(&headers);
    let parent = if header_parent.span().span_context().is_valid() {
        header_parent
    } else {
        parent
    };
    let span = with_remote_parent(parent, || {
        tracing::info_span!(
            "video.session",
            user.id = %user.id,
            video.id = %video.id,
            player.events = events.len() as i64,
        )
    });
    for e in &events {
        record(&state, &span, e);
    }
    // Only the last position of the batch matters; earlier ones are already stale.
    let saved = match saves.last() {
        Some(checked) => Some(
            save(
                &state,
                &span,
                &user.id,
                &video,
                checked,
                origin_connection(&headers),
            )
            .instrument(span.clone())
            .await?,
        ),
        None => None,
    };
    Ok(Json(BatchResponse {
        accepted: events.len(),
        progress: saved.as_ref().map(|s| ProgressBody::from(s.progress())),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: Value) -> String {
        match parse_batch(body.to_string().as_bytes()) {
            Err(ApiError::BadRequest { message, .. }) => message,
            Err(ApiError::Core(CoreError::Invalid(m))) => m,
            other => panic!("expected a 400, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_events_name_index_and_field() {
        let cases = [
            (json!({"name": "video.exploded"}), "events[1].name"),
            (
                json!({"name": "video.loaded", "loadTimeMs": -5}),
                "events[1].loadTimeMs",
            ),
            (
                json!({"name": "video.loaded", "loadTimeMs": 1e9}),
                "events[1].loadTimeMs",
            ),
            (json!({"name": "video.loaded"}), "events[1].loadTimeMs"),
            (
                json!({"name": "video.resume_attempt", "success": "yes", "expected": 1, "actual": 1}),
                "events[1].success",
            ),
            (
                json!({"name": "video.page_hidden", "finalPosition": -1}),
                "events[1].finalPosition",
            ),
            (
                json!({"name": "video.buffering", "durationMs": "long"}),
                "events[1].durationMs",
            ),
            (
                json!({"name": "video.loaded", "loadTimeMs": 1, "videoId": "other"}),
                "events[1].videoId",
            ),
            (json!(42), "events[1].name"),
        ];
        for (event, expected) in cases {
            let body = json!({"videoId": "v1", "events": [
                {"name": "video.buffering"}, event
            ]});
            let message = err(body);
            assert!(message.starts_with(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn a_body_traceparent_must_be_valid() {
        let batch = |tp: &str| json!({"videoId": "v1", "traceparent": tp, "events": [{"name": "video.buffering"}]});
        assert!(err(batch("00-zz-1")).starts_with("traceparent"));
        // The propagator would take these; the documented form does not.
        for lax in [
            "0-1-1-1",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
        ] {
            assert!(err(batch(lax)).starts_with("traceparent"), "{lax:?}");
        }
        // Well formed but all-zero: ignored, as W3C says of an invalid header.
        let zero = "00-00000000000000000000000000000000-b7ad6b7169203331-01";
        let parsed = parse_batch(batch(zero).to_string().as_bytes()).unwrap();
        assert!(!parsed.parent.span().span_context().is_valid());
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parsed = parse_batch(batch(tp).to_string().as_bytes()).unwrap();
        let sc = parsed.parent.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
    }

    #[test]
    fn batch_limits() {
        assert!(err(json!({"videoId": "v1", "events": []})).contains("events"));
        let many: Vec<Value> = (0..=MAX_EVENTS)
            .map(|_| json!({"name": "video.buffering"}))
            .collect();
        assert!(err(json!({"videoId": "v1", "events": many})).contains("events"));
    }

    #[test]
    fn a_valid_batch_parses() {
        let Parsed {
            video_id: id,
            events,
            parent,
        } = parse_batch(
            json!({"videoId": "v1", "events": [
                {"name": "video.loaded", "loadTimeMs": 850},
                {"name": "video.resume_attempt", "success": true, "expected": 10, "actual": 10.2},
                {"name": "video.resume_position_mismatch", "expected": 10, "actual": 0},
                {"name": "video.buffering", "durationMs": 300},
                {"name": "video.page_hidden", "finalPosition": 12.5},
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(id.as_str(), "v1");
        assert_eq!(events.len(), 5);
        assert!(!parent.span().span_context().is_valid());
        assert_eq!(
            events[0],
            PlayerEvent::Loaded {
                load_time_ms: 850.0
            }
        );
    }
}
