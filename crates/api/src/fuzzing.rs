//! Entry points for the fuzz targets (`fuzz/`), compiled only with the `fuzzing` feature: the
//! crate's private parsers of outside input, each as narrow as its target needs. Production
//! builds never have this module. The public parsers (`routes::videos::range`,
//! `routes::upload::sniff`, `trace_viewer`) are fuzzed through their own API.

use axum::extract::Multipart;

use crate::error::ApiError;
pub use crate::routes::upload::paced::Paced;
pub use crate::routes::upload::post::CheckedFile;

/// `POST /api/telemetry/player`'s body: the number of events of a valid batch and whether it
/// carried a valid `traceparent`.
pub fn player_batch(bytes: &[u8]) -> Result<(usize, bool), ApiError> {
    crate::routes::telemetry::player::check_batch(bytes)
}

/// `POST /api/upload`'s form: the optional title and the checked file part.
pub async fn upload_form(
    multipart: Multipart,
    max_bytes: u64,
) -> Result<(Option<String>, Option<CheckedFile>), ApiError> {
    crate::routes::upload::post::check_form(multipart, max_bytes).await
}
