//! What every route that serves a video's bytes documents alike: the range request headers it
//! reads ([`crate::routes::videos::range`]) and the answers besides the 200 that serving by
//! range brings (a part, the S3 redirect, a range past the end). A route lists them as
//! `params(..., RangeHeaders)` and `responses(..., ByteServing, ...)`; its 200, 400 and 404
//! stay its own, as they say what the route names a file by.

#![allow(
    dead_code,
    reason = "parameters and responses of the OpenAPI document only: the handlers read the \
              headers from the `HeaderMap` and answer through `ApiError`"
)]

use utoipa::{IntoParams, IntoResponses};

use crate::error::ErrorBody;

/// The request headers of a ranged read.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct RangeHeaders {
    /// Bytes of the file, e.g. `bytes=0-1023`, `bytes=-500`, `bytes=1000-`; one range only (others are ignored and the whole file is sent)
    #[param(rename = "Range")]
    range: Option<String>,
    /// An `ETag` or the `Last-Modified` date: the range applies only if the file still has it
    #[param(rename = "If-Range")]
    if_range: Option<String>,
}

/// The answers of a byte-serving route that come from ranges and the S3 store.
#[derive(IntoResponses)]
pub enum ByteServing {
    #[response(
        status = 206,
        description = "The requested range of the file",
        content_type = "video/*",
        headers(("Content-Range" = String, description = "`bytes start-end/size`"))
    )]
    Partial,
    #[response(
        status = 302,
        description = "S3 store in redirect mode: the file is at a presigned URL",
        headers(("Location" = String, description = "A presigned GET URL; it carries a credential"))
    )]
    Redirect,
    #[response(
        status = 416,
        description = "The range starts past the end of the file",
        headers(("Content-Range" = String, description = "`bytes */size`"))
    )]
    RangeNotSatisfiable(ErrorBody<'static>),
}
