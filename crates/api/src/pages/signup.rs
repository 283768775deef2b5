//! `GET /signup`: the sign-up form, when self-registration is on (`VIDSCOPE_REGISTRATION`,
//! off by default). It posts to `/api/auth/register`, which signs the new viewer in, then goes
//! to the lesson list. While registration is off the page says so instead of showing the form
//! (admins create accounts then), and the API refuses a registration anyway.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    open: bool,
}

/// The sign-up page (when self-registration is on)
#[utoipa::path(
    get, path = "/signup", operation_id = "signupPage",
    responses(
        (status = 200, description = "The sign-up form; while self-registration is off, a page saying sign-up is closed",
            content_type = "text/html", body = String),
    )
)]
pub async fn get(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let open = state.settings.registration_enabled;
    super::render(&SignupPage { open })
}
