//! `PATCH /api/videos/{id}`: an admin edits a lesson's title and description.
//!
//! 200 with the video as it is now. A field left out keeps its value; an empty or too long
//! title, a too long description, control characters or an unknown field are a 400 naming it.

use axum::extract::State;
use opentelemetry::KeyValue;
use serde::Deserialize;
use vidscope_core::CoreError;
use vidscope_core::videos;
use vidscope_telemetry::SpanExt as _;

use super::{VideoBody, admin_video_id, count_admin_action};
use crate::auth::AdminUser;
use crate::cache;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::path_segments::IdOrFilenameSegment;
use crate::openapi::responses::{
    AdminOnly, BadInput, DbFull, DbUnavailable, NoSuchVideo, NotJson, TooLarge, Unauthorized,
};
use crate::state::AppState;

/// The fields to change; at least one. A field is a string or left out: `null` is refused (400)
/// rather than read as "left out", so that the body means what the document says it does.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateVideoBody {
    /// Trimmed; 1 to 200 characters, not only white space, no control characters.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    title: Option<String>,
    /// Trimmed; at most 5000 characters, no control characters but line breaks and tabs. An
    /// empty string clears it.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(
        nullable = false,
        max_length = 5000,
        pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
    )]
    description: Option<String>,
}

/// Edit a lesson's title and description (admins)
#[utoipa::path(
    patch, path = "/api/videos/{id_or_filename}", operation_id = "updateVideo",
    params(IdOrFilenameSegment),
    request_body = UpdateVideoBody,
    responses(
        (status = 200, description = "Saved; the video as it is now", body = VideoBody),
        BadInput, Unauthorized, AdminOnly, NoSuchVideo, TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(
    name = "api.videos.update",
    skip_all,
    fields(user.id = %admin.id, video.id = tracing::field::Empty)
)]
pub async fn patch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(segment): Path<String>,
    Json(body): Json<UpdateVideoBody>,
) -> Result<Json<VideoBody>, ApiError> {
    let result = update(&state, &admin.id, &segment, body).await;
    count_admin_action(&state, "update", &result);
    result
}

async fn update(
    state: &AppState,
    admin_id: &str,
    segment: &str,
    body: UpdateVideoBody,
) -> Result<Json<VideoBody>, ApiError> {
    let id = admin_video_id(segment)?;
    tracing::Span::current().record("video.id", id.as_str());
    if body.title.is_none() && body.description.is_none() {
        return Err(ApiError::bad_request(
            "empty_update",
            "give `title`, `description` or both",
        ));
    }
    let title = parse_field(body.title.as_deref(), videos::parse_title, "invalid_title")?;
    let description = parse_field(
        body.description.as_deref(),
        videos::parse_description,
        "invalid_description",
    )?;
    let video = videos::update_details(&state.db, &id, title.as_deref(), description.as_deref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))?;
    cache::invalidate_video(&state.cache, &id).await;
    tracing::Span::current().add_event(
        "video.updated",
        vec![
            KeyValue::new("user.id", admin_id.to_owned()),
            KeyValue::new("video.id", id.as_str().to_owned()),
            KeyValue::new("video.title_changed", title.is_some()),
            KeyValue::new("video.description_changed", description.is_some()),
        ],
    );
    tracing::info!(
        user.id = admin_id,
        video.id = id.as_str(),
        video.title_changed = title.is_some(),
        video.description_changed = description.is_some(),
        "video.updated"
    );
    Ok(Json(VideoBody::from(&video)))
}

/// A field of the body, absent or parsed by `parse`; a value `parse` refuses is a 400 `code`.
fn parse_field(
    value: Option<&str>,
    parse: fn(&str) -> Result<String, CoreError>,
    code: &'static str,
) -> Result<Option<String>, ApiError> {
    value.map(parse).transpose().map_err(|e| match e {
        CoreError::Invalid(m) => ApiError::bad_request(code, m),
        other => ApiError::Core(other),
    })
}
