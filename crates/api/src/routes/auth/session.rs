//! `GET /api/auth/session`: who am I. 401 without a valid session. A user who must replace a
//! temporary password gets 200 too, with `must_change_password`, so a page can ask for it.

use axum::Json;

use crate::auth::SignedIn;
use crate::openapi::responses::{DbUnavailable, Unauthorized};
use crate::routes::auth::UserResponse;

/// The signed-in account
#[utoipa::path(
    get, path = "/api/auth/session", operation_id = "getSession",
    responses(
        (status = 200, description = "The signed-in account", body = UserResponse),
        Unauthorized, DbUnavailable,
    )
)]
pub async fn get(SignedIn { user, .. }: SignedIn) -> Json<UserResponse> {
    Json(UserResponse::from(&user))
}
