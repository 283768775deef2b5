//! `POST /api/auth/register`: self-service viewer accounts, unless disabled by
//! `VIDSCOPE_REGISTRATION=false`. Answers 201 and signs the new user in.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vidscope_core::auth::{User, create_session};
use vidscope_core::domain::{Email, Password, Role};
use vidscope_core::users::create_user;

use crate::auth::set_cookie;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::auth::UserBody;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct RegisterBody {
    email: String,
    password: String,
}

// No span of its own: `user.id` goes on the server span, which names the route.
pub async fn post(
    State(state): State<AppState>,
    Json(body): Json<RegisterBody>,
) -> Result<Response, ApiError> {
    if !state.settings.registration_enabled {
        return Err(ApiError::Forbidden(
            "registration is disabled on this server",
        ));
    }
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password)?;
    let id = create_user(&state.db, &email, &password, Role::Viewer).await?;
    tracing::Span::current().record("user.id", id.as_str());
    let user = User {
        id,
        email: email.as_str().to_owned(),
        role: Role::Viewer,
    };
    let token = create_session(&state.db, &user, state.settings.session_ttl).await?;
    let cookie = set_cookie(
        &token,
        state.settings.session_ttl.as_secs(),
        state.settings.cookie_secure,
    );
    let mut r = (
        StatusCode::CREATED,
        axum::Json(json!({ "user": UserBody::from(&user) })),
    )
        .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(r)
}
