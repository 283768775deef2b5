//! `POST /api/telemetry/player`: a batch of player events (seeds 000/001: slow loads, resume
//! timing, double tracking, missing persistence on page hide).
//!
//! ```json
//! {"videoId": "0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90", "events": [
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

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use vidscope_core::CoreError;
use vidscope_core::progress::{ProgressInput, Seconds, VideoRef, find_video, parse_video_id};
use vidscope_core::videos::VideoId;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::propagation::{extract_http, extract_traceparent, with_remote_parent};

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::openapi::responses::{DbFull, DbUnavailable, NoSuchVideo, Unauthorized};
use crate::routes::progress::{ProgressBody, origin_connection, save};
use crate::state::AppState;

/// Events per batch; players flush more often than this fills.
pub const MAX_EVENTS: usize = 100;
/// Request body limit of this route.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest load, resume or buffering time accepted, in milliseconds (10 minutes).
pub const MAX_DURATION_MS: u32 = 600_000;
/// Latest position accepted, in seconds: [`vidscope_core::progress::MAX_SECONDS`].
const MAX_POSITION: u32 = 604_800;
const _: () = assert!(MAX_POSITION as f64 == vidscope_core::progress::MAX_SECONDS);

/// A batch of player events for one video; all are validated before any is recorded.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    #[schema(value_type = crate::openapi::formats::VideoId)]
    video_id: String,
    /// 1 to 100 events. An event may repeat `videoId`, and then it must be the batch's.
    // JSON values until `PlayerEvent::parse` reads each against its shape, so that an error
    // names the event's index as well as its field.
    #[schema(value_type = Vec<PlayerEvent>, min_items = 1, max_items = 100)]
    events: Vec<Value>,
    /// The page's W3C `traceparent`, for senders that cannot set headers
    /// (`navigator.sendBeacon`). A `traceparent` header wins over it. One with an all-zero id
    /// is ignored (the batch gets a trace of its own).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::formats::Traceparent>)]
    traceparent: Option<String>,
}

/// A number from 0 to `MAX`, refused as it is read: a time in milliseconds ([`Millis`]) or a
/// position in seconds ([`Position`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounded<const MAX: u32>(f64);

type Millis = Bounded<MAX_DURATION_MS>;
type Position = Bounded<MAX_POSITION>;

impl<'de, const MAX: u32> Deserialize<'de> for Bounded<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = f64::deserialize(d)?;
        if (0.0..=f64::from(MAX)).contains(&n) {
            Ok(Self(n))
        } else {
            Err(D::Error::custom(format_args!(
                "out of range (got {n}, expected 0 to {MAX})"
            )))
        }
    }
}

/// `video.loaded`: the video can play.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VideoLoaded {
    #[schema(value_type = f64, minimum = 0, maximum = 600000)]
    load_time_ms: Millis,
}

/// `video.resume_attempt`: the player tried to seek to the saved position.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VideoResumeAttempt {
    success: bool,
    #[schema(value_type = f64, minimum = 0, maximum = 604800)]
    expected: Position,
    #[schema(value_type = f64, minimum = 0, maximum = 604800)]
    actual: Position,
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 600000)]
    resume_time_ms: Option<Millis>,
}

/// `video.resume_position_mismatch`: playback started elsewhere than the saved position.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VideoResumePositionMismatch {
    #[schema(value_type = f64, minimum = 0, maximum = 604800)]
    expected: Position,
    #[schema(value_type = f64, minimum = 0, maximum = 604800)]
    actual: Position,
}

/// `video.buffering`: playback stalled.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VideoBuffering {
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 600000)]
    duration_ms: Option<Millis>,
}

/// `video.page_hidden`: the tab was hidden or closed. Saves `finalPosition` as progress (at
/// most the video's duration plus 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VideoPageHidden {
    #[schema(value_type = f64, minimum = 0, maximum = 604800)]
    final_position: Position,
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 604800)]
    watch_time: Option<Position>,
}

impl VideoPageHidden {
    fn input(&self) -> Result<ProgressInput, CoreError> {
        Ok(ProgressInput {
            position: Seconds::parse("finalPosition", self.final_position.0)?,
            watch_time: self
                .watch_time
                .map(|w| Seconds::parse("watchTime", w.0))
                .transpose()?,
            completed: false,
        })
    }
}

