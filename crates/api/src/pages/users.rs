//! `GET /users`: the admins' account page. The server lists the accounts (askama escapes every
//! e-mail address); the page's script changes a role, disables or enables an account and sets
//! a temporary password through `/api/users`, then reloads the list.

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use vidscope_core::users::{self, Account};

use crate::auth::{AdminUser, MaybeUser};
use crate::error::ApiError;
use crate::openapi::responses::{AdminOnly, DbUnavailable, ToLogin};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    accounts: &'a [Account],
    /// The signed-in admin: their row has no disable button (the API refuses it anyway).
    me: String,
}

/// Manage accounts (admins)
#[utoipa::path(
    get, path = "/users", operation_id = "usersPage",
    responses(
        (status = 200, description = "The accounts, with their actions", content_type = "text/html", body = String),
        ToLogin, AdminOnly, DbUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Some(user) = user else {
        return Ok(super::to_login(&uri));
    };
    let AdminUser(admin) = AdminUser::check(user)?;
    let accounts = users::list(&state.db).await?;
    let page = UsersPage {
        accounts: &accounts,
        me: admin.id,
    };
    Ok(super::render(&page)?.into_response())
}
