//! One virtual user's HTTP client: its own cookie jar (session), a CLIENT span per request
//! with `traceparent` injected, and every response counted in [`Stats`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};
use tracing::field::Empty;

use super::stats::{Outcome, Stats};

/// Limits shared by every virtual user: the run ends at the deadline or after `max` requests,
/// whichever comes first.
/// A stop (Ctrl-C) ends it early.
pub(super) struct Budget {
    pub deadline: Instant,
    max: u64,
    used: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Budget {
    pub(super) fn new(duration: Duration, max: u64) -> Self {
        Self {
            deadline: Instant::now() + duration,
            max,
            used: AtomicU64::new(0),
            stop: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Takes one request from the budget; `false` once the run is over.
    pub(super) fn take(&self) -> bool {
        !self.exhausted() && self.used.fetch_add(1, Ordering::Relaxed) < self.max
    }

    pub(super) fn exhausted(&self) -> bool {
        *self.stop.borrow()
            || Instant::now() >= self.deadline
            || self.used.load(Ordering::Relaxed) >= self.max
    }

    pub(super) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves when [`Budget::stop`] is called.
    pub(super) async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed).min(self.max)
    }
}

/// The run is over (deadline or request budget): scenarios unwind with `?`.
#[derive(Debug)]
pub(super) struct Exhausted;

/// A response the scenario can read further (its JSON body, say).
pub(super) struct Reply {
    pub status: u16,
    pub response: Option<reqwest::Response>,
}

impl Reply {
    pub(super) async fn json<T: serde::de::DeserializeOwned>(self) -> Option<T> {
        self.response?.json().await.ok()
    }
}

#[derive(Clone)]
pub(super) struct Client {
    http: reqwest::Client,
    base: Url,
    stats: Arc<Stats>,
    budget: Arc<Budget>,
}

impl Client {
    /// A client with an empty cookie jar. Redirects are not followed: a 302 to a presigned S3
    /// URL is the answer being measured, and its host may not resolve from here.
    pub(super) fn new(base: Url, stats: Arc<Stats>, budget: Arc<Budget>) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("vidscope-loadgen/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base,
            stats,
            budget,
        })
    }

    pub(super) fn budget(&self) -> &Budget {
        &self.budget
    }

    pub(super) fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// [`send`](Self::send) of a request without a body to `route`, a route without path
    /// parameters (`POST /api/auth/logout`): its path is the request's.
    pub(super) async fn call(
        &self,
        route: &'static str,
        expect: &[u16],
    ) -> Result<Reply, Exhausted> {
        let (method, path) = route.split_once(' ').unwrap_or(("GET", route));
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        self.send(route, self.request(method, path), expect).await
    }

    /// Sends `req` inside a CLIENT span named after `route` (a template such as
    /// `GET /api/videos/{id}`, so span names stay low-cardinality) and records the outcome.
    /// `expect` is the status the scenario provokes; anything else counts as unexpected.
    pub(super) async fn send(
        &self,
        route: &'static str,
        req: RequestBuilder,
        expect: &[u16],
    ) -> Result<Reply, Exhausted> {
        if !self.budget.take() {
            return Err(Exhausted);
        }
        let (method, path) = route.split_once(' ').unwrap_or(("GET", route));
        let span = tracing::info_span!(
            "loadgen.http",
            otel.name = route,
            otel.kind = "client",
            http.request.method = method,
            url.template = path,
            server.address = self.base.host_str().unwrap_or_default(),
            server.port = self.base.port_or_known_default().map(i64::from),
            http.response.status_code = Empty,
            otel.status_code = Empty,
            error.type = Empty,
        );
        let mut req = req;
        for (k, v) in vidscope_telemetry::propagation::inject_map(&span) {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                req = req.header(k, v);
            }
        }
        let started = Instant::now();
        let result = {
            use tracing::Instrument;
            req.send().instrument(span.clone()).await
        };
        let latency = started.elapsed();
        let (outcome, reply) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                span.record("http.response.status_code", i64::from(status));
                if status >= 400 {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", response.status().as_str());
                }
                let outcome = if expect.contains(&status) {
                    Outcome::Expected(status)
                } else {
                    Outcome::Unexpected(status)
                };
                (
                    outcome,
                    Reply {
                        status,
                        response: Some(response),
                    },
                )
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                span.record("error.type", kind);
                tracing::debug!(parent: &span, error.type = kind, "request failed: {e}");
                (
                    Outcome::Transport,
                    Reply {
                        status: 0,
                        response: None,
                    },
                )
            }
        };
        if let Outcome::Unexpected(status) = outcome {
            tracing::warn!(parent: &span, http.response.status_code = i64::from(status), route, "unexpected status");
        }
        self.stats.record(route, outcome, latency);
        Ok(reply)
    }
}
