//! `DELETE /api/account/sessions`: sign out everywhere. Every session of the account ends,
//! the one the request came from included (its cookie is cleared): for a lost phone or a
//! shared computer left signed in.

use axum::extract::State;
use axum::response::Response;
use vidscope_core::users;

use crate::auth::{SignedIn, forget_sessions, signed_out};
use crate::error::ApiError;
use crate::openapi::responses::{DbFull, DbUnavailable, Unauthorized};
use crate::routes::users::{Detail, audit, counted};
use crate::state::AppState;

/// Sign out of every session, this one included
#[utoipa::path(
    delete, path = "/api/account/sessions", operation_id = "signOutEverywhere",
    responses(
        (status = 204, description = "Every session of the account has ended; the cookie is cleared",
            headers(("Set-Cookie" = String, description = "Expires `vidscope_session`"))),
        Unauthorized, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(name = "api.account.sign_out_all", skip_all, fields(user.id = %session.user.id))]
pub async fn delete(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, ApiError> {
    let id = session.user.id.as_str();
    let ended = users::revoke_sessions(&state.db, id, None).await?;
    forget_sessions(&state, &ended).await;
    audit(
        "user.sessions_revoked",
        id,
        id,
        Detail {
            sessions_revoked: Some(ended.len()),
            ..Detail::default()
        },
    );
    counted(
        &state,
        &["sign_out_all"],
        signed_out(state.settings.cookie_secure),
    )
}