/// One player event, a shape per `name`. Times are in milliseconds (at most 10 minutes),
/// positions in seconds (at most a week); `null` counts as absent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PlayerEvent {
    Loaded(VideoLoaded),
    ResumeAttempt(VideoResumeAttempt),
    ResumePositionMismatch(VideoResumePositionMismatch),
    Buffering(VideoBuffering),
    PageHidden(VideoPageHidden),
}

type ShapeError = serde_path_to_error::Error<serde_json::Error>;
/// Reads one event of a known `name` as its shape.
type ParseShape = Box<dyn Fn(&Value) -> Result<PlayerEvent, ShapeError> + Send + Sync>;

/// An event `name` and its shape.
struct Shape {
    name: &'static str,
    parse: ParseShape,
    schema: fn() -> (Cow<'static, str>, RefOr<Schema>),
}

impl Shape {
    /// `name` is read as a `T`, which `wrap` makes an event of.
    fn of<T: DeserializeOwned + ToSchema + 'static>(
        name: &'static str,
        wrap: fn(T) -> PlayerEvent,
    ) -> Self {
        Self {
            name,
            parse: Box::new(move |v| serde_path_to_error::deserialize(v).map(wrap)),
            schema: || (T::name(), T::schema()),
        }
    }
}

/// Every event `name` with its shape: the one list the parser and the document are made from.
///
/// Not `#[serde(tag = "name")]` on [`PlayerEvent`]: serde buffers an internally tagged enum's
/// fields before it reads them, which hides the failing field from `serde_path_to_error`
/// (dtolnay/path-to-error#1), and an error must name it (`events[3].loadTimeMs`). So the name
/// is looked up here and the shape read on its own.
static SHAPES: LazyLock<[Shape; 5]> = LazyLock::new(|| {
    [
        Shape::of("video.loaded", PlayerEvent::Loaded),
        Shape::of("video.resume_attempt", PlayerEvent::ResumeAttempt),
        Shape::of(
            "video.resume_position_mismatch",
            PlayerEvent::ResumePositionMismatch,
        ),
        Shape::of("video.buffering", PlayerEvent::Buffering),
        Shape::of("video.page_hidden", PlayerEvent::PageHidden),
    ]
});

/// The document's `PlayerEvent`: `oneOf` the shapes, each a component with its `name`, and a
/// discriminator mapping each name to its shape.
impl PartialSchema for PlayerEvent {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "One player event, a shape per `name`. Times are in milliseconds (at most 10 \
             minutes), positions in seconds (at most a week); `null` counts as absent.",
        ));
        let mut mapping = Vec::new();
        for shape in SHAPES.iter() {
            let (component, _) = (shape.schema)();
            one_of = one_of.item(Ref::from_schema_name(component.clone()));
            mapping.push((shape.name, format!("#/components/schemas/{component}")));
        }
        one_of
            .discriminator(Some(Discriminator::with_mapping("name", mapping)))
            .into()
    }
}

impl ToSchema for PlayerEvent {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        for shape in SHAPES.iter() {
            let (component, schema) = (shape.schema)();
            let mut schema = schema;
            if let RefOr::T(Schema::Object(object)) = &mut schema {
                let name = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([shape.name]));
                object.properties.insert("name".to_owned(), name.into());
                object.required.insert(0, "name".to_owned());
            }
            out.push((component.into_owned(), schema));
        }
    }
}

impl PlayerEvent {
    /// Reads event `index` of a batch for `video_id`; every error names
    /// `events[<index>].<field>`.
    fn parse(index: usize, value: &Value, video_id: &VideoId) -> Result<Self, ApiError> {
        let obj = value
            .as_object()
            .ok_or_else(|| bad(index, "name: the event must be an object with a name"))?;
        if let Some(v) = obj.get("videoId")
            && v.as_str() != Some(video_id.as_str())
        {
            return Err(bad(index, "videoId differs from the batch's videoId"));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(index, "name is required (a string)"))?;
        let shape = SHAPES.iter().find(|s| s.name == name).ok_or_else(|| {
            let name: String = name.chars().take(64).collect();
            bad(index, format_args!("name: unknown event {name:?}"))
        })?;
        (shape.parse)(value).map_err(|e| shape_error(index, &e))
    }
}

