//! `GET /videos`: the lesson list with thumbnails. The page is static; its script pages
//! through `GET /api/videos` with the session cookie, so the list and the API never disagree.

use askama::Template;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

use crate::auth::MaybeUser;
use crate::error::ApiError;
use crate::openapi::responses::{DbUnavailable, ToLogin};

#[derive(Template)]
#[template(path = "videos.html")]
struct VideosPage;

#[utoipa::path(
    get,
    path = "/videos",
    operation_id = "videosPage",
    summary = "The lesson list",
    tag = "pages",
    responses(
        (status = 200, description = "The lesson list (filled by its script from `/api/videos`)", content_type = "text/html", body = String),
        ToLogin, DbUnavailable,
    )
)]
pub async fn get(MaybeUser(user): MaybeUser, uri: Uri) -> Result<Response, ApiError> {
    if user.is_none() {
        return Ok(super::to_login(&uri));
    }
    Ok(super::render(&VideosPage)?.into_response())
}
