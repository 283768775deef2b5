//! `POST /api/users/{id}/temporary-password`: an admin sets a temporary password, for a user
//! who forgot theirs. The account's sessions end; at its next sign-in the user must choose a
//! new password (`POST /api/account/password`) before anything else: every other route
//! answers 403 `password_change_required` until then. An admin changes their own password
//! like everyone else (409 `cannot_reset_self` here).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use vidscope_core::domain::Password;
use vidscope_core::users::{self, NewPassword};

use super::{Detail, audit, counted, no_such_user, user_id};
use crate::auth::{AdminUser, forget_sessions};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::openapi::path_segments::UserIdSegment;
use crate::openapi::responses::{
    AdminOnly, BadInput, DbFull, DbUnavailable, NoSuchAccount, NotJson, TooLarge, Unauthorized,
};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporaryPasswordBody {
    /// 8 to 128 characters; hand it to the user another way than this platform.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    password: String,
}

/// Set a temporary password the user must change at next sign-in (admins)
#[utoipa::path(
    post, path = "/api/users/{id}/temporary-password", operation_id = "setTemporaryPassword",
    params(UserIdSegment),
    request_body = TemporaryPasswordBody,
    responses(
        (status = 204, description = "Set; the account's sessions have ended"),
        BadInput, Unauthorized, AdminOnly, NoSuchAccount,
        (status = 409, description = "`cannot_reset_self`: the admin's own account (use `POST /api/account/password`)", body = ErrorBody),
        TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(
    name = "api.users.set_temporary_password",
    skip_all,
    fields(user.id = %admin.id, target.user.id = tracing::field::Empty)
)]
pub async fn post(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(segment): Path<String>,
    Json(body): Json<TemporaryPasswordBody>,
) -> Result<StatusCode, ApiError> {
    let result = set(&state, &admin.id, &segment, body).await;
    counted(&state, &["temporary_password"], result)
}

async fn set(
    state: &AppState,
    admin_id: &str,
    segment: &str,
    body: TemporaryPasswordBody,
) -> Result<StatusCode, ApiError> {
    let id = user_id(segment)?;
    let password = Password::parse(&body.password).map_err(|_| {
        ApiError::bad_request(
            "invalid_password",
            "password must be between 8 and 128 characters",
        )
    })?;
    if id.as_str() == admin_id {
        return Err(ApiError::Conflict {
            code: "cannot_reset_self",
            message:
                "this is your own account: change your password with POST /api/account/password"
                    .into(),
        });
    }
    let ended = users::set_password(
        &state.db,
        id.as_str(),
        &password,
        NewPassword::Temporary,
        None,
    )
    .await?
    .ok_or_else(|| no_such_user(&id))?;
    forget_sessions(state, &ended).await;
    let detail = Detail {
        sessions_revoked: Some(ended.len()),
        ..Detail::default()
    };
    audit("user.temporary_password_set", admin_id, id.as_str(), detail);
    Ok(StatusCode::NO_CONTENT)
}
