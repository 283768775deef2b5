//! `POST /api/account/password`: a signed-in user changes their password.
//!
//! The current password is required (a session left open on a shared computer must not be
//! enough to take the account over), and wrong guesses count against the account's login
//! throttle. 204 once changed: every other session of the account has ended, the one the
//! request came from stays. This is also how a user replaces a temporary password an admin
//! set.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use vidscope_core::domain::Password;
use vidscope_core::users::{self, NewPassword};

use crate::auth::{SignedIn, forget_sessions};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::openapi::responses::{DbFull, DbUnavailable, NotJson, TooLarge, Unauthorized};
use crate::routes::users::{Detail, audit, counted};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// The account's password now (the temporary one after an admin set it).
    #[schema(format = Password, min_length = 1)]
    current_password: String,
    /// 8 to 128 characters, not the current password.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    new_password: String,
}

/// Change your password (your other sessions end)
#[utoipa::path(
    post, path = "/api/account/password", operation_id = "changePassword",
    request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "Changed; every other session of the account has ended"),
        (status = 400, description = "`invalid_password`: `new_password` is not 8 to 128 characters or is the current one; \
            `wrong_password`: `current_password` is not the account's password; `invalid_json`: a field is missing", body = ErrorBody),
        Unauthorized,
        (status = 429, description = "Too many wrong passwords for the account", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(name = "api.account.change_password", skip_all, fields(user.id = %session.user.id))]
pub async fn post(
    State(state): State<AppState>,
    session: SignedIn,
    Json(body): Json<ChangePasswordBody>,
) -> Result<StatusCode, ApiError> {
    let result = change(&state, &session, body).await;
    counted(&state, &["password_change"], result)
}

async fn change(
    state: &AppState,
    session: &SignedIn,
    body: ChangePasswordBody,
) -> Result<StatusCode, ApiError> {
    let user = &session.user;
    let new = Password::parse(&body.new_password).map_err(|_| {
        ApiError::bad_request(
            "invalid_password",
            "new_password must be between 8 and 128 characters",
        )
    })?;
    let throttle = format!("account:{}", user.email);
    if let Err(retry_after_secs) = state.login_limiter.check(&throttle, 1).await {
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    // Any text is checked as given: one the rules refuse is just not the password.
    let current_ok = match Password::parse(&body.current_password) {
        Ok(current) => users::verify_password(&state.db, &user.id, &current).await?,
        Err(_) => false,
    };
    if !current_ok {
        state.login_limiter.record_failure(&throttle).await;
        return Err(ApiError::bad_request(
            "wrong_password",
            "current_password is not this account's password",
        ));
    }
    state.login_limiter.reset(&throttle).await;
    if body.new_password == body.current_password {
        return Err(ApiError::bad_request(
            "invalid_password",
            "new_password must differ from current_password",
        ));
    }
    let ended = users::set_password(
        &state.db,
        &user.id,
        &new,
        NewPassword::Chosen,
        Some(&session.token),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound("the account is gone".into()))?;
    forget_sessions(state, &ended).await;
    // The session kept is cached with the account as it was (a temporary password, say).
    forget_sessions(state, &[session.token.stored()]).await;
    audit(
        "user.password_changed",
        &user.id,
        &user.id,
        Detail {
            sessions_revoked: Some(ended.len()),
            ..Detail::default()
        },
    );
    Ok(StatusCode::NO_CONTENT)
}
