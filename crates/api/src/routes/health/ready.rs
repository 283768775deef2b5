//! `GET /readyz`: 200 when every dependency answers, 503 naming the ones that do not.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::RETRY_AFTER_SECS;
use crate::state::AppState;

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

    let mut checks = Map::new();
    let mut failing = Vec::new();
    for (name, result) in [
        ("database", Some(db)),
        ("store", Some(store)),
        ("redis", redis),
    ] {
        match result {
            None => {}
            Some(Ok(())) => {
                checks.insert(name.into(), json!({"status": "ok"}));
            }
            Some(Err(e)) => {
                tracing::warn!(dependency = name, error = %e, "dependency not ready");
                checks.insert(name.into(), json!({"status": "error", "error": e}));
                failing.push(name);
            }
        }
    }
    tracing::Span::current().record("ready", failing.is_empty());
    if failing.is_empty() {
        return Json(json!({"status": "ready", "checks": checks})).into_response();
    }
    let message = format!("not ready: {} not answering", failing.join(", "));
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json::<Value>(
            json!({"error": {"code": "not_ready", "message": message}, "checks": checks}),
        ),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}
