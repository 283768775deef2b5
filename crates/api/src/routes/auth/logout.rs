//! `POST /api/auth/logout`: ends the session (if any) and clears the cookie. Always 204, so a
//! client can call it blindly.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vidscope_core::auth::delete_session;

use crate::auth::{clear_cookie, session_cookie};
use crate::error::ApiError;
use crate::openapi::responses::{DbFull, DbUnavailable};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    operation_id = "logout",
    summary = "Sign out",
    tag = "auth",
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
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear_cookie(state.settings.cookie_secure))
            .map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(r)
}
