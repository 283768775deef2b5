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
mod error;
mod settings;
mod token;

use std::sync::Arc;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use reqwest::Url;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_tracing::{OtelName, ReqwestOtelSpanBackend, TracingMiddleware};
use tracing::field::Empty;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::classify::record_classified;
use vidscope_telemetry::{Backoff, Classify, Metrics};

pub use breaker::BreakerState;
// What happened to the user, as the CRM is told (`event` in the request body). It is the
// `crm.sync` job's payload too, so it lives with that payload in `vidscope_core`.
use breaker::{Admission, Breaker};
pub use error::CrmError;
use error::TransportKind;
pub use settings::CrmSettings;
use settings::{URL_VAR, parse_base_url};
pub use token::Secret;
use token::{TOKEN_ENDPOINT, TokenCache, TokenSource};
pub use vidscope_core::jobs::crm_sync::CrmEvent;

const CONTACTS_ENDPOINT: &str = "contacts/upsert";

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

    /// The `crm.sync` job runs on a multi-threaded runtime: the call must be spawnable.
    #[allow(dead_code)]
    fn sync_contact_is_send(client: &CrmClient, contact: &CrmContact) {
        fn send<T: Send>(_: T) {}
        fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        send(client.sync_contact(contact, "job"));
        send_sync_clone::<CrmClient>();
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
