//! `GET /api/auth/session`: who am I. 401 without a valid session.

use axum::Json;
use serde_json::{Value, json};

use crate::auth::CurrentUser;
use crate::routes::auth::UserBody;

pub async fn get(CurrentUser(user): CurrentUser) -> Json<Value> {
    Json(json!({ "user": UserBody::from(&user) }))
}
