//! The CRM sync client (seed 002's GoHighLevel integration, "Ticket 6"): tells an external CRM
//! that a user registered or completed a lesson, so the `crm.sync` job can hand it a contact and
//! forget about HTTP.
//!
//! - `POST {base}/contacts/upsert` with `{email, userId, event, videoId?}`, a Bearer token and
//!   the job id as `Idempotency-Key`, so a job retried after a lost answer is harmless.
//! - OAuth2 client credentials (`POST {base}/oauth/token`), the token cached and replaced
//!   shortly before expiry; a 401 from the API replaces it once and retries once ([`token`]).
//! - Transient failures (timeouts, connection errors, 408/425/429, 5xx) are retried in the call
//!   with exponential backoff and full jitter; anything else fails at once.
//! - A circuit breaker ([`breaker`]) stops calling a CRM that keeps failing.
//!
//! # Telemetry
//! Every call is a `crm.sync_contact` span (`crm.event`, `user.id`, `video.id`,
//! `crm.idempotency_key`, `crm.attempts`, `http.response.status_code` of the last response,
//! `error.type`/`error.class` on failure) with span events `crm.retry` {`attempt`, `error.type`,
//! `crm.retry.delay_ms`}, `crm.token.refreshed` {`reason`: initial|expired|unauthorized} and
//! `crm.circuit_breaker.transition` {`from`, `to`}. Each HTTP request is a CLIENT child span with
//! HTTP semantic-convention attributes, and its `traceparent` names that span, so the CRM's own
//! trace (if it has one) joins ours. The breaker state is the `crm.circuit_breaker.state` gauge.
//! The e-mail address is personal data and is not recorded; secrets and tokens never are.
//!
//! # Configuration
//! | variable | meaning | default |
//! |---|---|---|
//! | `VIDSCOPE_CRM_URL` | base URL of the CRM API; unset turns CRM sync off | — |
//! | `VIDSCOPE_CRM_CLIENT_ID` | OAuth2 client id | required with the URL |
//! | `VIDSCOPE_CRM_CLIENT_SECRET` | OAuth2 client secret | required with the URL |
//! | `VIDSCOPE_CRM_TIMEOUT_MS` | timeout of each HTTP request | 5000 |
//! | `VIDSCOPE_CRM_MAX_ATTEMPTS` | attempts per call, first one included | 3 |
//! | `VIDSCOPE_CRM_BREAKER_FAILURES` | consecutive transient failures that open the breaker | 5 |
//! | `VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS` | how long the breaker stays open before a probe | 30 |

mod breaker;
mod token;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use reqwest::Url;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_tracing::{OtelName, ReqwestOtelSpanBackend, TracingMiddleware};
use tracing::field::Empty;
use vidscope_core::config::SettingsError;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::classify::{classify_http_status, record_classified};
use vidscope_telemetry::{Backoff, Classify, ErrorClass, Metrics};

pub use breaker::BreakerState;
// What happened to the user, as the CRM is told (`event` in the request body). It is the
// `crm.sync` job's payload too, so it lives with that payload in `vidscope_core`.
use breaker::{Admission, Breaker};
pub use token::Secret;
use token::{TOKEN_ENDPOINT, TokenCache, TokenSource};
pub use vidscope_core::jobs::crm_sync::CrmEvent;

const CONTACTS_ENDPOINT: &str = "contacts/upsert";

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// How to reach the CRM and how hard to try. `Debug` never shows the client secret.
#[derive(Clone)]
pub struct CrmSettings {
    /// Base URL; the API paths are appended to it (`{base}/oauth/token`, `{base}/contacts/upsert`).
    pub base_url: String,
    pub client_id: String,
    client_secret: Secret,
    /// Timeout of each HTTP request (not of the whole call with its retries).
    pub timeout: Duration,
    /// Attempts per call, the first one included.
    pub max_attempts: u32,
    /// Consecutive transient failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker rejects calls before letting a probe through.
    pub breaker_cooldown: Duration,
    /// First retry delay (doubled per retry, full jitter) and the cap.
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
}

