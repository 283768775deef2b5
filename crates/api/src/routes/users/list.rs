//! `GET /api/users`: every account, by e-mail address (admins).

use axum::extract::State;
use serde::Serialize;
use vidscope_core::users;

use super::AccountBody;
use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::responses::{AdminOnly, DbUnavailable, Unauthorized};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountList {
    pub users: Vec<AccountBody>,
}

/// Every account, by e-mail address (admins)
#[utoipa::path(
    get, path = "/api/users", operation_id = "listUsers",
    responses(
        (status = 200, description = "The accounts", body = AccountList),
        Unauthorized, AdminOnly, DbUnavailable,
    )
)]
#[tracing::instrument(name = "api.users.list", skip_all, fields(user.id = %admin.id))]
pub async fn get(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<Json<AccountList>, ApiError> {
    let accounts = users::list(&state.db).await?;
    Ok(Json(AccountList {
        users: accounts.iter().map(AccountBody::from).collect(),
    }))
}
