//! `GET /login`: the sign-in form. It posts to `/api/auth/login` and then goes to `?next=` if
//! that is a path of this site ([`SafeNext`]), or to the lesson list. The check is made here,
//! on the server: the page only ever carries a target that passed it.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::safe_next::SafeNext;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    /// Where the form's script goes once signed in (`data-next`).
    next: &'a str,
    /// Self-registration is on: the page links to `/signup`.
    registration: bool,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The sign-in page
#[utoipa::path(
    get, path = "/login", operation_id = "loginPage",
    params(("next" = Option<String>, Query,
        description = "Where to go once signed in: a path of this site (`/videos/abc?t=3`). \
            Anything else (another origin, `//host`, a backslash, whitespace or a control \
            character, also once percent-decoded) is ignored for `/videos`")),
    responses((status = 200, description = "The sign-in form", content_type = "text/html", body = String))
)]
pub async fn get(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    // A query that does not parse (`next` twice, say) is no target either: the page still
    // renders, with the default.
    let raw = query.ok().and_then(|Query(q)| q.next);
    let next = SafeNext::or_default(raw.as_deref());
    super::render(&LoginPage {
        next: next.as_str(),
        registration: state.settings.registration_enabled,
    })
}
