//! `vidscope crm-sandbox`: a stand-in for the external CRM (seed 002, ticket 6) that the worker's
//! `crm.sync` jobs can talk to where no real CRM exists: the compose stack, a laptop demo.
//!
//! It speaks the same two endpoints the worker's client uses (`POST /oauth/token` with client
//! credentials, `POST /contacts/upsert` with a Bearer token and an `Idempotency-Key`) and checks
//! them as strictly as a real CRM would: unknown clients and tokens get 401, bad bodies 400
//! naming the field, a repeated idempotency key returns the first answer. To give the
//! dashboards something to show it also misbehaves on a schedule: a share of requests fail
//! (503, 429 or 500 with `Retry-After`), and a periodic outage answers 503 to everything for a
//! while, long enough for the worker's circuit breaker to open and close again.
//!
//! Every request is a SERVER span continuing the worker's `traceparent` (when telemetry is
//! configured), so Tempo's service graph shows `vidscope-worker → vidscope-crm-sandbox`.
//! E-mail addresses and tokens are never logged or recorded.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use rand::Rng;
use serde_json::json;
use vidscope_telemetry::Metrics;
use vidscope_worker::crm::Secret;

/// How the sandbox behaves. `Debug` never shows the client secret.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub addr: SocketAddr,
    pub client_id: String,
    pub client_secret: Secret,
    /// Share of token and upsert requests that fail on purpose (0 to 1).
    pub error_rate: f64,
    /// Added to every answer, to look like a service across a network.
    pub latency: Duration,
    /// An outage starts every `outage_every` (none when `None`) and lasts `outage_for`.
    pub outage_every: Option<Duration>,
    pub outage_for: Duration,
    pub token_ttl: Duration,
}

/// Idempotency keys remembered; the oldest are forgotten first.
const REMEMBERED_KEYS: usize = 10_000;

#[derive(Default)]
struct Books {
    /// Issued token → expiry.
    tokens: HashMap<String, Instant>,
    /// Idempotency key → contact id, and the keys in arrival order for eviction.
    answers: HashMap<String, String>,
    order: VecDeque<String>,
    /// Contact ids by user id: an upsert for a known user updates the same contact.
    contacts: HashMap<String, String>,
    in_outage: bool,
}

#[derive(Clone)]
struct Sandbox {
    config: Arc<SandboxConfig>,
    started: Instant,
    books: Arc<Mutex<Books>>,
}

impl Sandbox {
    /// Whether the scheduled outage is on now. The first one starts `outage_every -
    /// outage_for` after start, so a fresh stack first shows the CRM healthy.
    fn in_outage(&self) -> bool {
        let Some(every) = self.config.outage_every else {
            return false;
        };
        let every = every.as_millis().max(1);
        let phase = self.started.elapsed().as_millis() % every;
        let outage = self.config.outage_for.as_millis().min(every);
        let on = phase >= every - outage;
        let mut books = self.books.lock().expect("sandbox books");
        if books.in_outage != on {
            books.in_outage = on;
            if on {
                tracing::warn!(
                    outage.secs = self.config.outage_for.as_secs(),
                    "crm sandbox outage started: every request gets 503"
                );
            } else {
                tracing::info!("crm sandbox outage over");
            }
        }
        on
    }

    /// The failure to answer with instead of the real one, if any: the outage, or the dice.
    async fn misbehave(&self) -> Option<Response> {
        if !self.config.latency.is_zero() {
            let jitter = rand::rng().random_range(0.5..1.5);
            tokio::time::sleep(self.config.latency.mul_f64(jitter)).await;
        }
        if self.in_outage() {
            return Some(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "scheduled outage",
                30,
            ));
        }
        let mut rng = rand::rng();
        if self.config.error_rate > 0.0 && rng.random_bool(self.config.error_rate.min(1.0)) {
            let status = match rng.random_range(0..3) {
                0 => StatusCode::TOO_MANY_REQUESTS,
                1 => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::info!(
                http.response.status_code = status.as_u16(),
                "crm sandbox failing a request on purpose"
            );
            return Some(failure(status, "injected failure", 1));
        }
        None
    }
}

fn failure(status: StatusCode, message: &str, retry_after: u32) -> Response {
    let mut r = (status, Json(json!({"error": message}))).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_request", "message": message})),
    )
        .into_response()
}

fn unauthorized(code: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": code}))).into_response()
}

