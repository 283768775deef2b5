//! `POST /api/auth/register`: self-service viewer accounts, unless disabled by
//! `VIDSCOPE_REGISTRATION=false`. Answers 201 and signs the new user in.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vidscope_core::auth::{User, create_session};
use vidscope_core::domain::{Email, Password, Role};
use vidscope_core::users::create_user_with_jobs;

use crate::auth::set_cookie;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::openapi::responses::{BadInput, DbFull, DbUnavailable, NotJson, TooLarge};
use crate::routes::auth::UserResponse;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    #[schema(value_type = crate::openapi::formats::Email)]
    email: String,
    /// 8 to 128 characters.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    password: String,
}

// No span of its own: `user.id` goes on the server span, which names the route.
/// Create a viewer account
#[utoipa::path(
    post, path = "/api/auth/register", operation_id = "register",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "A viewer account was created and signed in", body = UserResponse,
            headers(("Set-Cookie" = String, description = "The new session's `vidscope_session` cookie"))),
        (status = 403, description = "Registration is disabled on this server", body = ErrorBody),
        (status = 409, description = "The e-mail is already registered", body = ErrorBody),
        BadInput, TooLarge, NotJson, DbUnavailable, DbFull,
    )
)]
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
    // The CRM hears about the account through the outbox, in the account's transaction.
    let id = create_user_with_jobs(&state.db, &email, &password, Role::Viewer, |id| {
        vec![vidscope_core::jobs::crm_registered(id)]
    })
    .await?;
    tracing::Span::current().record("user.id", id.as_str());
    let user = User {
        id,
        email: email.as_str().to_owned(),
        role: Role::Viewer,
        must_change_password: false,
    };
    let token = create_session(&state.db, &user, state.settings.session_ttl).await?;
    let cookie = set_cookie(
        &token,
        state.settings.session_ttl.as_secs(),
        state.settings.cookie_secure,
    );
    let mut r = (StatusCode::CREATED, axum::Json(UserResponse::from(&user))).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(r)
}
