//! `GET /api/openapi.json`: the OpenAPI document of every route (see [`crate::openapi`]).
//! Public, like the routes it describes are discoverable anyway: it holds no data.

use axum::http::header;
use axum::response::IntoResponse;

// Described in `crate::openapi` (`openapi_json`), beside the document it serves: were the
// attribute here, the document would name this handler and this handler the document.
pub async fn get() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
}
