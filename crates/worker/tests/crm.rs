//! The CRM sync client against a local fake CRM (axum on port 0: the one external system these
//! tests stand in for), with telemetry exported over OTLP to the testkit's capture receiver so
//! spans, span events, the breaker gauge and log lines are asserted as they leave the process.
//!
//! Tests use Tokio's current-thread runtime: each installs its telemetry for its own thread, and
//! they take turns (see [`Harness::start`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use tracing::Instrument as _;
use vidscope_telemetry::{Classify, ErrorClass};
use vidscope_testkit::ThreadTelemetry;
use vidscope_testkit::otlp::CapturedSpan;
use vidscope_worker::crm::{BreakerState, CrmClient, CrmContact, CrmError, CrmEvent, CrmSettings};

const CLIENT_ID: &str = "vidscope-test-client";
const SECRET: &str = "crm-secret-5f0c2a9e1d";
const EMAIL: &str = "ada.lovelace.7731@example.com";
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Fake CRM
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Upsert {
    authorization: Option<String>,
    idempotency_key: Option<String>,
    traceparent: Option<String>,
    body: serde_json::Value,
}

struct FakeState {
    token_requests: u32,
    upserts: Vec<Upsert>,
    /// Answers to the next upserts with a valid token, in order; then `default_status`.
    script: VecDeque<u16>,
    default_status: u16,
    /// Always 401 on upserts, whatever the token (a CRM that revoked our app).
    reject_all_tokens: bool,
    valid_tokens: HashSet<String>,
    issued: Vec<String>,
    token_lifetime_secs: u64,
    delay: Duration,
}

#[derive(Clone)]
struct FakeCrm {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeCrm {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            token_requests: 0,
            upserts: Vec::new(),
            script: VecDeque::new(),
            default_status: 200,
            reject_all_tokens: false,
            valid_tokens: HashSet::new(),
            issued: Vec::new(),
            token_lifetime_secs: 3600,
            delay: Duration::ZERO,
        }));
        let app = Router::new()
            .route("/crm/oauth/token", post(token))
            .route("/crm/contacts/upsert", post(upsert))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake CRM");
        let addr = listener.local_addr().expect("fake CRM address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        // A base URL with a path and no trailing slash, as an operator would write it.
        Self {
            url: format!("http://{addr}/crm"),
            state,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake CRM state"))
    }

    fn script(&self, statuses: &[u16]) {
        self.with(|s| s.script.extend(statuses));
    }

    fn token_requests(&self) -> u32 {
        self.with(|s| s.token_requests)
    }

    fn upserts(&self) -> Vec<Upsert> {
        self.with(|s| s.upserts.clone())
    }

    fn issued(&self) -> Vec<String> {
        self.with(|s| s.issued.clone())
    }

    /// Every token issued so far stops working (as after a key rotation on the CRM's side).
    fn revoke_tokens(&self) {
        self.with(|s| s.valid_tokens.clear());
    }
}

async fn token(
    State(state): State<Arc<Mutex<FakeState>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().expect("fake CRM state");
    s.token_requests += 1;
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials")
        || field("client_id") != Some(CLIENT_ID)
        || field("client_secret") != Some(SECRET)
    {
        return (StatusCode::UNAUTHORIZED, "invalid_client").into_response();
    }
    let token = format!("at-{}-{}", uuid_like(), s.issued.len() + 1);
    s.valid_tokens.insert(token.clone());
    s.issued.push(token.clone());
    Json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": s.token_lifetime_secs,
    }))
    .into_response()
}

async fn upsert(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, delay) = {
        let mut s = state.lock().expect("fake CRM state");
        let authorization = header("authorization");
        s.upserts.push(Upsert {
            authorization: authorization.clone(),
            idempotency_key: header("idempotency-key"),
            traceparent: header("traceparent"),
            body,
        });
        let authorized = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| s.valid_tokens.contains(t));
        let status = if s.reject_all_tokens || !authorized {
            401
        } else {
            s.script.pop_front().unwrap_or(s.default_status)
        };
        (status, s.delay)
    };
    tokio::time::sleep(delay).await;
    let status = StatusCode::from_u16(status).expect("scripted status");
    (status, Json(serde_json::json!({"ok": status.is_success()}))).into_response()
}

