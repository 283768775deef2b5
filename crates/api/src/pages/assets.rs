//! `GET /assets/{name}`: the pages' scripts and stylesheets (`crates/api/assets/`), compiled
//! into the binary. They are files, not inline `<script>` and `<style>`, so that the pages'
//! Content-Security-Policy can allow this origin's files and nothing else: no `'unsafe-inline'`,
//! no hashes to keep in step with the text ([`crate::security_headers`]).
//!
//! Served with an `ETag` and `Cache-Control: no-cache`: a browser asks again on every page load
//! and gets a 304 while the binary is the same, so an upgrade never runs a stale script
//! against new HTML.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorBody};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every asset: its name under `/assets/`, its media type and its text.
const ASSETS: &[(&str, &str, &str)] = &[
    ("site.css", CSS, include_str!("../../assets/site.css")),
    // Every page's `<link rel="icon">` (`templates/base.html`): SVG, so one small text file.
    ("favicon.svg", SVG, include_str!("../../assets/favicon.svg")),
    ("login.js", JS, include_str!("../../assets/login.js")),
    ("account.js", JS, include_str!("../../assets/account.js")),
    ("users.js", JS, include_str!("../../assets/users.js")),
    ("videos.js", JS, include_str!("../../assets/videos.js")),
    ("player.js", JS, include_str!("../../assets/player.js")),
    (
        "trace_viewer.js",
        JS,
        include_str!("../../assets/trace_viewer.js"),
    ),
    (
        "trace_viewer.css",
        CSS,
        include_str!("../../assets/trace_viewer.css"),
    ),
];

/// A script, stylesheet or icon of the pages
#[utoipa::path(
    get, path = "/assets/{name}", operation_id = "pageAsset",
    params(("name" = String, Path,
        description = "`site.css`, `favicon.svg`, `login.js`, `account.js`, `users.js`, `videos.js`, `player.js`, `trace_viewer.js` or `trace_viewer.css`")),
    responses(
        (status = 200, description = "The file; public, like the pages' HTML",
            content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml")),
            headers(("ETag" = String), ("Cache-Control" = String, description = "`no-cache`"))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`"),
        (status = 404, description = "No such asset", body = ErrorBody),
    )
)]
pub async fn get(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (_, content_type, text) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::NotFound("no such asset".into()))?;
    let etag = etag(text);
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, *content_type)], *text).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(response)
}

/// A strong validator of `text`: the same for every process of one build (the hasher's keys
/// are fixed), different as soon as the text is.
fn etag(text: &str) -> String {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}
