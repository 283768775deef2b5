//! `GET /healthz`: the process is up. Checks nothing else, so a slow database never gets a
//! healthy process restarted.

use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "liveness",
    summary = "Liveness probe",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Liveness))
)]
pub async fn get() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}
