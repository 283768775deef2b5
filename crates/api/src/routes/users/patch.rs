//! `PATCH /api/users/{id}`: an admin changes an account's role, disables it or enables it
//! again, in one transaction.
//!
//! 200 with the account as it is now. Disabling ends the account's sessions at once (and it
//! cannot sign in until enabled again); a role change applies to its open sessions at once.
//! Refused with a 409 naming the rule: an admin disabling their own account
//! (`cannot_disable_self`), a change leaving no enabled admin (`last_admin`).

use axum::extract::State;
use serde::Deserialize;
use vidscope_core::domain::Role;
use vidscope_core::users::{self, AccountChange, ChangeRefused};

use super::{AccountBody, Detail, audit, counted, no_such_user, user_id};
use crate::auth::{AdminUser, forget_sessions};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::openapi::path_segments::UserIdSegment;
use crate::openapi::responses::{
    AdminOnly, BadInput, DbFull, DbUnavailable, NoSuchAccount, NotJson, TooLarge, Unauthorized,
};
use crate::state::AppState;

/// What to change; at least one field. A field is left out or has a value: `null` is a 400.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateUserBody {
    /// `admin` or `viewer`.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(nullable = false, pattern = "^(admin|viewer)$")]
    role: Option<String>,
    /// `true` disables the account (its sessions end, it cannot sign in), `false` enables it.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(nullable = false)]
    disabled: Option<bool>,
}

impl UpdateUserBody {
    /// The counter's actions this body asks for.
    fn actions(&self) -> Vec<&'static str> {
        let mut actions = Vec::new();
        if self.role.is_some() {
            actions.push("role_change");
        }
        match self.disabled {
            Some(true) => actions.push("disable"),
            Some(false) => actions.push("enable"),
            None => {}
        }
        actions
    }
}

/// Change an account's role, disable or enable it (admins)
#[utoipa::path(
    patch, path = "/api/users/{id}", operation_id = "updateUser",
    params(UserIdSegment),
    request_body = UpdateUserBody,
    responses(
        (status = 200, description = "Saved; the account as it is now", body = AccountBody),
        BadInput, Unauthorized, AdminOnly, NoSuchAccount,
        (status = 409, description = "`cannot_disable_self`: an admin cannot disable their own account; \
            `last_admin`: the change would leave no enabled admin", body = ErrorBody),
        TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
#[tracing::instrument(
    name = "api.users.update",
    skip_all,
    fields(user.id = %admin.id, target.user.id = tracing::field::Empty)
)]
pub async fn patch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(segment): Path<String>,
    Json(body): Json<UpdateUserBody>,
) -> Result<Json<AccountBody>, ApiError> {
    let actions = body.actions();
    let result = update(&state, &admin.id, &segment, body).await;
    counted(&state, &actions, result)
}

async fn update(
    state: &AppState,
    admin_id: &str,
    segment: &str,
    body: UpdateUserBody,
) -> Result<Json<AccountBody>, ApiError> {
    let id = user_id(segment)?;
    if body.role.is_none() && body.disabled.is_none() {
        return Err(ApiError::bad_request(
            "empty_update",
            "give `role`, `disabled` or both",
        ));
    }
    let role = body
        .role
        .as_deref()
        .map(Role::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_role", "role must be admin or viewer"))?;
    let change = AccountChange {
        role,
        disabled: body.disabled,
    };
    let changed = match users::update(&state.db, admin_id, id.as_str(), change).await? {
        Ok(changed) => changed,
        Err(ChangeRefused::NoSuchAccount) => return Err(no_such_user(&id)),
        Err(ChangeRefused::DisablingSelf) => {
            return Err(ApiError::Conflict {
                code: "cannot_disable_self",
                message: "disabled: an admin cannot disable their own account".into(),
            });
        }
        Err(ChangeRefused::LastAdmin) => {
            return Err(ApiError::Conflict {
                code: "last_admin",
                message: "this is the last enabled admin: make another account admin first".into(),
            });
        }
    };
    let (before, after) = (&changed.before, &changed.after);
    forget_sessions(state, &changed.ended_sessions).await;
    if before.role != after.role {
        // Open sessions are cached with the role they started with.
        forget_sessions(state, &users::sessions_of(&state.db, id.as_str()).await?).await;
        let roles = Some((before.role, after.role));
        audit(
            "user.role_changed",
            admin_id,
            id.as_str(),
            Detail {
                roles,
                ..Detail::default()
            },
        );
    }
    match (before.disabled_at, after.disabled_at) {
        (None, Some(_)) => {
            let sessions_revoked = Some(changed.ended_sessions.len());
            let detail = Detail {
                sessions_revoked,
                ..Detail::default()
            };
            audit("user.disabled", admin_id, id.as_str(), detail);
        }
        (Some(_), None) => audit("user.enabled", admin_id, id.as_str(), Detail::default()),
        _ => {}
    }
    Ok(Json(AccountBody::from(after)))
}
