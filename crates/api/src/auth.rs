//! Who is calling: the session cookie, the extractors handlers use, and the seed's auth events.
//!
//! The cookie is parsed and written by hand: it is one name with fixed attributes, which does
//! not justify a cookie-jar dependency.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use opentelemetry::KeyValue;
use vidscope_core::auth::{SessionHash, SessionToken, User, session_user};
use vidscope_telemetry::SpanExt as _;

use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "vidscope_session";

/// How long a session lookup is cached. Logout, a password change, signing out everywhere
/// and an admin's change to the account (disabled, a role, a temporary password) drop the
/// sessions they touch at once ([`forget_sessions`]); an expired one is seen within this
/// delay.
pub const SESSION_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The raw session token from the `Cookie` header, and whether the header had our cookie at
/// all (the seed's `hasCookie`).
pub fn session_cookie(headers: &axum::http::HeaderMap) -> (bool, Option<SessionToken>) {
    let mut seen = false;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, v)) = pair.trim().split_once('=')
                && name == SESSION_COOKIE
            {
                seen = true;
                if let Some(t) = SessionToken::parse(v.trim()) {
                    return (true, Some(t));
                }
            }
        }
    }
    (seen, None)
}

/// `Set-Cookie` for a new session: HttpOnly, SameSite=Lax, Secure when configured.
pub fn set_cookie(token: &SessionToken, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        token.expose(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A 204 that removes the session cookie: what signing out answers.
pub fn signed_out(secure: bool) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let mut r = axum::http::StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        axum::http::HeaderValue::from_str(&clear_cookie(secure))
            .map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(r)
}

/// The seed's `auth.failed` event on the current (server) span.
pub fn auth_failed(has_cookie: bool, reason: &'static str) {
    tracing::Span::current().add_event(
        "auth.failed",
        vec![
            KeyValue::new("hasCookie", has_cookie),
            KeyValue::new("reason", reason),
        ],
    );
}

/// Looks the session up; records `user.id` on the server span when there is one.
async fn resolve(
    parts: &Parts,
    state: &AppState,
) -> Result<Result<SignedIn, (bool, &'static str)>, ApiError> {
    let (has_cookie, token) = session_cookie(&parts.headers);
    let Some(token) = token else {
        return Ok(Err((
            has_cookie,
            if has_cookie {
                "malformed_session"
            } else {
                "no_session"
            },
        )));
    };
    let user = state
        .cache
        .get_or_load(
            &token.cache_key(),
            &token.cache_label(),
            SESSION_CACHE_TTL,
            || session_user(&state.db, &token),
        )
        .await?;
    match user {
        Some(user) => {
            tracing::Span::current().record("user.id", user.id.as_str());
            Ok(Ok(SignedIn { user, token }))
        }
        None => Ok(Err((true, "invalid_session"))),
    }
}

/// Drops ended sessions from the session cache, so they stop working at once rather than
/// when their cached entry expires ([`SESSION_CACHE_TTL`]).
pub async fn forget_sessions(state: &AppState, sessions: &[SessionHash]) {
    for s in sessions {
        state
            .cache
            .invalidate(&s.cache_key(), &s.cache_label())
            .await;
    }
}

/// Any signed-in user, a user who must still replace a temporary password included, with the
/// session's token: for the few routes such a user may call (change the password, sign out,
/// who am I). Every other route takes [`CurrentUser`]. 401 without a valid session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub token: SessionToken,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match resolve(parts, state).await? {
            Ok(signed_in) => Ok(signed_in),
            Err((has_cookie, reason)) => {
                auth_failed(has_cookie, reason);
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// A signed-in user, or 401 with an `auth.failed` event; a user who must replace a temporary
/// password first gets a 403 `password_change_required`.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let SignedIn { user, .. } = SignedIn::from_request_parts(parts, state).await?;
        if user.must_change_password {
            return Err(ApiError::Denied {
                code: "password_change_required",
                message: "this account has a temporary password: choose a new one with \
                          POST /api/account/password first",
            });
        }
        Ok(CurrentUser(user))
    }
}

/// A signed-in admin: 401 without a session, 403 for viewers.
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(u) = CurrentUser::from_request_parts(parts, state).await?;
        AdminUser::check(u)
    }
}

impl AdminUser {
    /// `user` if an admin, else the 403 every admin-only route and page answers.
    pub(crate) fn check(user: User) -> Result<Self, ApiError> {
        if user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::Forbidden(
                "for admins only: this needs the admin role",
            ))
        }
    }
}

/// The user when there is a valid session, without rejecting (pages decide what to do). A
/// user who must replace a temporary password counts as signed out here, so pages send them
/// to `/login`, whose form then asks for the new password.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let signed_in = resolve(parts, state).await?.ok();
        Ok(MaybeUser(
            signed_in
                .map(|s| s.user)
                .filter(|u| !u.must_change_password),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn finds_the_session_cookie_among_others() {
        let t = "ab".repeat(32);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {SESSION_COOKIE}={t}; x=1")).unwrap(),
        );
        let (seen, tok) = session_cookie(&h);
        assert!(seen);
        assert_eq!(tok.unwrap().expose(), t);

        h.insert(
            header::COOKIE,
            HeaderValue::from_static("vidscope_session=nope"),
        );
        assert!(matches!(session_cookie(&h), (true, None)));
        assert!(matches!(session_cookie(&HeaderMap::new()), (false, None)));
    }

    #[test]
    fn cookie_attributes() {
        let t = SessionToken::parse(&"0".repeat(64)).unwrap();
        let c = set_cookie(&t, 60, true);
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "Max-Age=60", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie(&t, 60, false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
