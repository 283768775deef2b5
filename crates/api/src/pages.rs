//! The HTML pages. Pages need a session like the API does, but answer a missing one with a
//! redirect to `/login` (and the seed's `middleware.redirect` event) instead of a 401.

use axum::http::Uri;
use axum::response::{Html, IntoResponse, Redirect, Response};
use opentelemetry::KeyValue;
use vidscope_telemetry::SpanExt as _;

use crate::auth::MaybeUser;
use crate::error::ErrorBody;

/// Sends an anonymous page request to the login page, remembering where it was going.
fn to_login(from: &Uri) -> Response {
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
    // query or another origin into the redirect.
    let safe: String = from
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        .collect();
    Redirect::to(&format!("/login?next={safe}")).into_response()
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidscope — sign in</title></head>
<body>
<h1>Sign in</h1>
<form id="login">
  <label>E-mail <input name="email" type="email" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
<p id="error" role="alert"></p>
<script>
document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const r = await fetch('/api/auth/login', {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({email: f.get('email'), password: f.get('password')}),
  });
  if (r.ok) {
    const next = new URLSearchParams(location.search).get('next') || '/';
    location.href = next.startsWith('/') && !next.startsWith('//') ? next : '/';
  } else {
    const body = await r.json().catch(() => ({}));
    document.getElementById('error').textContent = (body.error && body.error.message) || r.statusText;
  }
});
</script>
</body></html>"#;

#[utoipa::path(
    get,
    path = "/login",
    operation_id = "loginPage",
    summary = "The sign-in page",
    tag = "pages",
    responses((status = 200, description = "The sign-in form", content_type = "text/html", body = String))
)]
pub async fn login() -> Html<&'static str> {
    Html(LOGIN_PAGE)
}

/// The library page.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "homePage",
    summary = "The library page",
    tag = "pages",
    responses(
        (status = 200, description = "The library page", content_type = "text/html", body = String),
        (status = 303, description = "No valid session: to `/login?next=...`",
            headers(("Location" = String))),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn home(MaybeUser(user): MaybeUser, uri: Uri) -> Response {
    let Some(user) = user else {
        return to_login(&uri);
    };
    let email = user
        .email
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vidscope</title></head>\
         <body><h1>vidscope</h1><p>Signed in as {email} ({role}).</p></body></html>",
        role = user.role.as_str()
    ))
    .into_response()
}
