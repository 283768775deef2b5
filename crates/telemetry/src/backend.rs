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
    /// Exports everything buffered so far; each part waits at most `deadline`.
    fn flush(&self, deadline: Duration);
    /// Flushes and stops: traces first (spans end last in a request), then logs.
    fn shutdown(&self, deadline: Duration);
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