/// The router, with the same server-span middleware as the API.
pub fn router(config: SandboxConfig, metrics: Metrics) -> Router {
    let sandbox = Sandbox {
        config: Arc::new(config),
        started: Instant::now(),
        books: Arc::default(),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/oauth/token", post(token))
        .route("/contacts/upsert", post(upsert))
        .with_state(sandbox)
        .layer(middleware::from_fn_with_state(
            metrics,
            vidscope_api::http_telemetry::trace_request,
        ))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: SandboxConfig,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    println!(
        "vidscope crm-sandbox listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, router(config, metrics))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn token(
    State(sandbox): State<Sandbox>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = sandbox.misbehave().await {
        return r;
    }
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    // Both compared whole; which one was wrong is not said (as a real token endpoint).
    if field("client_id") != Some(sandbox.config.client_id.as_str())
        || field("client_secret") != Some(sandbox.config.client_secret.expose())
    {
        tracing::info!("crm sandbox refused a token request: unknown client");
        return unauthorized("invalid_client");
    }
    let token = format!("sbx-{}", uuid::Uuid::new_v4().simple());
    let mut books = sandbox.books.lock().expect("sandbox books");
    let now = Instant::now();
    books.tokens.retain(|_, expiry| *expiry > now);
    books
        .tokens
        .insert(token.clone(), now + sandbox.config.token_ttl);
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": sandbox.config.token_ttl.as_secs(),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert {
    email: String,
    user_id: String,
    event: String,
    video_id: Option<String>,
}

const EVENTS: [&str; 2] = ["registered", "lesson_completed"];

/// The body's problems, named as a CRM's validation would.
fn validate(u: &Upsert) -> Result<(), String> {
    if !u.email.contains('@') || u.email.len() > 254 {
        return Err("email: not an e-mail address".into());
    }
    if u.user_id.trim().is_empty() {
        return Err("userId: must not be empty".into());
    }
    if !EVENTS.contains(&u.event.as_str()) {
        return Err(format!(
            "event: {:?} is not one of {}",
            u.event.chars().take(40).collect::<String>(),
            EVENTS.join(", ")
        ));
    }
    if u.event == "lesson_completed" && u.video_id.as_deref().is_none_or(str::is_empty) {
        return Err("videoId: required for lesson_completed".into());
    }
    Ok(())
}

async fn upsert(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = sandbox.misbehave().await {
        return r;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return unauthorized("missing_token");
    };
    {
        let books = sandbox.books.lock().expect("sandbox books");
        if books
            .tokens
            .get(bearer)
            .is_none_or(|expiry| *expiry <= Instant::now())
        {
            return unauthorized("invalid_token");
        }
    }
    let upsert: Upsert = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return bad_request(format!("body: {e}")),
    };
    if let Err(m) = validate(&upsert) {
        return bad_request(m);
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut books = sandbox.books.lock().expect("sandbox books");
    if let Some(id) = key.as_ref().and_then(|k| books.answers.get(k)) {
        return Json(json!({"id": id, "duplicate": true})).into_response();
    }
    let id = books
        .contacts
        .entry(upsert.user_id.clone())
        .or_insert_with(|| format!("ct-{}", uuid::Uuid::new_v4().simple()))
        .clone();
    if let Some(k) = key {
        if books.order.len() >= REMEMBERED_KEYS
            && let Some(old) = books.order.pop_front()
        {
            books.answers.remove(&old);
        }
        books.answers.insert(k.clone(), id.clone());
        books.order.push_back(k);
    }
    tracing::info!(
        crm.event = upsert.event.as_str(),
        user.id = upsert.user_id.as_str(),
        "crm sandbox upserted a contact"
    );
    Json(json!({"id": id, "duplicate": false})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(email: &str, user: &str, event: &str, video: Option<&str>) -> Upsert {
        Upsert {
            email: email.into(),
            user_id: user.into(),
            event: event.into(),
            video_id: video.map(Into::into),
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&upsert("a@b.c", "u1", "registered", None)).is_ok());
        assert!(validate(&upsert("a@b.c", "u1", "lesson_completed", Some("v1"))).is_ok());
        let err = |u| validate(&u).unwrap_err();
        assert!(err(upsert("nope", "u1", "registered", None)).starts_with("email:"));
        assert!(err(upsert("a@b.c", " ", "registered", None)).starts_with("userId:"));
        assert!(err(upsert("a@b.c", "u1", "deleted", None)).starts_with("event:"));
        assert!(err(upsert("a@b.c", "u1", "lesson_completed", None)).starts_with("videoId:"));
    }

    #[test]
    fn the_outage_follows_the_schedule() {
        let config = SandboxConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
            error_rate: 0.0,
            latency: Duration::ZERO,
            outage_every: Some(Duration::from_secs(100)),
            outage_for: Duration::from_secs(20),
            token_ttl: Duration::from_secs(60),
        };
        let at = |secs: u64| Sandbox {
            config: Arc::new(config.clone()),
            started: Instant::now() - Duration::from_secs(secs),
            books: Arc::default(),
        };
        assert!(!at(0).in_outage());
        assert!(!at(79).in_outage());
        assert!(at(81).in_outage());
        assert!(at(99).in_outage());
        assert!(!at(101).in_outage());
        assert!(at(181).in_outage());
        let never = Sandbox {
            config: Arc::new(SandboxConfig {
                outage_every: None,
                ..config
            }),
            started: Instant::now() - Duration::from_secs(90),
            books: Arc::default(),
        };
        assert!(!never.in_outage());
    }
}
