//! Slow statements and N+1 patterns, seen from the `db.query` spans alone (seed 002 ticket 7).
//!
//! Slow statements are seen when their span closes: every statement already runs inside a
//! `db.query` span (see `vidscope_core::db::query_span`), so timing it where spans are made
//! covers the API and the worker without touching a query. Only sampled spans are timed: the
//! event goes nowhere on the others. Repeats are counted per unit of work: the request
//! middleware and the job runner wrap their work in [`scope`], and `query_span` calls
//! [`note_statement`] and marks the statement that crossed the threshold.
//!
//! - `db.slow_query` {duration_ms, threshold_ms}: added to a `db.query` span that took longer
//!   than the configured threshold.
//! - `db.n_plus_one` {db.query.text, count, threshold}: added to the `db.query` span of the
//!   run that takes a statement past the threshold within one request or job (once).
//!
//! Events are added to the span's OpenTelemetry side (see `span_ext`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use crate::span_ext::SpanExt as _;

const DB_SPAN: &str = "db.query";

/// The slow-statement rule: which spans are timed and the event a slow one gets. Both span
/// backends apply it where a span is created and closed: the fast tracer (`fast::spans::Tracer`),
/// which holds the span there (a layer's `on_close` looked every closing span up in the
/// registry only to read its name, twice per request on the benchmark route), and the `sdk`
/// backend's `SlowQueries` layer.
pub struct DbWatch {
    slow: Duration,
}

impl DbWatch {
    pub fn new(slow: Duration, repeat_threshold: u32) -> Self {
        REPEAT_THRESHOLD.store(repeat_threshold, Ordering::Relaxed);
        Self { slow }
    }

    /// When a span named `name` starts: `Some(now)` if spans with that name are timed.
    #[inline]
    pub(crate) fn start(&self, name: &str) -> Option<Instant> {
        (name == DB_SPAN).then(Instant::now)
    }

    /// The `db.slow_query` {duration_ms, threshold_ms} event (name and attributes) for a
    /// timed span that started at `started`, if it took longer than the threshold. Inlined:
    /// the fast tracer asks at every timed span's close, and the answer is almost always no.
    #[inline]
    pub(crate) fn slow_query(&self, started: Instant) -> Option<(&'static str, Vec<KeyValue>)> {
        let elapsed = started.elapsed();
        (elapsed > self.slow).then(|| {
            (
                "db.slow_query",
                vec![
                    KeyValue::new("duration_ms", elapsed.as_millis() as i64),
                    KeyValue::new("threshold_ms", self.slow.as_millis() as i64),
                ],
            )
        })
    }
}

/// Set from the telemetry configuration when the subscriber is built.
static REPEAT_THRESHOLD: AtomicU32 = AtomicU32::new(5);

/// How many runs of one statement per request or job are tolerated (the `db.n_plus_one` rule).
fn repeat_threshold() -> u32 {
    REPEAT_THRESHOLD.load(Ordering::Relaxed)
}

/// One request's or job's statement counts.
struct Scope {
    counts: Mutex<HashMap<&'static str, u32>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `fut` as one unit of work (a request, a job) whose repeated statements are counted.
pub async fn scope<F: std::future::Future>(fut: F) -> F::Output {
    SCOPE
        .scope(
            Scope {
                counts: Mutex::new(HashMap::new()),
            },
            fut,
        )
        .await
}

/// Counts one run of `statement` in the current scope. Returns the run count when this run
/// is the one that exceeds the threshold (so once per statement and scope); the caller adds
/// the `db.n_plus_one` marker to that statement's span (see [`mark_n_plus_one`]).
pub fn note_statement(statement: &'static str) -> Option<u32> {
    SCOPE
        .try_with(|s| {
            let mut counts = s.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(statement).or_insert(0);
            *n += 1;
            (*n == repeat_threshold().saturating_add(1)).then_some(*n)
        })
        .ok()
        .flatten()
}

/// `db.n_plus_one` {db.query.text, count, threshold} on `span`, the statement's own span.
pub fn mark_n_plus_one(span: &tracing::Span, statement: &'static str, count: u32) {
    span.add_event(
        "db.n_plus_one",
        vec![
            KeyValue::new("db.query.text", statement),
            KeyValue::new("count", i64::from(count)),
            KeyValue::new("threshold", i64::from(repeat_threshold())),
        ],
    );
}
