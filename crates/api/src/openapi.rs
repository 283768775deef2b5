//! The OpenAPI document served at `GET /api/openapi.json`.
//!
//! Generated from the code: each handler carries a `#[utoipa::path]` next to its signature,
//! each body type derives `ToSchema`, and `router.rs` registers every route through
//! utoipa-axum's `routes!`, so the routes served and the routes documented are one list. This
//! module adds what belongs to no single route (the session-cookie security scheme, the tags,
//! the shared schemas), and [`require_session`] marks the routes behind the session.

pub mod byte_ranges;
pub mod formats;
pub mod path_segments;
pub mod responses;

use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::auth::SESSION_COOKIE;
use crate::error::ErrorBody;

/// The name of the session-cookie scheme ([`require_session`] puts it on the routes).
pub const SESSION_SCHEME: &str = "session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vidscope API",
        description = "Video lessons: sign-in, the library, streaming, uploads, watch progress, \
            player telemetry and real-time pushes. Every error is `{\"error\": {\"code\", \
            \"message\"}}`; 4xx messages name what was wrong. Any route may also answer 500 \
            (a generic body; the cause is in the trace named by the `traceresponse` header), \
            408 after 30 s (uploads excepted) and 503 with `Retry-After` when a dependency is \
            down or failed for a moment; routes that write answer 507 when the database or \
            the object store is out of space (nothing was saved). A method a route does not take answers 405 with `Allow`, a body over 1 MiB \
            (uploads excepted) 413, both with the same error body. Routes marked with the \
            `session` scheme answer 401 without a valid session, and 403 \
            `password_change_required` while an admin's temporary password has not been \
            replaced (`POST /api/account/password`; that route, `DELETE /api/account/sessions` \
            and `GET /api/auth/session` still answer)."
    ),
    // The formats are listed because parameters only refer to them; bodies' types are
    // collected on their own.
    components(schemas(
        ErrorBody,
        formats::VideoId,
        formats::UserId,
        formats::Filename,
        formats::VideoIdOrFilename,
        formats::Email,
        formats::TraceId,
        formats::Traceparent,
        formats::Cursor,
    )),
    modifiers(&SessionCookie),
    tags(
        (name = "auth", description = "Sessions and accounts"),
        (name = "account", description = "The signed-in user's own account: password, sessions"),
        (name = "users", description = "Managing accounts (admins)"),
        (name = "videos", description = "The library, its streams and thumbnails"),
        (name = "upload", description = "Adding videos (admins)"),
        (name = "progress", description = "Resume positions; a user only ever sees their own"),
        (name = "telemetry", description = "What the player reports about itself"),
        (name = "realtime", description = "Pushes to open tabs"),
        (name = "health", description = "Probes and the telemetry self-check"),
        (name = "pages", description = "HTML pages (redirect to /login instead of 401)"),
        (name = "trace-viewer", description = "Recent traces from the telemetry files (admins)"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Registers the session cookie as an API-key-in-cookie scheme.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                SESSION_SCHEME,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    SESSION_COOKIE,
                    "Set by POST /api/auth/login or /api/auth/register (HttpOnly, SameSite=Lax)",
                ))),
            );
    }
}

/// The OpenAPI document as JSON, for `GET /api/openapi.json`: `router.rs` builds it from the
/// route list and hands it to the handler as a request extension.
#[derive(Clone, Copy)]
pub struct OpenApiJson(pub &'static str);

/// Puts the `session` scheme on every operation that lists [`responses::Unauthorized`], the
/// answer that scheme gives without a valid session: a route says it needs a session once, by
/// its 401, and the document cannot show one without the other. An operation that states its
/// own `security(...)` keeps it. Run on the whole document, once the routes are in it.
pub fn require_session(doc: &mut utoipa::openapi::OpenApi) {
    let unauthorized = responses::Unauthorized::responses();
    for op in operations_mut(&mut doc.paths) {
        let answers_unauthorized = unauthorized
            .iter()
            .all(|(status, answer)| op.responses.responses.get(status) == Some(answer));
        if answers_unauthorized && op.security.is_none() {
            op.security = Some(vec![SecurityRequirement::new(
                SESSION_SCHEME,
                Vec::<String>::new(),
            )]);
        }
    }
}

/// Every operation of `paths`, whatever its method.
pub fn operations_mut(paths: &mut Paths) -> impl Iterator<Item = &mut Operation> {
    paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
            &mut item.query,
        ]
        .into_iter()
        .flatten()
        .chain(item.additional_operations.values_mut())
    })
}
