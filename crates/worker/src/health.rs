//! `GET /healthz` of the worker: 200 while the claim loop turns, 503 when it has stalled (a
//! hung worker should be restarted). A queue that cannot be reached is reported but stays 200:
//! restarting the worker would not bring Redis back, and the outbox keeps jobs safe meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use vidscope_core::db::now_millis;

/// Liveness facts the health endpoint reports.
#[derive(Debug, Default)]
pub struct Health {
    /// Unix ms of the claim loop's last turn.
    pub last_loop_ms: AtomicI64,
    pub in_flight: AtomicUsize,
    /// Unix ms of the last failed claim (0: none since the last success).
    pub queue_failing_since_ms: AtomicI64,
}

/// The loop turns at least every few seconds; this much silence means it is stuck.
const STALLED_AFTER_MS: i64 = 60_000;

pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    queue: &'static str,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "worker health endpoint listening");
    let app = axum::Router::new().route(
        "/healthz",
        get(move || {
            let health = health.clone();
            async move { report(&health, queue) }
        }),
    );
    axum::serve(listener, app).await
}

fn report(health: &Health, queue: &'static str) -> (StatusCode, Json<serde_json::Value>) {
    let now = now_millis();
    let last = health.last_loop_ms.load(Ordering::Relaxed);
    let since = now - last;
    let failing = health.queue_failing_since_ms.load(Ordering::Relaxed);
    let stalled = last == 0 || since > STALLED_AFTER_MS;
    let body = serde_json::json!({
        "status": if stalled { "stalled" } else { "ok" },
        "queue": queue,
        "queueReachable": failing == 0,
        "inFlight": health.in_flight.load(Ordering::Relaxed),
        "lastLoopMsAgo": since,
    });
    let code = if stalled {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turning_loop_is_healthy_and_a_stalled_one_is_not() {
        let health = Health::default();
        assert_eq!(
            report(&health, "redis").0,
            StatusCode::SERVICE_UNAVAILABLE,
            "never turned"
        );
        health.last_loop_ms.store(now_millis(), Ordering::Relaxed);
        let (code, Json(body)) = report(&health, "redis");
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["queueReachable"], true);
        health
            .queue_failing_since_ms
            .store(now_millis(), Ordering::Relaxed);
        let (code, Json(body)) = report(&health, "redis");
        assert_eq!(
            code,
            StatusCode::OK,
            "an unreachable queue is reported, not fatal"
        );
        assert_eq!(body["queueReachable"], false);
        health
            .last_loop_ms
            .store(now_millis() - STALLED_AFTER_MS - 1, Ordering::Relaxed);
        assert_eq!(report(&health, "redis").0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
