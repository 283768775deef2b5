//! OAuth2 client-credentials tokens for the CRM API: fetched on first use, cached, replaced
//! shortly before they expire or when the API answers 401.
//!
//! Neither the client secret nor an access token is ever formatted into a span, an event, a log
//! line or an error message: both live in [`Secret`], whose `Debug` prints a placeholder and
//! which has no `Display`; the token endpoint's body is never quoted in errors (it holds the
//! token).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use reqwest::Url;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_tracing::OtelName;
use tokio::time::Instant;
use vidscope_telemetry::SpanExt as _;

use super::CrmError;

/// How long before its expiry a token is replaced (at most half its lifetime), so a request
/// never leaves with a token that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Lifetime assumed when the token response has no `expires_in` (RFC 6749 makes it optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

pub(crate) const TOKEN_ENDPOINT: &str = "oauth/token";

/// A credential: cheap to clone, impossible to print by accident.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where tokens come from: `POST {base}/oauth/token` with the client credentials as a form.
pub(crate) struct TokenSource {
    pub(crate) http: ClientWithMiddleware,
    pub(crate) url: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    async fn fetch(&self) -> Result<(Secret, Duration), CrmError> {
        let response = self
            .http
            .post(self.url.clone())
            .with_extension(OtelName("POST /oauth/token".into()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client_id),
                ("client_secret", self.client_secret.expose()),
            ])
            .send()
            .await
            .map_err(|e| CrmError::from_transport(TOKEN_ENDPOINT, e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| CrmError::from_transport(TOKEN_ENDPOINT, e.into()))?;
        if !status.is_success() {
            return Err(CrmError::Status {
                endpoint: TOKEN_ENDPOINT,
                status: status.as_u16(),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| CrmError::BadResponse {
                endpoint: TOKEN_ENDPOINT,
                reason: "not a JSON object with a string access_token",
            })?;
        if parsed.access_token.is_empty() {
            return Err(CrmError::BadResponse {
                endpoint: TOKEN_ENDPOINT,
                reason: "empty access_token",
            });
        }
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        Ok((Secret::new(parsed.access_token), lifetime))
    }
}

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) secret: Secret,
    refresh_at: Instant,
    /// Tells a 401 on an old token apart from a 401 on the one another call just fetched.
    generation: u64,
}

/// The one token of a client, shared by its clones.
///
/// A Tokio mutex held across the token request on purpose: when the token runs out, concurrent
/// calls wait for one refresh instead of each asking the CRM for a new token.
#[derive(Default)]
pub(crate) struct TokenCache {
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    token: Option<CachedToken>,
    generation: u64,
}

#[derive(Clone, Copy)]
enum Reason {
    Initial,
    Expired,
    Unauthorized,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Initial => "initial",
            Reason::Expired => "expired",
            Reason::Unauthorized => "unauthorized",
        }
    }
}

impl TokenCache {
    /// The cached token, or a new one when there is none yet or it is about to expire.
    pub(crate) async fn get(&self, source: &TokenSource) -> Result<CachedToken, CrmError> {
        let mut slot = self.slot.lock().await;
        let reason = match &slot.token {
            Some(t) if Instant::now() < t.refresh_at => return Ok(t.clone()),
            Some(_) => Reason::Expired,
            None => Reason::Initial,
        };
        refresh(&mut slot, source, reason).await
    }

    /// A replacement for `rejected`, which the API answered 401 to. If another call already
    /// replaced it, that newer token is returned without asking the CRM again.
    pub(crate) async fn replace_rejected(
        &self,
        rejected: &CachedToken,
        source: &TokenSource,
    ) -> Result<CachedToken, CrmError> {
        let mut slot = self.slot.lock().await;
        if let Some(t) = &mut slot.token {
            if t.generation != rejected.generation && Instant::now() < t.refresh_at {
                return Ok(t.clone());
            }
            // If the refresh below fails, the next call must not reuse the rejected token.
            t.refresh_at = Instant::now();
        }
        refresh(&mut slot, source, Reason::Unauthorized).await
    }
}

async fn refresh(
    slot: &mut Slot,
    source: &TokenSource,
    reason: Reason,
) -> Result<CachedToken, CrmError> {
    let (secret, lifetime) = source.fetch().await?;
    slot.generation += 1;
    let token = CachedToken {
        secret,
        refresh_at: Instant::now() + lifetime - REFRESH_MARGIN.min(lifetime / 2),
        generation: slot.generation,
    };
    slot.token = Some(token.clone());
    tracing::Span::current().add_event(
        "crm.token.refreshed",
        vec![
            KeyValue::new("reason", reason.as_str()),
            KeyValue::new("crm.token.expires_in_s", lifetime.as_secs() as i64),
        ],
    );
    Ok(token)
}
