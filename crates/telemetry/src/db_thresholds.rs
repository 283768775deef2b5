//! The thresholds of the database watch (see [`crate::db_watch`]): the slow-statement rule that
//! both span backends apply where a `db.query` span closes, and the repeat count. Apart from
//! `db_watch` because that module writes its events through [`crate::SpanExt`], which sits
//! above the backends that consult these.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

const DB_SPAN: &str = "db.query";

/// The slow-statement threshold, consulted by the tracer (`spans::Tracer`) when a sampled
/// `db.query` span closes. Why not a layer of its own: a layer's `on_close` looked every
/// closing span up in the registry only to read its name, twice per request on the benchmark
/// route, while the tracer already holds the span there.
pub struct DbWatch {
    slow: Duration,
}

impl DbWatch {
    pub fn new(slow: Duration, repeat_threshold: u32) -> Self {
        REPEAT_THRESHOLD.store(repeat_threshold, Ordering::Relaxed);
        Self { slow }
    }

    /// Whether spans with this name are timed.
    pub(crate) fn watches(&self, name: &str) -> bool {
        name == DB_SPAN
    }

    /// The `db.slow_query` event's attributes for a watched span that started at `started`,
    /// if it took longer than the threshold.
    pub(crate) fn slow_query(&self, started: Instant) -> Option<Vec<KeyValue>> {
        let elapsed = started.elapsed();
        (elapsed > self.slow).then(|| {
            vec![
                KeyValue::new("duration_ms", elapsed.as_millis() as i64),
                KeyValue::new("threshold_ms", self.slow.as_millis() as i64),
            ]
        })
    }
}

/// Set from the telemetry configuration when the subscriber is built.
static REPEAT_THRESHOLD: AtomicU32 = AtomicU32::new(5);

/// How many runs of one statement per request or job are tolerated (the `db.n_plus_one` rule).
pub(crate) fn repeat_threshold() -> u32 {
    REPEAT_THRESHOLD.load(Ordering::Relaxed)
}
