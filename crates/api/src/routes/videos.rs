//! `/api/videos`: the lesson library, each video's metadata, its stream and its thumbnail;
//! admins edit ([`patch`]), delete ([`delete`]) and reprocess ([`reprocess`]) lessons.

pub mod delete;
pub mod get;
pub mod list;
pub mod patch;
pub mod range;
pub mod reprocess;
pub mod stream;
pub mod thumbnail;

use serde::{Deserialize, Serialize};
use vidscope_core::CoreError;
use vidscope_core::storage::StoreError;
use vidscope_core::videos::Video;

use crate::error::ApiError;

/// The public view of a video, as listed and as answered after an upload.
// Deserialize: the metadata route caches it as is.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VideoBody {
    /// A UUID.
    pub id: String,
    pub title: String,
    /// Written by an admin; empty until then.
    // `default`: metadata cached before the field existed still reads.
    #[serde(default)]
    pub description: String,
    pub filename: String,
    /// `uploaded`, `processing`, `ready` or `failed`.
    pub status: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// `null` until the worker has probed the file.
    pub duration_seconds: Option<f64>,
    /// `null` until the worker has made a thumbnail.
    pub thumbnail_url: Option<String>,
    /// Where a player fetches the bytes (with the session cookie): `/api/videos/{id}/{filename}`.
    pub stream_url: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<&Video> for VideoBody {
    fn from(v: &Video) -> Self {
        Self {
            id: v.id.clone(),
            title: v.title.clone(),
            description: v.description.clone(),
            filename: v.filename.clone(),
            status: v.status.as_str().to_owned(),
            content_type: v.content_type.clone(),
            size_bytes: v.size_bytes,
            duration_seconds: v.duration_seconds,
            thumbnail_url: v
                .thumbnail_key
                .as_ref()
                .map(|_| format!("/api/videos/{}/thumbnail", v.id)),
            stream_url: format!("/api/videos/{}/{}", v.id, v.filename),
            created_at: v.created_at,
        }
    }
}

/// Object-store failures as HTTP answers: a missing object is a 404 like a missing row, a
/// store that is down is a 503, one out of space a 507 (the core's classification, in
/// [`ApiError::Core`]), anything else a logged 500.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => ApiError::NotFound("video file not found".into()),
        StoreError::RangeNotSatisfiable { size } => ApiError::RangeNotSatisfiable { size },
        StoreError::InvalidKey(m) => ApiError::bad_request("invalid_key", m),
        StoreError::Unavailable(cause) => ApiError::Unavailable {
            dependency: "the object store",
            cause,
        },
        other => ApiError::Core(CoreError::Store(other)),
    }
}

/// A 400 for a name or id that does not parse, with the parser's reason.
pub(crate) fn invalid_filename(e: CoreError) -> ApiError {
    match e {
        CoreError::Invalid(m) => ApiError::bad_request("invalid_filename", m),
        other => ApiError::Core(other),
    }
}

/// The id of an admin route's `{id_or_filename}` segment: these routes take a video id only.
pub(crate) fn admin_video_id(segment: &str) -> Result<vidscope_core::videos::VideoId, ApiError> {
    vidscope_core::videos::VideoId::parse(segment).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_id",
            "id_or_filename: this route takes a video id (a UUID), not a file name",
        )
    })
}

/// The `action` labels of `video.admin_actions_total`.
pub(crate) const ADMIN_ACTIONS: [&str; 3] = ["update", "delete", "reprocess"];

/// Counts an admin action on a lesson in `video.admin_actions_total` ([`super::count_action`]).
pub(crate) fn count_admin_action<T>(
    state: &crate::state::AppState,
    action: &'static str,
    result: &Result<T, ApiError>,
) {
    super::count_action(&state.metrics.video_admin_actions_total, &[action], result);
}
