//! The HTML pages: sign-in, the lesson list and the player. Pages need a session like the API
//! does, but answer a missing one with a redirect to `/login` (and the seed's
//! `middleware.redirect` event) instead of a 401. Everything a page needs is compiled in (its
//! HTML from `templates/`, askama; its scripts and styles from `assets/`, served by [`assets`]):
//! no CDN, no second origin, no inline code, nothing to deploy beside the binary.

pub mod account;
pub mod assets;
pub mod home;
pub mod login;
pub mod player;
pub mod safe_next;
pub mod signup;
pub mod trace_viewer;
pub mod users;
pub mod videos;

use askama::Template;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Redirect, Response};
use opentelemetry::KeyValue;
use vidscope_telemetry::SpanExt as _;

use crate::error::ApiError;
use safe_next::SafeNext;

/// Sends an anonymous page request to the login page, remembering where it was going.
pub(crate) fn to_login(from: &Uri) -> Response {
    let from = from.path();
    tracing::Span::current().add_event(
        "middleware.redirect",
        vec![
            KeyValue::new("from", from.to_owned()),
            KeyValue::new("to", "/login"),
            KeyValue::new("reason", "no_session"),
        ],
    );
    // `from` is a path of this site: only [A-Za-z0-9/._-] survive, so it cannot smuggle a
    // query into the redirect; and the login page's own check ([`SafeNext`]) keeps a path it
    // would refuse anyway (`//x`, no route of ours) out of it.
    let safe: String = from
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        .collect();
    let next = SafeNext::or_default(Some(&safe));
    Redirect::to(&format!("/login?next={}", next.as_str())).into_response()
}

/// A page rendered to HTML. A template's text is checked when the crate compiles and every
/// value it prints is HTML-escaped unless the template says otherwise; a value whose `Display`
/// fails (none of ours can) is a logged 500 like any other.
fn render(page: &impl Template) -> Result<Html<String>, ApiError> {
    page.render()
        .map(Html)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("rendering a page")))
}
