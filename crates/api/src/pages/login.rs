//! `GET /login`: the sign-in form. It posts to `/api/auth/login` and then goes to `?next=`
//! (a path of this site only) or the lesson list.

use std::sync::LazyLock;

use axum::response::Html;

static PAGE: LazyLock<String> =
    LazyLock::new(|| super::with_css(include_str!("../../assets/login.html")));

#[utoipa::path(
    get,
    path = "/login",
    operation_id = "loginPage",
    summary = "The sign-in page",
    tag = "pages",
    responses((status = 200, description = "The sign-in form", content_type = "text/html", body = String))
)]
pub async fn get() -> Html<&'static str> {
    Html(PAGE.as_str())
}
