//! `GET /account`: the signed-in user's own account: change the password (required first after
//! an admin set a temporary one: the sign-in form comes here then), sign out everywhere. The
//! page's script calls `/api/account/password` and `/api/account/sessions`.

use askama::Template;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

use crate::auth::SignedIn;
use crate::error::ApiError;
use crate::openapi::responses::{DbUnavailable, ToLogin};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    email: &'a str,
    /// An admin set a temporary password: the page says it must be replaced.
    must_change_password: bool,
    is_admin: bool,
}

/// Your account: change your password, sign out everywhere
#[utoipa::path(
    get, path = "/account", operation_id = "accountPage",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        ToLogin, DbUnavailable,
    )
)]
pub async fn get(signed_in: Result<SignedIn, ApiError>, uri: Uri) -> Result<Response, ApiError> {
    // A user with a temporary password may use this page (and no other).
    let user = match signed_in {
        Ok(SignedIn { user, .. }) => user,
        Err(ApiError::Unauthorized) => return Ok(super::to_login(&uri)),
        Err(other) => return Err(other),
    };
    let page = AccountPage {
        email: &user.email,
        must_change_password: user.must_change_password,
        is_admin: user.is_admin(),
    };
    Ok(super::render(&page)?.into_response())
}
