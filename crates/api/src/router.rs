//! Every route of the API, registered here and only here.

use std::sync::OnceLock;

use axum::Extension;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::error::{json_layer_errors, route_not_found};
use crate::http_telemetry::trace_request;
use crate::limits::{BODY_LIMIT, REQUEST_TIMEOUT};
use crate::openapi::{ApiDoc, OpenApiJson};
use crate::pages;
use crate::routes::{
    account, auth, health, openapi, progress, telemetry, test_otel, trace_viewer, upload, users,
    videos, ws,
};
use crate::state::AppState;

/// Every route but the upload, each registered with its `#[utoipa::path]`: the path and method
/// come from that attribute, so a route cannot be served without being documented, nor
/// documented without being served. The authorization matrix (`tests/api/authz.rs`) is
/// checked against the same list, read from the document. Each route's tag is given here
/// ([`tagged`]).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(tagged("health", routes!(health::live::get)))
        .routes(tagged("health", routes!(health::ready::get)))
        .routes(tagged("health", routes!(test_otel::get::get)))
        .routes(tagged("meta", routes!(openapi::get::get)))
        .routes(tagged("auth", routes!(auth::login::post)))
        .routes(tagged("auth", routes!(auth::logout::post)))
        .routes(tagged("auth", routes!(auth::session::get)))
        .routes(tagged("auth", routes!(auth::register::post)))
        .routes(tagged("account", routes!(account::password::post)))
        .routes(tagged("account", routes!(account::sessions::delete)))
        .routes(tagged("users", routes!(users::list::get)))
        .routes(tagged("users", routes!(users::patch::patch)))
        .routes(tagged("users", routes!(users::temporary_password::post)))
        .routes(tagged("videos", routes!(videos::list::get)))
        .routes(tagged("videos", routes!(videos::get::get)))
        .routes(tagged("videos", routes!(videos::patch::patch)))
        .routes(tagged("videos", routes!(videos::delete::delete)))
        .routes(tagged("videos", routes!(videos::reprocess::post)))
        .routes(tagged("videos", routes!(videos::thumbnail::get)))
        .routes(tagged("videos", routes!(videos::stream::get)))
        .routes(tagged("progress", routes!(progress::post::post)))
        .routes(tagged("progress", routes!(progress::get::get)))
        .routes(tagged("telemetry", routes!(telemetry::player::post)))
        .routes(tagged("realtime", routes!(ws::get::get)))
        .routes(tagged("pages", routes!(pages::login::get)))
        .routes(tagged("pages", routes!(pages::signup::get)))
        .routes(tagged("pages", routes!(pages::account::get)))
        .routes(tagged("pages", routes!(pages::users::get)))
        .routes(tagged("pages", routes!(pages::assets::get)))
        .routes(tagged("pages", routes!(pages::home::get)))
        .routes(tagged("pages", routes!(pages::videos::get)))
        .routes(tagged("pages", routes!(pages::player::get)))
        .routes(tagged("pages", routes!(pages::trace_viewer::get)))
        .routes(tagged("trace-viewer", routes!(trace_viewer::list::get)))
        .routes(tagged("trace-viewer", routes!(trace_viewer::get::get)))
}

/// The upload, apart: the general body limit and request timeout must not apply to it (it
/// streams up to `upload_max_bytes` for as long as it takes and enforces that limit itself).
fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(tagged("upload", routes!(upload::post::post)))
}

/// A route with the one tag `tag` (one of [`ApiDoc`]'s `tags`) on each of its operations: the
/// route list says which group of the document a route is in, so its handler does not.
fn tagged(
    tag: &str,
    (schemas, mut paths, handler): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    for op in crate::openapi::operations_mut(&mut paths) {
        op.tags = Some(vec![tag.to_owned()]);
    }
    (schemas, paths, handler)
}

/// The OpenAPI document of everything [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().merge(upload_routes()).into_openapi();
    crate::openapi::require_session(&mut doc);
    doc
}

/// [`openapi`] as JSON, built once: it only depends on the code.
fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_json()
            .expect("the OpenAPI document always serialises")
    })
}

pub fn router(state: AppState) -> Router {
    let (general, _) = routes().split_for_parts();
    let (upload, _) = upload_routes().split_for_parts();
    let upload = upload.route_layer(DefaultBodyLimit::disable());
    general
        .fallback(
            |req: Request| async move { route_not_found(req.method().as_str(), req.uri().path()) },
        )
        // Inner layers first: the trace layer is outermost so the server span covers
        // timeouts, body limits and caught panics.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Merged after the body limit and the timeout so neither applies to it.
        .merge(upload)
        // One panic guard for every route, the upload's included.
        .layer(CatchPanicLayer::custom(|_| {
            crate::error::ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        // The document for `GET /api/openapi.json`, handed over rather than imported: the
        // handler is in the list the document is made from.
        .layer(Extension(OpenApiJson(openapi_json())))
        // Over every route, the upload's included (its 405).
        .layer(middleware::map_response(json_layer_errors))
        // CSP, nosniff and Referrer-Policy on every answer, errors included.
        .layer(crate::security_headers::layer(
            &state.settings,
            &state.store,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            trace_request,
        ))
        // Outermost: the server span already reports the resolved client address.
        .layer(middleware::from_fn_with_state(
            std::sync::Arc::<[ipnet::IpNet]>::from(state.settings.trusted_proxies.as_slice()),
            crate::client_ip::resolve,
        ))
        .with_state(state)
}
