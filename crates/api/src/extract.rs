//! Extractors whose rejections are [`ApiError`]s, so bad input always gets the JSON error
//! body instead of axum's plain-text one.

use axum::extract::FromRequest;

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
