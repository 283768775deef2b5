//! `GET /healthz`: the process is up. Checks nothing else, so a slow database never gets a
//! healthy process restarted.

use axum::Json;
use serde_json::{Value, json};

pub async fn get() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
