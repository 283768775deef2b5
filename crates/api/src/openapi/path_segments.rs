//! The path segments routes share, each described once for the document: a route lists the
//! one it takes, `params(VideoIdSegment)`, instead of repeating its name, format and
//! description.
//!
//! Handlers take the segment as a string and parse it themselves (`admin_video_id`, `user_id`,
//! `parse_video_id`), so a bad one is a 400 that names the segment and says what it must be;
//! these types only describe it and are never built.

#![allow(
    dead_code,
    reason = "parameters of the OpenAPI document only: handlers extract the segment as a string"
)]

use utoipa::IntoParams;

/// `Name { segment: Format, "description" };` makes a path parameter named `segment` whose
/// schema is the [`super::formats`] type `Format`: a line each, so they read as a table.
macro_rules! path_segments {
    ($($(#[$doc:meta])* $name:ident { $segment:ident: $format:ident, $description:literal };)*) => {$(
        $(#[$doc])*
        #[derive(IntoParams)]
        #[into_params(parameter_in = Path)]
        pub struct $name {
            #[doc = $description]
            #[param(value_type = super::formats::$format)]
            $segment: String,
        }
    )*};
}

path_segments! {
    /// `{id_or_filename}` on the routes that take only an id there (the segment is shared
    /// with `GET /api/videos/{id_or_filename}`, which also takes a filename: axum registers one
    /// pattern per path shape).
    IdOrFilenameSegment { id_or_filename: VideoId, "The video's id" };
    /// `{video_id}`: the player page and a resume position.
    VideoIdSegment { video_id: VideoId, "The video's id" };
    /// `{id}` of an account.
    UserIdSegment { id: UserId, "The account's id" };
    /// `{trace_id}` of the trace viewer.
    TraceIdSegment { trace_id: TraceId, "The trace id" };
}
