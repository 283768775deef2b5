//! Extractors whose rejections are [`ApiError`]s, so bad input always gets the JSON error
//! body instead of axum's plain-text one.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// `axum::Json` with JSON error bodies ("missing field `email`" and the like).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path`: a path segment that does not parse is a 400 `invalid_path`.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query`: a query string that does not parse (a parameter given twice, say)
/// is a 400 `invalid_query`. Routes take their parameters as strings and check each, so the
/// message of a bad value names the parameter.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", e.body_text())
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an optional field of a request
/// body: a field that is there must hold a value. serde reads `null` as `None` for an
/// `Option`, which would make `{"title": null}` mean "left out"; with this it is a 400 naming
/// the field, so the body means what the document says it does.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}
