//! `GET /`: the site's front door is the lesson list.

use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::MaybeUser;
use crate::openapi::responses::DbUnavailable;

/// The front page: to the lesson list
#[utoipa::path(
    get, path = "/", operation_id = "homePage",
    responses(
        (status = 303, description = "To `/videos`, or to `/login?next=/` without a valid session",
            headers(("Location" = String))),
        DbUnavailable,
    )
)]
pub async fn get(MaybeUser(user): MaybeUser, uri: Uri) -> Response {
    match user {
        Some(_) => Redirect::to("/videos").into_response(),
        None => super::to_login(&uri),
    }
}
