//! `POST /api/auth/login` (seed 001's flow): credentials → session cookie, throttled per
//! account and per client address.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::KeyValue;
use serde::Deserialize;
use vidscope_core::auth::{LoginFailure, create_session, verify_credentials};
use vidscope_core::domain::{Email, Password};
use vidscope_telemetry::SpanExt as _;

use crate::auth::{auth_failed, session_cookie, set_cookie};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::openapi::responses::{BadInput, DbFull, DbUnavailable, NotJson, TooLarge};
use crate::routes::auth::UserResponse;
use crate::state::AppState;

// Both fields optional so a missing one gets the seed's `auth.credentials.missing` event and
// a 400 naming it, rather than a generic deserialisation error.
/// Both fields are required; a missing, `null` or empty one is a 400 naming it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[schema(required = true, value_type = crate::openapi::formats::Email)]
    email: Option<String>,
    /// Any non-empty password; the length rules of registration are not applied here.
    #[schema(required = true, value_type = String, format = Password, min_length = 1)]
    password: Option<String>,
}

/// Client addresses get this many times the per-account allowance (several people can share
/// one address).
const ADDRESS_FACTOR: u32 = 4;

// No span of its own: events and `user.id` go on the server span, which names the route.
/// Sign in with e-mail and password
#[utoipa::path(
    post, path = "/api/auth/login", operation_id = "login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = UserResponse,
            headers(("Set-Cookie" = String, description = "`vidscope_session`: HttpOnly, SameSite=Lax, Secure when configured"))),
        (status = 401, description = "Wrong e-mail or password (`invalid_credentials`)", body = ErrorBody),
        (status = 403, description = "The password is right but an admin disabled the account (`account_disabled`)", body = ErrorBody),
        (status = 429, description = "Too many failed attempts for the account or address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        BadInput, TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
pub async fn post(
    State(state): State<AppState>,
    Extension(ClientIp(client)): Extension<ClientIp>,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    let span = tracing::Span::current();
    let (email, password) = match (body.email.as_deref(), body.password.as_deref()) {
        (Some(e), Some(p)) if !e.trim().is_empty() && !p.is_empty() => (e, p),
        (e, p) => {
            let missing: Vec<&str> = [
                e.is_none_or(|e| e.trim().is_empty()).then_some("email"),
                p.is_none_or(str::is_empty).then_some("password"),
            ]
            .into_iter()
            .flatten()
            .collect();
            span.add_event(
                "auth.credentials.missing",
                vec![KeyValue::new("missing", missing.join(","))],
            );
            return Err(ApiError::bad_request(
                "credentials_missing",
                format!("{} required", missing.join(" and ")),
            ));
        }
    };
    let email = Email::parse(email)?;
    // Length rules apply at registration; here any non-empty password is checked as given,
    // so a too-short guess is just a wrong password.
    let password = Password::parse(password).ok();

    let account_key = format!("account:{}", email.as_str());
    let address_key = format!("address:{client}");
    for (key, factor) in [(&account_key, 1), (&address_key, ADDRESS_FACTOR)] {
        if let Err(retry_after_secs) = state.login_limiter.check(key, factor).await {
            auth_failed(session_cookie(&headers).0, "rate_limited");
            tracing::warn!(
                limit = if factor == 1 { "account" } else { "address" },
                "login throttled"
            );
            return Err(ApiError::TooManyRequests { retry_after_secs });
        }
    }

    let verdict = match &password {
        Some(p) => verify_credentials(&state.db, &email, p).await?,
        None => Err(LoginFailure::WrongPassword),
    };
    let user = match verdict {
        Ok(u) => u,
        // The password was right: saying so costs nothing, and tells the user what to do.
        Err(failure @ LoginFailure::Disabled) => {
            auth_failed(session_cookie(&headers).0, failure.reason());
            tracing::info!(reason = failure.reason(), "login refused");
            return Err(ApiError::Denied {
                code: "account_disabled",
                message: "this account is disabled: ask an admin to enable it",
            });
        }
        Err(failure) => {
            state.login_limiter.record_failure(&account_key).await;
            state.login_limiter.record_failure(&address_key).await;
            auth_failed(session_cookie(&headers).0, failure.reason());
            tracing::info!(reason = failure.reason(), "login refused");
            return Err(ApiError::InvalidCredentials);
        }
    };
    state.login_limiter.reset(&account_key).await;

    let token = create_session(&state.db, &user, state.settings.session_ttl).await?;
    span.record("user.id", user.id.as_str());
    tracing::Span::current().add_event(
        "auth.session.created",
        vec![
            KeyValue::new("user.id", user.id.clone()),
            KeyValue::new("user.role", user.role.as_str()),
        ],
    );
    let cookie = set_cookie(
        &token,
        state.settings.session_ttl.as_secs(),
        state.settings.cookie_secure,
    );
    let mut response = axum::Json(UserResponse::from(&user)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(response)
}
