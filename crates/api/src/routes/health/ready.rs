//! `GET /readyz`: whether this replica can serve. 200 when what serving requires answers (the
//! database and the object store), 503 naming the ones that do not.
//!
//! Redis is optional for serving: while it is down uploads still succeed (their jobs wait in
//! the outbox), sessions and videos are read from the database, the login throttle counts per
//! replica. So a Redis outage shows as `degraded` in the body with a 200: failing readiness for
//! it would take every replica out of the Service at once, for a dependency they can do
//! without.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::error::{ErrorDetail, RETRY_AFTER_SECS};
use crate::state::AppState;

/// One dependency's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DependencyCheck {
    /// `ok`; `error` for a required dependency that does not answer (the replica is not
    /// ready), `degraded` for an optional one (Redis: the replica serves without it).
    pub status: &'static str,
    /// Why it failed (secrets redacted); absent when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The 200 body. `checks` has `database` and `store`, and `redis` when `REDIS_URL` is set.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `degraded` while an optional dependency (Redis) does not answer.
    pub status: &'static str,
    pub checks: BTreeMap<&'static str, DependencyCheck>,
}

/// The 503 body: the usual error object plus every dependency's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NotReady<'a> {
    pub error: ErrorDetail<'a>,
    pub checks: BTreeMap<&'static str, DependencyCheck>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check<F, E>(f: F) -> Result<(), String>
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(vidscope_telemetry::redact::redact_str(&e.to_string()).into_owned()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// Readiness probe: database and object store (Redis reported, not required)
#[utoipa::path(
    get, path = "/readyz", operation_id = "readiness",
    responses(
        (status = 200, description = "The database and the object store answer; `status` is `degraded` (and Redis's check too) while Redis does not", body = Readiness),
        (status = 503, description = "The database or the object store does not answer (the message names them)", body = NotReady,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
#[tracing::instrument(name = "readiness.check", skip_all, fields(ready = tracing::field::Empty))]
pub async fn get(State(state): State<AppState>) -> Response {
    let redis = async {
        match &state.redis {
            Some(conn) => Some(check(vidscope_core::redis_conn::ping(conn)).await),
            None => None,
        }
    };
    let (db, store, redis) =
        tokio::join!(check(state.db.ping()), check(state.store.check()), redis);

    let mut checks = BTreeMap::new();
    let mut failing = Vec::new();
    let mut degraded = false;
    for (name, required, result) in [
        ("database", true, Some(db)),
        ("store", true, Some(store)),
        ("redis", false, redis),
    ] {
        let Some(result) = result else { continue };
        let (status, error) = match result {
            Ok(()) => ("ok", None),
            Err(e) if required => {
                tracing::warn!(dependency = name, error = %e, "dependency not ready");
                failing.push(name);
                ("error", Some(e))
            }
            Err(e) => {
                tracing::warn!(dependency = name, error = %e, "optional dependency degraded");
                degraded = true;
                ("degraded", Some(e))
            }
        };
        checks.insert(name, DependencyCheck { status, error });
    }
    tracing::Span::current().record("ready", failing.is_empty());
    if failing.is_empty() {
        return Json(Readiness {
            status: if degraded { "degraded" } else { "ready" },
            checks,
        })
        .into_response();
    }
    let message = format!("not ready: {} not answering", failing.join(", "));
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(NotReady {
            error: ErrorDetail {
                code: "not_ready",
                message: &message,
            },
            checks,
        }),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}
