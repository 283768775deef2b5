//! What a backend hands back to `init`: the subscriber and, for the guard, its span and log
//! side. Both backends build one ([`Built::new`]); `init` chooses which.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;

use crate::console::SharedWriter;
use crate::export::ExportStats;
use crate::filter::Directives;

/// What `init` hands a backend besides the configuration.
pub(crate) struct Inputs<'a> {
    pub resource: &'a Resource,
    /// The export counters the metrics read.
    pub stats: &'a Arc<ExportStats>,
    /// Where the JSON lines and the console exporters write, and the lines' filter.
    pub writer: SharedWriter,
    pub stdout_filter: Directives,
}

/// A backend's spans and logs, for flushing and shutdown.
pub(crate) trait Signals: Send + Sync {
    /// The tracer provider for code that uses the OpenTelemetry API.
    fn api_tracer(&self) -> Option<&SdkTracerProvider>;
    /// Exports everything buffered so far, spans and logs at the same time; waits at most
    /// `deadline` in all.
    fn flush(&self, deadline: Duration);
    /// Flushes and stops spans and logs at the same time; waits at most `deadline` in all.
    fn shutdown(&self, deadline: Duration);
}

/// Runs `spans` and `logs` (a flush or shutdown of each) at the same time and returns when
/// both have: each waits for its own export thread, and one after the other they would wait
/// twice the deadline.
pub(crate) fn side_by_side(spans: impl FnOnce() + Send, logs: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(logs);
        spans();
    });
}

/// A built subscriber, not yet installed, and its signals.
pub(crate) struct Built {
    pub dispatch: Dispatch,
    /// The most verbose level any output takes (see `Telemetry::level_hint`).
    pub level_hint: Option<LevelFilter>,
    pub signals: Arc<dyn Signals>,
}

impl Built {
    pub(crate) fn new<S>(subscriber: S, signals: impl Signals + 'static) -> Self
    where
        S: tracing::Subscriber + Send + Sync + 'static,
    {
        let level_hint = subscriber.max_level_hint();
        Self {
            dispatch: Dispatch::new(subscriber),
            level_hint,
            signals: Arc::new(signals),
        }
    }
}