impl std::fmt::Debug for CrmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmSettings")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .finish()
    }
}

const URL_VAR: &str = "VIDSCOPE_CRM_URL";

impl CrmSettings {
    /// Defaults for everything but the endpoint and the credentials.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Secret::new(client_secret),
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            retry_base_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(5),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn with_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures.max(1);
        self.breaker_cooldown = cooldown;
        self
    }

    pub fn with_retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// `None` when `VIDSCOPE_CRM_URL` is unset or empty (CRM sync off). A bad value fails with
    /// the variable's name; the secret's value is never part of an error.
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup, for tests.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let Some(url) = get(URL_VAR) else {
            return Ok(None);
        };
        parse_base_url(&url).map_err(|reason| SettingsError {
            var: URL_VAR,
            reason,
        })?;
        let required = |var: &'static str| {
            get(var).ok_or(SettingsError {
                var,
                reason: format!("must be set when {URL_VAR} is"),
            })
        };
        let client_id = required("VIDSCOPE_CRM_CLIENT_ID")?;
        let client_secret = required("VIDSCOPE_CRM_CLIENT_SECRET")?;
        let mut s = Self::new(url.trim(), client_id.trim(), &client_secret);
        let positive = |var: &'static str, what: &str| -> Result<Option<u64>, SettingsError> {
            get(var)
                .map(|v| vidscope_core::config::parse_u64(var, &v, what))
                .transpose()
        };
        let small = |var: &'static str, n: u64| {
            u32::try_from(n).map_err(|_| SettingsError {
                var,
                reason: format!("{n} is too large"),
            })
        };
        if let Some(ms) = positive("VIDSCOPE_CRM_TIMEOUT_MS", "milliseconds")? {
            s.timeout = Duration::from_millis(ms);
        }
        if let Some(n) = positive("VIDSCOPE_CRM_MAX_ATTEMPTS", "attempts")? {
            s.max_attempts = small("VIDSCOPE_CRM_MAX_ATTEMPTS", n)?;
        }
        if let Some(n) = positive("VIDSCOPE_CRM_BREAKER_FAILURES", "failures")? {
            s.breaker_failures = small("VIDSCOPE_CRM_BREAKER_FAILURES", n)?;
        }
        if let Some(secs) = positive("VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS", "seconds")? {
            s.breaker_cooldown = Duration::from_secs(secs);
        }
        Ok(Some(s))
    }
}

/// The base URL with a trailing slash, so relative endpoint paths are appended to it rather than
/// replacing its last segment. User info is refused: credentials belong in the client id and
/// secret, and a URL is recorded on every client span (`url.full`).
fn parse_base_url(raw: &str) -> Result<Url, String> {
    let mut url = Url::parse(raw.trim()).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials; use VIDSCOPE_CRM_CLIENT_ID/_SECRET".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

// ---------------------------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------------------------

/// One contact update. `Debug` hides the e-mail address (personal data).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrmContact {
    pub user_id: String,
    pub email: String,
    pub event: CrmEvent,
}

impl std::fmt::Debug for CrmContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmContact")
            .field("user_id", &self.user_id)
            .field("email", &"[redacted]")
            .field("event", &self.event)
            .finish()
    }
}