/// Distinct tokens per fake (a leak check looks for the exact value).
fn uuid_like() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

// ---------------------------------------------------------------------------------------------
// Telemetry harness
// ---------------------------------------------------------------------------------------------

/// The telemetry harness and a fake CRM, which every test but one starts with.
async fn start() -> (Harness, FakeCrm) {
    (Harness::start().await, FakeCrm::start().await)
}

/// This test's telemetry ([`ThreadTelemetry`]), with the CRM client's calls and the queries
/// the tests make of what it exported.
struct Harness(ThreadTelemetry);

impl std::ops::Deref for Harness {
    type Target = ThreadTelemetry;

    fn deref(&self) -> &ThreadTelemetry {
        &self.0
    }
}

impl Harness {
    async fn start() -> Self {
        Self(ThreadTelemetry::start("vidscope-worker-crm-test", |c, _| c).await)
    }

    fn client(&self, settings: CrmSettings) -> CrmClient {
        CrmClient::new(settings, self.guard.metrics().clone()).expect("CRM client")
    }

    /// A client making up to `attempts` attempts a call, behind a breaker that opens after
    /// `failures` failed calls in a row and stays open for `cooldown`.
    fn breaker_client(
        &self,
        fake: &FakeCrm,
        attempts: u32,
        failures: u32,
        cooldown: Duration,
    ) -> CrmClient {
        self.client(
            settings(fake)
                .with_max_attempts(attempts)
                .with_breaker(failures, cooldown),
        )
    }

    /// Runs one sync inside a root span, as the `crm.sync` job will; returns its trace id.
    async fn sync(
        &self,
        client: &CrmClient,
        contact: &CrmContact,
        key: &str,
    ) -> (Result<(), CrmError>, String) {
        let root = tracing::info_span!("test.job");
        let trace_id = vidscope_telemetry::propagation::trace_id_of(&root)
            .expect("the test span has a trace id");
        let result = client.sync_contact(contact, key).instrument(root).await;
        (result, trace_id)
    }

    /// All spans of `trace_id` once its `crm.sync_contact` span has arrived.
    async fn trace(&self, trace_id: &str) -> Vec<CapturedSpan> {
        self.guard.flush().await;
        self.otlp
            .wait_for_span(
                |s| s.trace_id == trace_id && s.name == "crm.sync_contact",
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("no crm.sync_contact span in trace {trace_id}: {e}"));
        self.otlp.spans_in_trace(trace_id)
    }

    async fn sync_span(&self, trace_id: &str) -> CapturedSpan {
        one(&self.trace(trace_id).await, "crm.sync_contact")
    }

    /// Asserts the breaker's transitions during the call of `trace_id`, each as `from -> to`.
    async fn assert_transitions(&self, trace_id: &str, expected: &[&str]) {
        let sync = self.sync_span(trace_id).await;
        assert_eq!(transitions(&sync), expected, "{sync:#?}");
    }

    /// Waits out the open breaker's `cooldown`, then makes the call that probes the CRM and
    /// asserts the breaker's transitions during it.
    async fn probe(
        &self,
        client: &CrmClient,
        cooldown: Duration,
        key: &str,
        expected_transitions: &[&str],
    ) -> Result<(), CrmError> {
        tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
        let (result, trace_id) = self.sync(client, &registered("user-1"), key).await;
        self.assert_transitions(&trace_id, expected_transitions)
            .await;
        result
    }

    /// Waits for a `crm.circuit_breaker.state` point with `value` exported after `after_nanos`.
    async fn wait_breaker_gauge(&self, value: i64, after_nanos: u64) -> u64 {
        self.guard.flush().await;
        self.otlp
            .wait_for_metric_point(
                "crm.circuit_breaker.state",
                |p| p.time_unix_nano > after_nanos && p.value.as_i64() == Some(value),
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("crm.circuit_breaker.state never exported {value}: {e}"))
            .time_unix_nano
    }
}

fn one(spans: &[CapturedSpan], name: &str) -> CapturedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "expected one {name} span, got {spans:#?}");
    found[0].clone()
}

fn events<'a>(
    span: &'a CapturedSpan,
    name: &str,
) -> Vec<&'a vidscope_testkit::otlp::CapturedEvent> {
    span.events.iter().filter(|e| e.name == name).collect()
}

