//! Every route of the API, registered here and only here.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::{json_layer_errors, route_not_found};
use crate::http_telemetry::trace_request;
use crate::limits::{BODY_LIMIT, REQUEST_TIMEOUT};
use crate::state::AppState;
use crate::{pages, routes};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::live::get))
        .route("/readyz", get(routes::health::ready::get))
        .route("/api/test-otel", get(routes::test_otel::get::get))
        .route("/api/openapi.json", get(routes::openapi::get::get))
        .route("/api/auth/login", post(routes::auth::login::post))
        .route("/api/auth/logout", post(routes::auth::logout::post))
        .route("/api/auth/session", get(routes::auth::session::get))
        .route("/api/auth/register", post(routes::auth::register::post))
        .route("/api/videos", get(routes::videos::list::get))
        .route(
            "/api/videos/{id_or_filename}",
            get(routes::videos::get::get),
        )
        .route(
            "/api/videos/{id_or_filename}/thumbnail",
            get(routes::videos::thumbnail::get),
        )
        .route("/api/progress", post(routes::progress::post::post))
        .route("/api/progress/{video_id}", get(routes::progress::get::get))
        .route(
            "/api/telemetry/player",
            post(routes::telemetry::player::post),
        )
        .route("/api/ws", get(routes::ws::get::get))
        .route("/login", get(pages::login::get))
        .route("/", get(pages::home::get))
        .route("/videos", get(pages::videos::get))
        .route("/player/{video_id}", get(pages::player::get))
        .route("/trace-viewer", get(pages::trace_viewer::get))
        .route(
            "/api/trace-viewer/traces",
            get(routes::trace_viewer::list::get),
        )
        .route(
            "/api/trace-viewer/traces/{trace_id}",
            get(routes::trace_viewer::get::get),
        )
        .fallback(
            |req: Request| async move { route_not_found(req.method().as_str(), req.uri().path()) },
        )
        // Inner layers first: the trace layer is outermost so the server span covers
        // timeouts, body limits and caught panics.
        .layer(CatchPanicLayer::custom(|_| {
            crate::error::ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Registered after the body limit and the timeout so neither applies: an upload streams
        // up to `upload_max_bytes` for as long as it takes and enforces that limit itself.
        .route(
            "/api/upload",
            post(routes::upload::post::post)
                .route_layer(DefaultBodyLimit::disable())
                .route_layer(CatchPanicLayer::custom(|_| {
                    crate::error::ApiError::Internal(anyhow::anyhow!("handler panicked"))
                        .into_response()
                })),
        )
        // Over every route, the upload's included (its 405).
        .layer(middleware::map_response(json_layer_errors))
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
