//! `GET /api/openapi.json`: the OpenAPI document of every route (see [`crate::openapi`]).
//! Public, like the routes it describes are discoverable anyway: it holds no data.

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;

use crate::openapi::OpenApiJson;

/// This OpenAPI document
#[utoipa::path(
    get, path = "/api/openapi.json", operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub async fn get(Extension(OpenApiJson(json)): Extension<OpenApiJson>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}
