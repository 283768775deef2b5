//! `GET /login`: the sign-in form. It posts to `/api/auth/login` and then goes to `?next=`
//! (a path of this site only) or the lesson list.

use askama::Template;
use axum::response::Html;

use crate::error::ApiError;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage;

#[utoipa::path(
    get,
    path = "/login",
    operation_id = "loginPage",
    summary = "The sign-in page",
    tag = "pages",
    responses((status = 200, description = "The sign-in form", content_type = "text/html", body = String))
)]
pub async fn get() -> Result<Html<String>, ApiError> {
    super::render(&LoginPage)
}
