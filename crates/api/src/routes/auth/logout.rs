//! `POST /api/auth/logout`: ends the session (if any) and clears the cookie. Always 204, so a
//! client can call it blindly.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use vidscope_core::auth::delete_session;

use crate::auth::{session_cookie, signed_out};
use crate::error::ApiError;
use crate::openapi::responses::{DbFull, DbUnavailable};
use crate::state::AppState;

/// Sign out
#[utoipa::path(
    post, path = "/api/auth/logout", operation_id = "logout",
    responses(
        (status = 204, description = "Signed out (also without a session); the cookie is cleared",
            headers(("Set-Cookie" = String, description = "Expires `vidscope_session`"))),
        DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(name = "api.auth.logout", skip_all)]
pub async fn post(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let (_, Some(token)) = session_cookie(&headers) {
        delete_session(&state.db, &token).await?;
        state
            .cache
            .invalidate(&token.cache_key(), &token.cache_label())
            .await;
    }
    signed_out(state.settings.cookie_secure)
}