/// The wire form of `POST /contacts/upsert`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct UpsertBody<'a> {
    email: &'a str,
    user_id: &'a str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    video_id: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a sync failed. [`Classify`] says whether retrying later can help.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// No response within [`CrmSettings::timeout`]. Transient.
    #[error("the CRM did not answer {endpoint} in time")]
    Timeout {
        endpoint: &'static str,
        #[source]
        source: reqwest_middleware::Error,
    },
    /// No connection (refused, DNS, TLS). Transient.
    #[error("cannot connect to the CRM for {endpoint}")]
    Connect {
        endpoint: &'static str,
        #[source]
        source: reqwest_middleware::Error,
    },
    /// The exchange broke off (connection reset, truncated body). Transient.
    #[error("the CRM request to {endpoint} failed")]
    Transport {
        endpoint: &'static str,
        #[source]
        source: reqwest_middleware::Error,
    },
    /// The CRM answered with a non-success status: transient for 408, 425, 429 and 5xx,
    /// permanent otherwise (a 401 here is the answer after the token was already replaced once).
    #[error("the CRM answered {status} to {endpoint}")]
    Status { endpoint: &'static str, status: u16 },
    /// The CRM answered 2xx with something unusable. Permanent.
    #[error("unusable answer from the CRM to {endpoint}: {reason}")]
    BadResponse {
        endpoint: &'static str,
        reason: &'static str,
    },
    /// The circuit breaker is open: the CRM was not called. Transient; try again after
    /// `retry_after` at the earliest.
    #[error("the CRM circuit breaker is open (retry in {retry_after:?})")]
    BreakerOpen { retry_after: Duration },
    /// The request cannot be built from this input or configuration. Permanent.
    #[error("invalid CRM request: {0}")]
    Invalid(String),
}

/// What kind of failure a request error is, read off the borrowed error.
#[derive(Clone, Copy)]
enum TransportKind {
    Timeout,
    Connect,
    Invalid,
    Other,
}

impl TransportKind {
    fn of(e: &reqwest_middleware::Error) -> Self {
        match e {
            reqwest_middleware::Error::Reqwest(r) if r.is_timeout() => TransportKind::Timeout,
            reqwest_middleware::Error::Reqwest(r) if r.is_connect() => TransportKind::Connect,
            reqwest_middleware::Error::Reqwest(r) if r.is_builder() || r.is_redirect() => {
                TransportKind::Invalid
            }
            _ => TransportKind::Other,
        }
    }
}

