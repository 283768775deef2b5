//! `GET /api/test-otel` (seed 000): proves the pipeline end to end. One child span with an
//! event around a database round trip, one log line and one metric point; the answer names the
//! trace so a user can look it up.
//!
//! It is also the benchmark route: server span, one child span, one log line.

use axum::Json;
use axum::extract::State;
use opentelemetry::KeyValue;
use serde::Serialize;
use tracing::Instrument;
use vidscope_core::db::InDbSpan;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::propagation::trace_id_of;

use crate::error::ApiError;
use crate::openapi::responses::DbUnavailable;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOtelBody {
    /// The trace this request belongs to (32 lowercase hex digits); `null` when telemetry is
    /// off.
    pub trace_id: Option<String>,
}

/// Emit one span, event, log line and metric point
#[utoipa::path(
    get, path = "/api/test-otel", operation_id = "testOtel",
    responses(
        (status = 200, description = "A span, an event, a log line and a metric point were emitted", body = TestOtelBody),
        DbUnavailable,
    )
)]
pub async fn get(State(state): State<AppState>) -> Result<Json<TestOtelBody>, ApiError> {
    let backend = state.db.backend();
    let span = tracing::info_span!(
        "test-otel",
        otel.kind = "client",
        db.system.name = backend.system_name(),
        db.operation.name = "SELECT",
        db.query.text = "SELECT 1",
    );
    // The request's trace, read from this span (one lookup) rather than from
    // `Span::current()`, which would also take and drop a handle to the server span.
    let trace_id = trace_id_of(&span);
    let child = span.clone();
    async move {
        // Polled with no current span (see `InDbSpan`); the "test-otel" span covers it.
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(state.db.pool())
            .in_db_span(tracing::Span::none())
            .await
            .map_err(vidscope_core::CoreError::from)?;
        child.add_event(
            "test-otel.checked",
            vec![KeyValue::new("db.result", i64::from(one))],
        );
        tracing::info!(db.result = one, "telemetry check ran");
        Ok::<_, ApiError>(())
    }
    .instrument(span)
    .await?;
    state.metrics.test_otel_requests.add(1, &[]);
    Ok(Json(TestOtelBody { trace_id }))
}