fn bad(index: usize, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_player_event", format!("events[{index}].{message}"))
}

/// `events[<index>].<field>: <what serde says>`. serde reports a missing field at the object
/// that lacks it; the message names the field itself.
fn shape_error(index: usize, e: &ShapeError) -> ApiError {
    let inner = e.inner().to_string();
    let missing = inner
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'));
    match missing {
        Some(field) => bad(index, format_args!("{field} is required")),
        None => bad(index, e),
    }
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
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::bad_request("invalid_json", format!("invalid batch: {e}"))
    };
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let batch: Batch = serde_path_to_error::deserialize(&mut json).map_err(|e| invalid(&e))?;
    json.end().map_err(|e| invalid(&e))?;
    let video_id = parse_video_id("videoId", &batch.video_id)?;
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
        .map(|(i, v)| PlayerEvent::parse(i, v, &video_id))
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

/// [`parse_batch`] for the fuzz target (`fuzz/`): the number of events of a valid batch and
/// whether it carried a valid parent.
#[cfg(feature = "fuzzing")]
pub(crate) fn check_batch(bytes: &[u8]) -> Result<(usize, bool), ApiError> {
    parse_batch(bytes).map(|p| (p.events.len(), p.parent.span().span_context().is_valid()))
}

/// Adds the event to `span` and feeds the player metrics.
fn record(state: &AppState, span: &tracing::Span, event: &PlayerEvent) {
    let m = &state.metrics;
    match *event {
        PlayerEvent::Loaded(VideoLoaded {
            load_time_ms: Bounded(load_time_ms),
        }) => {
            span.add_event(
                "video.loaded",
                vec![KeyValue::new("loadTimeMs", load_time_ms)],
            );
            m.video_load_time_ms.record(load_time_ms, &[]);
        }
        PlayerEvent::ResumeAttempt(VideoResumeAttempt {
            success,
            expected: Bounded(expected),
            actual: Bounded(actual),
            resume_time_ms,
        }) => {
            let mut attrs = vec![
                KeyValue::new("success", success),
                KeyValue::new("expected", expected),
                KeyValue::new("actual", actual),
            ];
            if let Some(Bounded(ms)) = resume_time_ms {
                attrs.push(KeyValue::new("resumeTimeMs", ms));
                m.video_resume_time_ms
                    .record(ms, &[KeyValue::new("success", success)]);
            }
            span.add_event("video.resume_attempt", attrs);
            if !success {
                m.video_resume_failures_total.add(1, &[]);
            }
        }
        PlayerEvent::ResumePositionMismatch(VideoResumePositionMismatch {
            expected: Bounded(expected),
            actual: Bounded(actual),
        }) => {
            span.add_event(
                "video.resume_position_mismatch",
                vec![
                    KeyValue::new("expected", expected),
                    KeyValue::new("actual", actual),
                    KeyValue::new("delta", actual - expected),
                ],
            );
        }
        PlayerEvent::Buffering(VideoBuffering { duration_ms }) => {
            let attrs = duration_ms
                .map(|Bounded(ms)| vec![KeyValue::new("durationMs", ms)])
                .unwrap_or_default();
            span.add_event("video.buffering", attrs);
            m.video_buffering_events_total.add(1, &[]);
        }
        PlayerEvent::PageHidden(VideoPageHidden {
            final_position: Bounded(position),
            ..
        }) => {
            span.add_event(
                "video.page_hidden",
                vec![KeyValue::new("finalPosition", position)],
            );
        }
    }
}