/// The breaker's transitions recorded on `span`, each as `from -> to`.
fn transitions(span: &CapturedSpan) -> Vec<String> {
    events(span, "crm.circuit_breaker.transition")
        .iter()
        .map(|e| {
            let state = |key| e.attr_str(key).unwrap_or_default();
            format!("{} -> {}", state("from"), state("to"))
        })
        .collect()
}

/// Asserts that the call failed with the CRM's answer `status` (`expected` says why the test
/// expects an error), classified as `class`.
#[track_caller]
fn assert_status_error(
    result: Result<(), CrmError>,
    expected: &str,
    status: u16,
    class: ErrorClass,
) {
    let err = result.expect_err(expected);
    assert!(
        matches!(err, CrmError::Status { status: answered, .. } if answered == status),
        "{err:?}"
    );
    assert_eq!(err.class(), class);
}

fn settings(fake: &FakeCrm) -> CrmSettings {
    CrmSettings::new(&fake.url, CLIENT_ID, SECRET)
        .with_timeout(Duration::from_secs(5))
        .with_retry_delays(Duration::from_millis(5), Duration::from_millis(20))
        .with_breaker(50, Duration::from_secs(60))
}

fn registered(user_id: &str) -> CrmContact {
    CrmContact {
        user_id: user_id.to_owned(),
        email: EMAIL.to_owned(),
        event: CrmEvent::Registered,
    }
}

