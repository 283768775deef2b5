//! `GET /api/auth/session`: who am I. 401 without a valid session.

use axum::Json;

use crate::auth::CurrentUser;
use crate::openapi::responses::{DbUnavailable, Unauthorized};
use crate::routes::auth::UserResponse;

#[utoipa::path(
    get,
    path = "/api/auth/session",
    operation_id = "getSession",
    summary = "The signed-in account",
    tag = "auth",
    responses(
        (status = 200, description = "The signed-in account", body = UserResponse),
        Unauthorized, DbUnavailable,
    )
)]
pub async fn get(CurrentUser(user): CurrentUser) -> Json<UserResponse> {
    Json(UserResponse::from(&user))
}