impl CrmError {
    fn from_transport(endpoint: &'static str, source: reqwest_middleware::Error) -> Self {
        match TransportKind::of(&source) {
            TransportKind::Timeout => CrmError::Timeout { endpoint, source },
            TransportKind::Connect => CrmError::Connect { endpoint, source },
            TransportKind::Invalid => CrmError::Invalid(source.to_string()),
            TransportKind::Other => CrmError::Transport { endpoint, source },
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            CrmError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl Classify for CrmError {
    fn class(&self) -> ErrorClass {
        match self {
            CrmError::Timeout { .. }
            | CrmError::Connect { .. }
            | CrmError::Transport { .. }
            | CrmError::BreakerOpen { .. } => ErrorClass::Transient,
            // Every 5xx, not only the gateway codes `classify_http_status` lists: a CRM's 501 or
            // 507 is as likely to pass as its 500.
            CrmError::Status { status, .. } if (500..600).contains(status) => ErrorClass::Transient,
            CrmError::Status { status, .. } => classify_http_status(*status),
            CrmError::BadResponse { .. } | CrmError::Invalid(_) => ErrorClass::Permanent,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            CrmError::Timeout { .. } => "crm.timeout",
            CrmError::Connect { .. } => "crm.connect",
            CrmError::Transport { .. } => "crm.transport",
            CrmError::Status { status, .. } => status_error_type(*status),
            CrmError::BadResponse { .. } => "crm.bad_response",
            CrmError::BreakerOpen { .. } => "crm.breaker_open",
            CrmError::Invalid(_) => "crm.invalid",
        }
    }
}

/// A bounded set of names (it may become a metric label): common codes by number, the rest by
/// class.
fn status_error_type(status: u16) -> &'static str {
    match status {
        400 => "crm.http.400",
        401 => "crm.http.401",
        403 => "crm.http.403",
        404 => "crm.http.404",
        408 => "crm.http.408",
        409 => "crm.http.409",
        422 => "crm.http.422",
        429 => "crm.http.429",
        500 => "crm.http.500",
        502 => "crm.http.502",
        503 => "crm.http.503",
        504 => "crm.http.504",
        s if s / 100 == 4 => "crm.http.4xx",
        s if s / 100 == 5 => "crm.http.5xx",
        _ => "crm.http.other",
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// The CRM client; clones share the HTTP connection pool, the token and the circuit breaker.
#[derive(Clone)]
pub struct CrmClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: ClientWithMiddleware,
    upsert_url: Url,
    tokens: TokenCache,
    token_source: TokenSource,
    breaker: Breaker,
    backoff: Backoff,
}

impl std::fmt::Debug for CrmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmClient")
            .field("upsert_url", &self.inner.upsert_url.as_str())
            .field("breaker", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

impl CrmClient {
    pub fn new(settings: CrmSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let base = parse_base_url(&settings.base_url)
            .map_err(|reason| anyhow::anyhow!("invalid {URL_VAR}: {reason}"))?;
        let join = |path: &str| {
            base.join(path)
                .with_context(|| format!("cannot build the CRM URL for {path}"))
        };
        let upsert_url = join(CONTACTS_ENDPOINT)?;
        let token_url = join(TOKEN_ENDPOINT)?;
        let reqwest = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect would carry the Bearer token somewhere we were not told about; treat
            // it as an answer (a permanent error) instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the CRM HTTP client")?;
        let http = reqwest_middleware::ClientBuilder::new(reqwest)
            .with(TracingMiddleware::<CrmSpanBackend>::new())
            .with(inject_trace_context)
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                token_source: TokenSource {
                    http: http.clone(),
                    url: token_url,
                    client_id: settings.client_id,
                    client_secret: settings.client_secret,
                },
                http,
                upsert_url,
                tokens: TokenCache::default(),
                breaker: Breaker::new(
                    settings.breaker_failures,
                    settings.breaker_cooldown,
                    metrics.crm_circuit_breaker_state.clone(),
                ),
                backoff: Backoff {
                    base: settings.retry_base_delay,
                    max: settings.retry_max_delay,
                    max_attempts: settings.max_attempts.max(1),
                },
            }),
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Upserts the contact; `idempotency_key` (the job id) is sent as `Idempotency-Key`, the same
    /// on every attempt. Transient failures are retried here up to `max_attempts`; the error
    /// returned says whether a later retry (the job's) can help.
    #[tracing::instrument(
        name = "crm.sync_contact",
        skip_all,
        fields(
            crm.event = contact.event.as_str(),
            user.id = %contact.user_id,
            video.id = contact.event.video_id(),
            crm.idempotency_key = %idempotency_key,
            crm.attempts = Empty,
            http.response.status_code = Empty,
        )
    )]
    pub async fn sync_contact(
        &self,
        contact: &CrmContact,
        idempotency_key: &str,
    ) -> Result<(), CrmError> {
        let span = tracing::Span::current();
        let backoff = self.inner.backoff;
        let mut attempt = 1;
        let mut last_status;
        let result = loop {
            let outcome = self.attempt(contact, idempotency_key).await;
            // Recorded once, after the loop: a field recorded again is exported twice.
            last_status = match &outcome {
                Ok(status) => Some(*status),
                Err(e) => e.status(),
            };
            match outcome {
                Ok(_) => break Ok(()),
                // No retry once the breaker is not closed (this failure may have opened it):
                // waiting out a cooldown here would hold a worker slot for its whole length;
                // the job is retried later instead.
                Err(e)
                    if backoff.should_retry(e.class(), attempt)
                        && self.inner.breaker.state() == BreakerState::Closed =>
                {
                    let delay = backoff.delay(attempt, rand::random::<f64>());
                    attempt += 1;
                    span.add_event(
                        "crm.retry",
                        vec![
                            KeyValue::new("attempt", i64::from(attempt)),
                            KeyValue::new("error.type", e.error_type()),
                            KeyValue::new(
                                "crm.retry.delay_ms",
                                i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                            ),
                        ],
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => break Err(e),
            }
        };
        span.record("crm.attempts", i64::from(attempt));
        if let Some(status) = last_status {
            span.record("http.response.status_code", i64::from(status));
        }
        if let Err(e) = &result {
            record_classified(&span, e);
        }
        result
    }

    /// One attempt through the breaker: its final status code, or why there is none.
    async fn attempt(&self, contact: &CrmContact, key: &str) -> Result<u16, CrmError> {
        let permit = match self.inner.breaker.admit() {
            Admission::Allowed(permit) => permit,
            Admission::Rejected { retry_after } => {
                return Err(CrmError::BreakerOpen { retry_after });
            }
        };
        let outcome = self.upsert(contact, key).await;
        // Only an unavailable CRM counts against the breaker: a 4xx is an answer.
        match &outcome {
            Err(e) if e.class().is_retryable() => permit.failure(),
            _ => permit.success(),
        }
        outcome
    }

    /// Token, upsert, and on a 401 one token replacement and one more upsert.
    async fn upsert(&self, contact: &CrmContact, key: &str) -> Result<u16, CrmError> {
        let inner = &self.inner;
        let token = inner.tokens.get(&inner.token_source).await?;
        let mut status = self.post_upsert(contact, key, &token.secret).await?;
        if status == 401 {
            let fresh = inner
                .tokens
                .replace_rejected(&token, &inner.token_source)
                .await?;
            status = self.post_upsert(contact, key, &fresh.secret).await?;
        }
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(CrmError::Status {
                endpoint: CONTACTS_ENDPOINT,
                status,
            })
        }
    }

    async fn post_upsert(
        &self,
        contact: &CrmContact,
        key: &str,
        token: &Secret,
    ) -> Result<u16, CrmError> {
        let key = http::HeaderValue::from_str(key)
            .map_err(|_| CrmError::Invalid("the idempotency key is not a valid header".into()))?;
        let mut bearer = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| CrmError::Invalid("the access token is not a valid header".into()))?;
        bearer.set_sensitive(true);
        let body = UpsertBody {
            email: &contact.email,
            user_id: &contact.user_id,
            event: contact.event.as_str(),
            video_id: contact.event.video_id(),
        };
        let response = self
            .inner
            .http
            .post(self.inner.upsert_url.clone())
            .with_extension(OtelName("POST /contacts/upsert".into()))
            .header(http::header::AUTHORIZATION, bearer)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .map_err(|e| CrmError::from_transport(CONTACTS_ENDPOINT, e))?;
        let status = response.status().as_u16();
        // Read the (ignored) body so the connection goes back to the pool.
        response
            .bytes()
            .await
            .map_err(|e| CrmError::from_transport(CONTACTS_ENDPOINT, e.into()))?;
        Ok(status)
    }
}

// ---------------------------------------------------------------------------------------------
// Client spans
// ---------------------------------------------------------------------------------------------

/// The `traceparent` and `baggage` of the current span: the `crm.http` client span, which
/// reqwest-tracing's middleware runs the rest of the chain in. reqwest-tracing's own
/// injection reads the span through tracing-opentelemetry's layer, which only the `sdk`
/// backend installs (the default `fast` backend has its own span store), so it is not enabled.
fn inject_trace_context<'a>(
    mut req: reqwest::Request,
    ext: &'a mut http::Extensions,
    next: reqwest_middleware::Next<'a>,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'a,
    >,
> {
    vidscope_telemetry::propagation::inject_http(
        &tracing::Span::current().context(),
        req.headers_mut(),
    );
    Box::pin(next.run(req, ext))
}

/// Client spans for CRM requests, with reqwest-tracing's middleware around them (it records
/// the outcome; [`inject_trace_context`] sends `traceparent` for the span returned here).
///
/// Not reqwest-tracing's own `DefaultSpanBackend`: its spans have the target `reqwest_tracing`,
/// and the telemetry crate's span filter has `reqwest=off` (directives match targets by prefix).
/// The span layer then never sees the request span, so it is not exported and, as it is still
/// the current span when the context is injected, its empty context means no `traceparent` is
/// sent at all (the success-path test fails that way with the default backend). A span created here has this module's target. It also records the status code
/// and `server.port` as integers and `error.type` on failure, as the HTTP semantic conventions
/// ask.
struct CrmSpanBackend;

impl ReqwestOtelSpanBackend for CrmSpanBackend {
    fn on_request_start(req: &reqwest::Request, ext: &mut http::Extensions) -> tracing::Span {
        let name = reqwest_tracing::default_span_name(req, ext);
        let url = req.url();
        // `parse_base_url` refused user info and queries, so the URL holds nothing secret.
        tracing::info_span!(
            "crm.http",
            otel.name = %name,
            otel.kind = "client",
            http.request.method = %req.method(),
            server.address = url.host_str().unwrap_or_default(),
            server.port = url.port_or_known_default().map(i64::from),
            url.full = %url,
            http.response.status_code = Empty,
            otel.status_code = Empty,
            error.type = Empty,
            error.message = Empty,
        )
    }

