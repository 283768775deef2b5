//! The OpenAPI document served at `GET /api/openapi.json`.
//!
//! Generated from the code: each handler carries a `#[utoipa::path]` next to its signature and
//! each body type derives `ToSchema`, so the document changes with the handlers. This module
//! only lists the handlers and adds what belongs to no single route (the session-cookie
//! security scheme, the tags). The `openapi` integration test checks the list against
//! `router.rs` in both directions, so a route cannot be added without being documented.

pub mod formats;

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::auth::SESSION_COOKIE;
use crate::error::ErrorBody;
use crate::{pages, routes};

/// The name the routes' `security(("session" = []))` refer to.
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
            down. A method a route does not take answers 405 with `Allow`, a body over 1 MiB \
            (uploads excepted) 413, both with the same error body. Routes marked with the \
            `session` scheme answer 401 without a valid session."
    ),
    paths(
        routes::health::live::get,
        routes::health::ready::get,
        routes::test_otel::get::get,
        openapi_json,
        routes::auth::login::post,
        routes::auth::logout::post,
        routes::auth::session::get,
        routes::auth::register::post,
        routes::videos::list::get,
        routes::videos::get::get,
        routes::videos::thumbnail::get,
        routes::upload::post::post,
        routes::progress::post::post,
        routes::progress::get::get,
        routes::telemetry::player::post,
        routes::ws::get::get,
        pages::login::get,
        pages::home::get,
        pages::videos::get,
        pages::player::get,
        pages::trace_viewer::get,
        routes::trace_viewer::list::get,
        routes::trace_viewer::get::get,
    ),
    // The formats are listed because parameters only refer to them; bodies' types are
    // collected on their own.
    components(schemas(
        ErrorBody,
        formats::VideoId,
        formats::Filename,
        formats::VideoIdOrFilename,
        formats::ProgressVideoId,
        formats::Email,
        formats::TraceId,
        formats::Traceparent,
        formats::Cursor,
    )),
    modifiers(&SessionCookie),
    tags(
        (name = "auth", description = "Sessions and accounts"),
        (name = "videos", description = "The library, its streams and thumbnails"),
        (name = "upload", description = "Adding videos (admins)"),
        (name = "progress", description = "Resume positions; a user only ever sees their own"),
        (name = "telemetry", description = "What the player reports about itself"),
        (name = "realtime", description = "Pushes to open tabs"),
        (name = "health", description = "Probes and the telemetry self-check"),
        (name = "pages", description = "HTML pages (redirect to /login instead of 401)"),
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

/// The document as JSON, built once: it only depends on the code.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document always serialises")
    })
}

// `GET /api/openapi.json` is described here rather than on its handler
// (`routes::openapi::get::get`) because the handler serves this document: with the attribute
// there, each module would import the other.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
#[allow(
    dead_code,
    reason = "documentation only; the route is routes::openapi::get::get"
)]
fn openapi_json() {}
