//! `GET /healthz` (liveness): the process can make progress. It is answered by the runtime
//! and the router that serve every request, so a wedged process fails it; it checks no
//! dependency, so a slow database (a matter for `/readyz`) never gets a healthy process
//! restarted.

use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness probe
#[utoipa::path(
    get, path = "/healthz", operation_id = "liveness",
    responses((status = 200, description = "The process is up", body = Liveness))
)]
pub async fn get() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}
