//! `/api/trace-viewer`: the JSON behind `/trace-viewer`. Admins only: traces carry user ids.

pub mod get;
pub mod list;

use crate::error::ApiError;
use crate::state::AppState;
use crate::trace_viewer::{self, Snapshot};

/// Reads the trace files off the async threads (they can be tens of MiB).
pub(crate) async fn snapshot(state: &AppState) -> Result<Snapshot, ApiError> {
    let settings = state.trace_viewer.clone();
    tokio::task::spawn_blocking(move || trace_viewer::read(&settings))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("trace file reader failed: {e}")))
}
