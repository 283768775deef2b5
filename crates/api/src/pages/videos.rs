//! `GET /videos`: the lesson list with thumbnails. The page is static; its script pages
//! through `GET /api/videos` with the session cookie, so the list and the API never disagree.

use std::sync::LazyLock;

use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};

use crate::auth::MaybeUser;
use crate::error::ErrorBody;

static PAGE: LazyLock<String> =
    LazyLock::new(|| super::with_css(include_str!("../../assets/videos.html")));

#[utoipa::path(
    get,
    path = "/videos",
    operation_id = "videosPage",
    summary = "The lesson list",
    tag = "pages",
    responses(
        (status = 200, description = "The lesson list (filled by its script from `/api/videos`)", content_type = "text/html", body = String),
        (status = 303, description = "No valid session: to `/login?next=/videos`",
            headers(("Location" = String))),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn get(MaybeUser(user): MaybeUser, uri: Uri) -> Response {
    if user.is_none() {
        return super::to_login(&uri);
    }
    Html(PAGE.as_str()).into_response()
}
