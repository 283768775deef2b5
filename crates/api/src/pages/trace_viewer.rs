//! `GET /trace-viewer`: seed 001's "recommended" trace viewer, for admins. The page is static;
//! its script reads `/api/trace-viewer/traces` (filters, auto-refresh) and draws a waterfall
//! from `/api/trace-viewer/traces/{trace_id}`.

use askama::Template;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

use crate::auth::{AdminUser, MaybeUser};
use crate::error::ApiError;
use crate::openapi::responses::{AdminOnly, DbUnavailable, ToLogin};

#[derive(Template)]
#[template(path = "trace_viewer.html")]
struct TraceViewerPage;

/// The trace viewer
#[utoipa::path(
    get, path = "/trace-viewer", operation_id = "traceViewerPage",
    params(
        // Read by the page's script only: the server passes any value, and the API checks the
        // filters when the page asks for traces.
        ("video" = Option<String>, Query, description = "Prefills the lesson filter"),
        ("user" = Option<String>, Query, description = "Prefills the user filter"),
        ("service" = Option<String>, Query, description = "Prefills the service filter"),
        ("errors" = Option<String>, Query, description = "`true` ticks the errors-only filter; any other value leaves it unticked"),
        ("limit" = Option<String>, Query, description = "Prefills the trace count (any value: the API checks it, 1 to 1000)"),
    ),
    responses(
        (status = 200, description = "The viewer", content_type = "text/html", body = String),
        ToLogin, AdminOnly, DbUnavailable,
    )
)]
pub async fn get(MaybeUser(user): MaybeUser, uri: Uri) -> Result<Response, ApiError> {
    let Some(user) = user else {
        return Ok(super::to_login(&uri));
    };
    AdminUser::check(user)?;
    Ok(super::render(&TraceViewerPage)?.into_response())
}
