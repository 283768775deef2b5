//! The worker's probes. `GET /healthz` (liveness) answers 503 once the worker has made no
//! progress for `VIDSCOPE_WORKER_LIVENESS_SECS`: its claim loop has not turned (for at least
//! [`STALL_FLOOR`]), or every claim has failed, that long. A worker that cannot claim does no work whatever the reason, and a
//! restart is the one remedy a probe has (it also clears a connection or state gone bad); the
//! window is long enough that a blip of the queue restarts nothing, and the outbox keeps the
//! jobs meanwhile. `GET /readyz` (readiness) answers 503 as soon as a claim fails, and 200 again
//! with the first claim that works: the state at a glance (`kubectl get pods`), without a
//! restart. Both bodies say why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use vidscope_core::db::now_millis;

/// Liveness facts the health endpoint reports.
#[derive(Debug)]
pub struct Health {
    /// Unix ms of the claim loop's last turn.
    pub last_loop_ms: AtomicI64,
    pub in_flight: AtomicUsize,
    /// Unix ms of the first failed claim since the last one that worked (0: the last worked).
    pub queue_failing_since_ms: AtomicI64,
    /// Claims failing for this long fail liveness.
    window_ms: i64,
    /// The loop silent for this long fails liveness: the window, at least [`STALL_FLOOR`].
    stalled_after_ms: i64,
}

impl Health {
    /// `window`: `VIDSCOPE_WORKER_LIVENESS_SECS`.
    pub fn new(window: Duration) -> Self {
        Self {
            last_loop_ms: AtomicI64::new(0),
            in_flight: AtomicUsize::new(0),
            queue_failing_since_ms: AtomicI64::new(0),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            stalled_after_ms: i64::try_from(window.max(STALL_FLOOR).as_millis())
                .unwrap_or(i64::MAX),
        }
    }
}

/// A loop may rightly stay away this long (a 5 s pause after failed claims, a claim waiting
/// for Redis), so a shorter liveness window does not count that as a stall.
pub const STALL_FLOOR: Duration = Duration::from_secs(15);

/// Which probe answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Liveness,
    Readiness,
}

pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    queue: &'static str,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "worker health endpoint listening");
    let answer = |probe: Probe| {
        let health = health.clone();
        get(move || {
            let health = health.clone();
            async move { report(&health, queue, probe, now_millis()) }
        })
    };
    let app = axum::Router::new()
        .route("/healthz", answer(Probe::Liveness))
        .route("/readyz", answer(Probe::Readiness));
    axum::serve(listener, app).await
}

/// The answer of `probe` at `now` (Unix ms).
fn report(
    health: &Health,
    queue: &'static str,
    probe: Probe,
    now: i64,
) -> (StatusCode, Json<serde_json::Value>) {
    let last = health.last_loop_ms.load(Ordering::Relaxed);
    let since = now - last;
    let failing_since = health.queue_failing_since_ms.load(Ordering::Relaxed);
    let failing_for = if failing_since == 0 {
        0
    } else {
        (now - failing_since).max(0)
    };
    let status = if last == 0 || since > health.stalled_after_ms {
        // The loop never turned, or stopped turning.
        "stalled"
    } else if failing_since != 0 && failing_for >= health.window_ms {
        "stuck"
    } else if failing_since != 0 {
        "degraded"
    } else {
        "ok"
    };
    let healthy = match probe {
        Probe::Liveness => matches!(status, "ok" | "degraded"),
        Probe::Readiness => status == "ok",
    };
    let body = serde_json::json!({
        "status": status,
        "queue": queue,
        "queueReachable": failing_since == 0,
        "queueFailingForMs": failing_for,
        "inFlight": health.in_flight.load(Ordering::Relaxed),
        "lastLoopMsAgo": since,
        "livenessWindowMs": health.window_ms,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn codes(health: &Health, now: i64) -> (StatusCode, StatusCode, String) {
        let (live, Json(body)) = report(health, "redis", Probe::Liveness, now);
        let (ready, _) = report(health, "redis", Probe::Readiness, now);
        (live, ready, body["status"].as_str().unwrap().to_owned())
    }

    #[test]
    fn liveness_fails_only_without_progress_for_the_window_and_readiness_at_once() {
        const OK: StatusCode = StatusCode::OK;
        const DOWN: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
        let health = Health::new(WINDOW);
        let t0 = 1_000_000_000;
        let window = WINDOW.as_millis() as i64;
        assert_eq!(
            codes(&health, t0),
            (DOWN, DOWN, "stalled".into()),
            "never turned"
        );

        health.last_loop_ms.store(t0, Ordering::Relaxed);
        assert_eq!(codes(&health, t0), (OK, OK, "ok".into()));

        // Claims fail: not ready at once, alive until the window has passed.
        health.queue_failing_since_ms.store(t0, Ordering::Relaxed);
        health.last_loop_ms.store(t0 + window, Ordering::Relaxed);
        let (_, Json(body)) = report(&health, "redis", Probe::Liveness, t0 + 1);
        assert_eq!(body["queueReachable"], false);
        assert_eq!(codes(&health, t0 + 1), (OK, DOWN, "degraded".into()));
        assert_eq!(
            codes(&health, t0 + window),
            (DOWN, DOWN, "stuck".into()),
            "a loop that turns but cannot claim makes no progress"
        );

        // A claim works again: both recover.
        health.queue_failing_since_ms.store(0, Ordering::Relaxed);
        assert_eq!(codes(&health, t0 + window), (OK, OK, "ok".into()));

        // The loop stops turning.
        assert_eq!(
            codes(&health, t0 + 2 * window + 1),
            (DOWN, DOWN, "stalled".into())
        );
    }

    #[test]
    fn a_short_window_does_not_take_a_pause_between_claims_for_a_stall() {
        let health = Health::new(Duration::from_secs(2));
        let t0 = 1_000_000_000;
        health.last_loop_ms.store(t0, Ordering::Relaxed);
        let pause = 5_000;
        assert_eq!(codes(&health, t0 + pause).2, "ok");
        let floor = STALL_FLOOR.as_millis() as i64;
        assert_eq!(codes(&health, t0 + floor + 1).2, "stalled");
    }
}