fn completed(user_id: &str, video_id: &str) -> CrmContact {
    CrmContact {
        user_id: user_id.to_owned(),
        email: EMAIL.to_owned(),
        event: CrmEvent::LessonCompleted {
            video_id: video_id.to_owned(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sync_sends_bearer_token_idempotency_key_and_the_callers_traceparent() {
    let (h, fake) = start().await;
    let client = h.client(settings(&fake));

    let (result, trace_id) = h
        .sync(&client, &completed("user-42", "video-7"), "job-123")
        .await;

    result.expect("sync succeeds");
    let upserts = fake.upserts();
    assert_eq!(upserts.len(), 1, "{upserts:#?}");
    let sent = &upserts[0];
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {}", fake.issued()[0]).as_str())
    );
    assert_eq!(sent.idempotency_key.as_deref(), Some("job-123"));
    assert_eq!(
        sent.body,
        serde_json::json!({"email": EMAIL, "userId": "user-42",
            "event": "lesson_completed", "videoId": "video-7"})
    );
    let traceparent = sent.traceparent.as_deref().expect("traceparent header");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace_id, "traceparent carries the caller's trace");

    // The spans: job → crm.sync_contact → CLIENT span per request; traceparent names the
    // upsert's client span.
    let spans = h.trace(&trace_id).await;
    let sync = one(&spans, "crm.sync_contact");
    let job = one(&spans, "test.job");
    assert_eq!(sync.parent_span_id.as_deref(), Some(job.span_id.as_str()));
    assert_eq!(sync.attr_str("crm.event"), Some("lesson_completed"));
    assert_eq!(sync.attr_str("user.id"), Some("user-42"));
    assert_eq!(sync.attr_str("video.id"), Some("video-7"));
    assert_eq!(sync.attr_str("crm.idempotency_key"), Some("job-123"));
    assert_eq!(sync.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(sync.attr_i64("crm.attempts"), Some(1));
    assert!(sync.attr("error.type").is_none(), "{sync:#?}");
    let refreshed = events(&sync, "crm.token.refreshed");
    assert_eq!(refreshed.len(), 1, "{sync:#?}");
    assert_eq!(refreshed[0].attr_str("reason"), Some("initial"));

    let client_kind =
        vidscope_testkit::otlp::proto::tonic::trace::v1::span::SpanKind::Client as i32;
    let upsert = one(&spans, "POST /contacts/upsert");
    assert_eq!(upsert.kind, client_kind);
    assert_eq!(
        upsert.parent_span_id.as_deref(),
        Some(sync.span_id.as_str())
    );
    assert_eq!(
        parts[2], upsert.span_id,
        "traceparent names the client span"
    );
    assert_eq!(upsert.attr_str("http.request.method"), Some("POST"));
    assert_eq!(upsert.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(upsert.attr_str("server.address"), Some("127.0.0.1"));
    assert!(upsert.attr_i64("server.port").is_some(), "{upsert:#?}");
    assert_eq!(
        upsert.attr_str("url.full"),
        Some(format!("{}/contacts/upsert", fake.url).as_str())
    );
    let token = one(&spans, "POST /oauth/token");
    assert_eq!(token.kind, client_kind);
    assert_eq!(token.parent_span_id.as_deref(), Some(sync.span_id.as_str()));
}

#[tokio::test]
async fn the_token_is_fetched_once_for_several_calls() {
    let (h, fake) = start().await;
    let client = h.client(settings(&fake));

    for (i, key) in ["job-1", "job-2", "job-3"].into_iter().enumerate() {
        let (result, _) = h
            .sync(&client, &registered(&format!("user-{i}")), key)
            .await;
        result.unwrap_or_else(|e| panic!("call {i}: {e}"));
    }

    assert_eq!(fake.token_requests(), 1);
    let token = format!("Bearer {}", fake.issued()[0]);
    let upserts = fake.upserts();
    assert_eq!(upserts.len(), 3);
    for u in &upserts {
        assert_eq!(u.authorization.as_deref(), Some(token.as_str()));
    }
    let keys: Vec<_> = upserts
        .iter()
        .map(|u| u.idempotency_key.clone().unwrap_or_default())
        .collect();
    assert_eq!(keys, ["job-1", "job-2", "job-3"]);
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced_before_use() {
    let (h, fake) = start().await;
    // One second of lifetime: replaced after half of it (the refresh margin is capped at half).
    fake.with(|s| s.token_lifetime_secs = 1);
    let client = h.client(settings(&fake));

    h.sync(&client, &registered("user-1"), "job-1")
        .await
        .0
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-2").await;

    result.unwrap();
    assert_eq!(fake.token_requests(), 2);
    let sync = h.sync_span(&trace_id).await;
    let refreshed = events(&sync, "crm.token.refreshed");
    assert_eq!(refreshed.len(), 1, "{sync:#?}");
    assert_eq!(refreshed[0].attr_str("reason"), Some("expired"));
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries() {
    let (h, fake) = start().await;
    let client = h.client(settings(&fake));
    h.sync(&client, &registered("user-1"), "job-1")
        .await
        .0
        .unwrap();
    fake.revoke_tokens();

    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-2").await;

    result.expect("succeeds with the new token");
    assert_eq!(fake.token_requests(), 2, "one initial token, one refresh");
    let issued = fake.issued();
    let auth: Vec<_> = fake
        .upserts()
        .iter()
        .map(|u| u.authorization.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        auth,
        [
            format!("Bearer {}", issued[0]),
            format!("Bearer {}", issued[0]),
            format!("Bearer {}", issued[1]),
        ]
    );
    let sync = h.sync_span(&trace_id).await;
    let refreshed = events(&sync, "crm.token.refreshed");
    assert_eq!(refreshed.len(), 1, "{sync:#?}");
    assert_eq!(refreshed[0].attr_str("reason"), Some("unauthorized"));
    assert_eq!(sync.attr_i64("http.response.status_code"), Some(200));
    assert!(
        events(&sync, "crm.retry").is_empty(),
        "a 401 is not a retry"
    );
}

#[tokio::test]
async fn a_401_after_the_refresh_is_permanent() {
    let (h, fake) = start().await;
    fake.with(|s| s.reject_all_tokens = true);
    let client = h.client(settings(&fake));

    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-1").await;

    assert_status_error(
        result,
        "the CRM rejects every token",
        401,
        ErrorClass::Permanent,
    );
    assert_eq!(
        fake.token_requests(),
        2,
        "initial token and exactly one refresh"
    );
    assert_eq!(fake.upserts().len(), 2);
    let sync = h.sync_span(&trace_id).await;
    assert_eq!(sync.attr_str("error.type"), Some("crm.http.401"));
    assert_eq!(sync.attr_str("error.class"), Some("permanent"));
}

#[tokio::test]
async fn server_errors_are_retried_up_to_max_attempts_then_fail_as_transient() {
    let (h, fake) = start().await;
    fake.with(|s| s.default_status = 500);
    let client = h.client(settings(&fake).with_max_attempts(3));

    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-1").await;

    assert_status_error(result, "the CRM keeps failing", 500, ErrorClass::Transient);
    let upserts = fake.upserts();
    assert_eq!(upserts.len(), 3);
    assert!(
        upserts
            .iter()
            .all(|u| u.idempotency_key.as_deref() == Some("job-1")),
        "every attempt carries the same idempotency key"
    );
    let sync = h.sync_span(&trace_id).await;
    let retries = events(&sync, "crm.retry");
    let attempts: Vec<_> = retries.iter().map(|e| e.attr_i64("attempt")).collect();
    assert_eq!(attempts, [Some(2), Some(3)], "{sync:#?}");
    assert!(
        retries
            .iter()
            .all(|e| e.attr_str("error.type") == Some("crm.http.500"))
    );
    assert_eq!(sync.attr_str("error.type"), Some("crm.http.500"));
    assert_eq!(sync.attr_str("error.class"), Some("transient"));
    assert_eq!(sync.attr_i64("http.response.status_code"), Some(500));
    assert_eq!(sync.attr_i64("crm.attempts"), Some(3));
}

#[tokio::test]
async fn a_transient_failure_then_success_succeeds() {
    let (h, fake) = start().await;
    fake.script(&[503, 429]);
    let client = h.client(settings(&fake).with_max_attempts(3));

    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-1").await;

    result.expect("third attempt succeeds");
    assert_eq!(fake.upserts().len(), 3);
    let sync = h.sync_span(&trace_id).await;
    let types: Vec<_> = events(&sync, "crm.retry")
        .iter()
        .map(|e| e.attr_str("error.type").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(types, ["crm.http.503", "crm.http.429"]);
    assert_eq!(sync.attr_i64("http.response.status_code"), Some(200));
}

#[tokio::test]
async fn a_400_is_permanent_and_not_retried() {
    let (h, fake) = start().await;
    fake.script(&[400]);
    let client = h.breaker_client(&fake, 5, 1, Duration::from_secs(60));

    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-1").await;

    assert_status_error(result, "bad request", 400, ErrorClass::Permanent);
    assert_eq!(fake.upserts().len(), 1, "no retry");
    assert_eq!(
        client.breaker_state(),
        BreakerState::Closed,
        "an answer from the CRM is not an outage"
    );
    let sync = h.sync_span(&trace_id).await;
    assert!(events(&sync, "crm.retry").is_empty(), "{sync:#?}");
    assert_eq!(sync.attr_str("error.type"), Some("crm.http.400"));
}

#[tokio::test]
async fn unreachable_and_slow_crms_are_transient() {
    let h = Harness::start().await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = h.client(
        CrmSettings::new(&format!("http://{closed}"), CLIENT_ID, SECRET)
            .with_max_attempts(2)
            .with_retry_delays(Duration::from_millis(5), Duration::from_millis(10)),
    );
    let (result, trace_id) = h.sync(&client, &registered("user-1"), "job-1").await;
    let err = result.expect_err("nothing listens");
    assert!(matches!(err, CrmError::Connect { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    let sync = h.sync_span(&trace_id).await;
    assert_eq!(events(&sync, "crm.retry").len(), 1, "{sync:#?}");
    assert_eq!(sync.attr_str("error.type"), Some("crm.connect"));

    let fake = FakeCrm::start().await;
    fake.with(|s| s.delay = Duration::from_millis(500));
    let client = h.client(
        settings(&fake)
            .with_timeout(Duration::from_millis(150))
            .with_max_attempts(1),
    );
    let (result, _) = h.sync(&client, &registered("user-1"), "job-2").await;
    let err = result.expect_err("too slow");
    assert!(matches!(err, CrmError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn the_breaker_opens_rejects_without_calling_and_a_half_open_probe_closes_it() {
    let (h, fake) = start().await;
    fake.script(&[500, 500]);
    let cooldown = Duration::from_millis(300);
    let client = h.breaker_client(&fake, 1, 2, cooldown);

    let (first, _) = h.sync(&client, &registered("user-1"), "job-1").await;
    assert!(first.is_err());
    assert_eq!(
        client.breaker_state(),
        BreakerState::Closed,
        "one failure of two"
    );
    let (second, opening) = h.sync(&client, &registered("user-1"), "job-2").await;
    assert!(matches!(second, Err(CrmError::Status { status: 500, .. })));
    assert_eq!(client.breaker_state(), BreakerState::Open);
    let opened_at = h.wait_breaker_gauge(2, 0).await;

    let (rejected, rejected_trace) = h.sync(&client, &registered("user-1"), "job-3").await;
    let err = rejected.expect_err("the breaker is open");
    match &err {
        CrmError::BreakerOpen { retry_after } => assert!(*retry_after <= cooldown),
        other => panic!("expected BreakerOpen, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(
        fake.upserts().len(),
        2,
        "the open breaker did not call the CRM"
    );

    let closing = ["open -> half_open", "half_open -> closed"];
    let probe = h.probe(&client, cooldown, "job-4", &closing).await;
    probe.expect("the half-open probe reaches a healthy CRM");
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    assert_eq!(fake.upserts().len(), 3);
    h.wait_breaker_gauge(0, opened_at).await;

    h.assert_transitions(&opening, &["closed -> open"]).await;
    let rejected = h.sync_span(&rejected_trace).await;
    assert_eq!(rejected.attr_str("error.type"), Some("crm.breaker_open"));
    assert!(
        !h.trace(&rejected_trace)
            .await
            .iter()
            .any(|s| s.name.starts_with("POST ")),
        "no HTTP span under a rejected call"
    );
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker() {
    let (h, fake) = start().await;
    fake.with(|s| s.default_status = 503);
    let cooldown = Duration::from_millis(200);
    let client = h.breaker_client(&fake, 3, 1, cooldown);

    let (first, first_trace) = h.sync(&client, &registered("user-1"), "job-1").await;
    // The first attempt opens the breaker, so the call stops there with the CRM's answer.
    assert!(
        matches!(first, Err(CrmError::Status { status: 503, .. })),
        "{first:?}"
    );
    assert_eq!(fake.upserts().len(), 1, "no retry once the breaker is open");
    let first = h.sync_span(&first_trace).await;
    assert!(events(&first, "crm.retry").is_empty(), "{first:#?}");

    let reopening = ["open -> half_open", "half_open -> open"];
    let probe = h.probe(&client, cooldown, "job-2", &reopening).await;
    assert!(probe.is_err());
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert_eq!(
        fake.upserts().len(),
        2,
        "one probe, no retries past the open breaker"
    );
}

#[tokio::test]
async fn secrets_tokens_and_emails_never_reach_telemetry() {
    let (h, fake) = start().await;
    let client = h.breaker_client(&fake, 2, 2, Duration::from_secs(60));

    // Initial token, a 401 with a refresh, retries, the breaker opening (a WARN log line).
    h.sync(&client, &registered("user-leakcheck"), "job-1")
        .await
        .0
        .unwrap();
    fake.revoke_tokens();
    h.sync(&client, &registered("user-leakcheck"), "job-2")
        .await
        .0
        .unwrap();
    fake.with(|s| s.default_status = 502);
    let (result, trace_id) = h
        .sync(&client, &registered("user-leakcheck"), "job-3")
        .await;
    assert!(result.is_err());
    assert_eq!(client.breaker_state(), BreakerState::Open);
    h.sync_span(&trace_id).await;
    h.otlp
        .wait_for_log(
            |l| {
                l.body
                    .as_deref()
                    .is_some_and(|b| b.contains("circuit breaker opened"))
            },
            WAIT,
        )
        .await
        .expect("the breaker log line is exported");

    // The capture is not empty: what may be recorded was.
    assert!(h.otlp.raw_contains(b"user-leakcheck"));
    assert!(h.logs.contents().contains("circuit breaker opened"));
    let tokens = fake.issued();
    assert_eq!(tokens.len(), 2);
    let mut needles = vec![SECRET.to_owned(), EMAIL.to_owned()];
    needles.extend(tokens);
    for needle in &needles {
        assert!(
            !h.otlp.raw_contains(needle.as_bytes()),
            "{needle} reached the OTLP export"
        );
        assert!(
            !h.logs.contents().contains(needle.as_str()),
            "{needle} reached stdout logs"
        );
    }
}