/// Record a batch of player events
#[utoipa::path(
    post, path = "/api/telemetry/player", operation_id = "playerTelemetry",
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
        (status = 413, description = "The batch is over 64 KiB", body = ErrorBody),
        Unauthorized, NoSuchVideo, DbUnavailable, DbFull,
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
    for (i, e) in events.iter().enumerate() {
        if let PlayerEvent::PageHidden(hidden) = e {
            let field = format!("events[{i}].finalPosition");
            saves.push(video.check(hidden.input()?, &field)?);
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

    const V1: &str = "0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90";

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
            let body = json!({"videoId": V1, "events": [
                {"name": "video.buffering"}, event
            ]});
            let message = err(body);
            assert!(message.starts_with(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn a_body_traceparent_must_be_valid() {
        let batch = |tp: &str| json!({"videoId": V1, "traceparent": tp, "events": [{"name": "video.buffering"}]});
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
        assert!(err(json!({"videoId": V1, "events": []})).contains("events"));
        let many: Vec<Value> = (0..=MAX_EVENTS)
            .map(|_| json!({"name": "video.buffering"}))
            .collect();
        assert!(err(json!({"videoId": V1, "events": many})).contains("events"));
    }

    #[test]
    fn a_valid_batch_parses() {
        let Parsed {
            video_id: id,
            events,
            parent,
        } = parse_batch(
            json!({"videoId": V1, "events": [
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
        assert_eq!(id.as_str(), V1);
        assert_eq!(events.len(), 5);
        assert!(!parent.span().span_context().is_valid());
        assert_eq!(
            events[0],
            PlayerEvent::Loaded(VideoLoaded {
                load_time_ms: Bounded(850.0)
            })
        );
    }

    /// The message names the path to the value at fault, and says what serde found there.
    #[test]
    fn messages_name_the_path() {
        let at_3 = |event: Value| {
            let buffering = json!({"name": "video.buffering"});
            let events = [buffering.clone(), buffering.clone(), buffering, event];
            err(json!({"videoId": V1, "events": events}))
        };
        let cases = [
            (
                json!({"name": "video.loaded", "loadTimeMs": "slow"}),
                "events[3].loadTimeMs: invalid type: string \"slow\", expected f64",
            ),
            (
                json!({"name": "video.loaded", "loadTimeMs": -5}),
                "events[3].loadTimeMs: out of range (got -5, expected 0 to 600000)",
            ),
            (
                json!({"name": "video.loaded"}),
                "events[3].loadTimeMs is required",
            ),
            (
                json!({"name": "video.resume_attempt", "success": "yes", "expected": 1, "actual": 1}),
                "events[3].success: invalid type: string \"yes\", expected a boolean",
            ),
            (
                json!({"name": "video.page_hidden", "finalPosition": 1, "watchTime": 1e6}),
                "events[3].watchTime: out of range (got 1000000, expected 0 to 604800)",
            ),
            (
                json!({"name": "video.exploded"}),
                "events[3].name: unknown event \"video.exploded\"",
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(at_3(event), expected);
        }
        // Outside the events too.
        let message = err(json!({"videoId": 5, "events": []}));
        assert!(
            message.starts_with("invalid batch: videoId: invalid type: integer `5`"),
            "{message}"
        );
        let message = err(json!({"videoId": "v1", "events": [{"name": "video.buffering"}]}));
        assert!(
            message.starts_with("videoId must be a video id"),
            "{message}"
        );
        let message = err(json!({"videoId": V1, "events": {}}));
        assert!(
            message.starts_with("invalid batch: events: invalid type: map"),
            "{message}"
        );
    }

    /// The document's `PlayerEvent` is `oneOf` a component per name, and its discriminator
    /// maps each name to the component that has it.
    #[test]
    fn the_document_describes_each_shape_under_its_name() {
        let schema = serde_json::to_value(PlayerEvent::schema()).unwrap();
        let mut components = Vec::new();
        PlayerEvent::schemas(&mut components);
        let components: std::collections::BTreeMap<String, Value> = components
            .into_iter()
            .map(|(n, s)| (n, serde_json::to_value(s).unwrap()))
            .collect();
        assert_eq!(schema["discriminator"]["propertyName"], "name");
        let mapping = schema["discriminator"]["mapping"].as_object().unwrap();
        assert_eq!(mapping.len(), SHAPES.len());
        assert_eq!(schema["oneOf"].as_array().unwrap().len(), SHAPES.len());
        for (name, reference) in mapping {
            let component = reference.as_str().unwrap().rsplit('/').next().unwrap();
            let shape = &components[component];
            assert_eq!(
                shape["properties"]["name"]["enum"],
                json!([name]),
                "{shape}"
            );
            assert_eq!(shape["required"][0], "name", "{shape}");
        }
    }
}