    fn on_request_end(
        span: &tracing::Span,
        outcome: &reqwest_middleware::Result<reqwest::Response>,
        _: &mut http::Extensions,
    ) {
        // Not `reqwest_tracing::default_on_request_end`: it records the status as a `u16`,
        // a `u64` field; the attribute is recorded as an integer explicitly here.
        match outcome {
            Ok(response) => {
                let status = response.status();
                span.record("http.response.status_code", i64::from(status.as_u16()));
                // Client spans: every 4xx and 5xx is an error (HTTP semantic conventions).
                if status.as_u16() >= 400 {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", status.as_str());
                }
            }
            Err(e) => {
                let error_type = match TransportKind::of(e) {
                    TransportKind::Timeout => "crm.timeout",
                    TransportKind::Connect => "crm.connect",
                    TransportKind::Invalid => "crm.invalid",
                    TransportKind::Other => "crm.transport",
                };
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error_type);
                span.record("error.message", tracing::field::display(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FULL: &[(&str, &str)] = &[
        ("VIDSCOPE_CRM_URL", "https://crm.example.com/api"),
        ("VIDSCOPE_CRM_CLIENT_ID", "id"),
        ("VIDSCOPE_CRM_CLIENT_SECRET", "s3cr3t-value"),
    ];

    /// The `crm.sync` job runs on a multi-threaded runtime: the call must be spawnable.
    #[allow(dead_code)]
    fn sync_contact_is_send(client: &CrmClient, contact: &CrmContact) {
        fn send<T: Send>(_: T) {}
        fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        send(client.sync_contact(contact, "job"));
        send_sync_clone::<CrmClient>();
    }

    #[test]
    fn unset_url_turns_sync_off() {
        assert!(CrmSettings::from_lookup(lookup(&[])).unwrap().is_none());
        assert!(
            CrmSettings::from_lookup(lookup(&[("VIDSCOPE_CRM_URL", " ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let s = CrmSettings::from_lookup(lookup(FULL)).unwrap().unwrap();
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.breaker_failures, 5);
        assert_eq!(s.breaker_cooldown, Duration::from_secs(30));

        let mut vars = FULL.to_vec();
        vars.extend([
            ("VIDSCOPE_CRM_TIMEOUT_MS", "1500"),
            ("VIDSCOPE_CRM_MAX_ATTEMPTS", "7"),
            ("VIDSCOPE_CRM_BREAKER_FAILURES", "2"),
            ("VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS", "9"),
        ]);
        let s = CrmSettings::from_lookup(lookup(&vars)).unwrap().unwrap();
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!(s.max_attempts, 7);
        assert_eq!(s.breaker_failures, 2);
        assert_eq!(s.breaker_cooldown, Duration::from_secs(9));
    }

    /// Environment, the variable the error must name, what the case is about.
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[Case] = &[
            (
                &[("VIDSCOPE_CRM_URL", "ftp://crm")],
                "VIDSCOPE_CRM_URL",
                "non-HTTP scheme",
            ),
            (
                &[("VIDSCOPE_CRM_URL", "not a url")],
                "VIDSCOPE_CRM_URL",
                "not a URL",
            ),
            (
                &[("VIDSCOPE_CRM_URL", "https://u:p@crm.example.com")],
                "VIDSCOPE_CRM_URL",
                "credentials in the URL",
            ),
            (
                &[("VIDSCOPE_CRM_URL", "https://crm.example.com")],
                "VIDSCOPE_CRM_CLIENT_ID",
                "missing client id",
            ),
            (
                &[
                    ("VIDSCOPE_CRM_URL", "https://crm.example.com"),
                    ("VIDSCOPE_CRM_CLIENT_ID", "id"),
                ],
                "VIDSCOPE_CRM_CLIENT_SECRET",
                "missing secret",
            ),
        ];
        for (vars, var, why) in cases {
            let err = CrmSettings::from_lookup(lookup(vars)).expect_err(why);
            assert_eq!(err.var, *var, "{why}");
        }
        for (var, value) in [
            ("VIDSCOPE_CRM_TIMEOUT_MS", "0"),
            ("VIDSCOPE_CRM_MAX_ATTEMPTS", "three"),
            ("VIDSCOPE_CRM_BREAKER_FAILURES", "-1"),
            ("VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS", "1.5"),
            ("VIDSCOPE_CRM_MAX_ATTEMPTS", "99999999999"),
        ] {
            let mut vars = FULL.to_vec();
            vars.push((var, value));
            let err = CrmSettings::from_lookup(lookup(&vars)).expect_err(value);
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let s = CrmSettings::from_lookup(lookup(FULL)).unwrap().unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        let contact = CrmContact {
            user_id: "u1".into(),
            email: "ada@example.com".into(),
            event: CrmEvent::Registered,
        };
        assert!(!format!("{contact:?}").contains("ada@"));
    }

    #[test]
    fn endpoints_are_appended_to_the_base_path() {
        let base = parse_base_url("https://crm.example.com/api").unwrap();
        assert_eq!(
            base.join(CONTACTS_ENDPOINT).unwrap().as_str(),
            "https://crm.example.com/api/contacts/upsert"
        );
        let base = parse_base_url("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            base.join(TOKEN_ENDPOINT).unwrap().as_str(),
            "http://127.0.0.1:9/oauth/token"
        );
    }

    #[test]
    fn classes_and_error_types() {
        let status = |s| CrmError::Status {
            endpoint: CONTACTS_ENDPOINT,
            status: s,
        };
        for s in [429, 500, 501, 502, 503, 504, 408] {
            assert_eq!(status(s).class(), ErrorClass::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(status(s).class(), ErrorClass::Permanent, "{s}");
        }
        assert_eq!(status(503).error_type(), "crm.http.503");
        assert_eq!(status(418).error_type(), "crm.http.4xx");
        let open = CrmError::BreakerOpen {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(open.class(), ErrorClass::Transient);
        assert_eq!(CrmError::Invalid("x".into()).class(), ErrorClass::Permanent);
    }

    #[test]
    fn event_wire_and_payload_forms() {
        let body = UpsertBody {
            email: "a@example.com",
            user_id: "u1",
            event: "lesson_completed",
            video_id: Some("v9"),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"email": "a@example.com", "userId": "u1",
                "event": "lesson_completed", "videoId": "v9"})
        );
        let ev = CrmEvent::LessonCompleted {
            video_id: "v9".into(),
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "lesson_completed", "video_id": "v9"})
        );
        assert_eq!(serde_json::from_value::<CrmEvent>(json).unwrap(), ev);
    }
}
