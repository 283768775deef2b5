//! `GET /readyz`: 200 when every dependency answers, 503 naming the ones that do not.

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
    /// `ok` or `error`.
    pub status: &'static str,
    /// Why it failed (secrets redacted); absent when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The 200 body. `checks` has `database` and `store`, and `redis` when `REDIS_URL` is set.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready`.
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

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readiness",
    summary = "Readiness probe: database, object store and Redis",
    tag = "health",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "Some dependency does not answer (the message names them)", body = NotReady,
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
    for (name, result) in [
        ("database", Some(db)),
        ("store", Some(store)),
        ("redis", redis),
    ] {
        match result {
            None => {}
            Some(Ok(())) => {
                checks.insert(
                    name,
                    DependencyCheck {
                        status: "ok",
                        error: None,
                    },
                );
            }
            Some(Err(e)) => {
                tracing::warn!(dependency = name, error = %e, "dependency not ready");
                checks.insert(
                    name,
                    DependencyCheck {
                        status: "error",
                        error: Some(e),
                    },
                );
                failing.push(name);
            }
        }
    }
    tracing::Span::current().record("ready", failing.is_empty());
    if failing.is_empty() {
        return Json(Readiness {
            status: "ready",
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
