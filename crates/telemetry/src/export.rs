//! Export accounting for all three signals, and the metric exporter as the SDK's periodic
//! reader sees it: drop accounting, a rate-limited warning and the optional file fallback
//! wrapped around the OTLP metric exporter or the file exporter. (Spans and logs go through
//! `pipe`, which scrubs them and uses the same accounting.)
//!
//! Failures are handled here rather than returned to the SDK: it would log every failed
//! export, and it does not count what it loses. Here each lost item is counted in
//! `telemetry.export.dropped` and a warning is logged at most once per [`WARN_EVERY`] per
//! signal.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

use crate::config::Signal;
use crate::file::JsonLinesFile;

/// The target of this crate's export pipelines' diagnostics: the export attempts (debug) and
/// failures (warn). Governed by `OTEL_LOG_LEVEL`, like the OpenTelemetry crates' own.
pub(crate) const EXPORT_TARGET: &str = "vidscope_telemetry::export";

/// Minimum time between two "export failed" warnings for one signal.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// Counters shared by the exporters and read by the `telemetry.export.*` self-metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    exported: [AtomicU64; 3],
    dropped: [AtomicU64; 3],
    fallback: [AtomicU64; 3],
    warnings: [AtomicU64; 3],
    last_warning: Mutex<[Option<Instant>; 3]>,
}

fn idx(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl ExportStats {
    /// Items (spans, metric streams, log records) delivered to an exporter target.
    pub fn exported(&self, s: Signal) -> u64 {
        self.exported[idx(s)].load(Ordering::Relaxed)
    }
    /// Items lost because their export failed and no fallback took them.
    pub fn dropped(&self, s: Signal) -> u64 {
        self.dropped[idx(s)].load(Ordering::Relaxed)
    }
    /// Items written to the fallback file after the OTLP export failed.
    pub fn fallback(&self, s: Signal) -> u64 {
        self.fallback[idx(s)].load(Ordering::Relaxed)
    }

    /// "Export failed" warnings logged (rate-limited to one per [`WARN_EVERY`]).
    pub fn warnings(&self, s: Signal) -> u64 {
        self.warnings[idx(s)].load(Ordering::Relaxed)
    }

    pub(crate) fn record_exported(&self, s: Signal, items: usize) {
        self.exported[idx(s)].fetch_add(items as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_dropped(&self, s: Signal, items: usize) {
        self.dropped[idx(s)].fetch_add(items as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(
        &self,
        s: Signal,
        items: usize,
        error: &OTelSdkError,
        fell_back: bool,
    ) {
        let counter = if fell_back {
            &self.fallback
        } else {
            &self.dropped
        };
        counter[idx(s)].fetch_add(items as u64, Ordering::Relaxed);
        let now = Instant::now();
        let should_warn = match self.last_warning.lock() {
            Ok(mut last) => {
                let due = last[idx(s)].is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
                if due {
                    last[idx(s)] = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if should_warn {
            self.warnings[idx(s)].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: EXPORT_TARGET,
                signal = s.as_str(),
                items,
                total_dropped = self.dropped(s),
                total_fallback = self.fallback(s),
                error = %error,
                fell_back,
                "telemetry export failed; requests are unaffected (next warning in 30 s at the earliest)"
            );
        }
    }
}

/// Where a signal's batches go first.
#[derive(Debug)]
pub(crate) enum Target<E> {
    Otlp(E),
    File(JsonLinesFile),
    Console(crate::console::Console),
}

#[derive(Debug)]
pub(crate) struct Guarded<E> {
    pub target: Target<E>,
    /// Receives batches the OTLP target failed to deliver.
    pub fallback: Option<JsonLinesFile>,
    pub stats: std::sync::Arc<ExportStats>,
}

impl<E> Guarded<E> {
    pub(crate) fn new(
        target: Target<E>,
        fallback: Option<JsonLinesFile>,
        stats: std::sync::Arc<ExportStats>,
    ) -> Self {
        Self {
            target,
            fallback,
            stats,
        }
    }

    /// Runs `f` on the OTLP exporter, the only target that holds anything to flush or shut
    /// down (the file and console targets write as they go).
    pub(crate) fn with_otlp(&self, f: impl FnOnce(&E) -> OTelSdkResult) -> OTelSdkResult {
        match &self.target {
            Target::Otlp(e) => f(e),
            Target::File(_) | Target::Console(_) => Ok(()),
        }
    }

    pub(crate) fn settle(
        &self,
        s: Signal,
        items: usize,
        primary: OTelSdkResult,
        fallback: impl FnOnce(&JsonLinesFile) -> OTelSdkResult,
    ) -> OTelSdkResult {
        match primary {
            Ok(()) => {
                self.stats.exported[idx(s)].fetch_add(items as u64, Ordering::Relaxed);
            }
            Err(e) => {
                let fell_back = self.fallback.as_ref().is_some_and(|f| fallback(f).is_ok());
                self.stats.record_failure(s, items, &e, fell_back);
            }
        }
        // Accounted for above; an error here would only make the SDK log it again.
        Ok(())
    }
}

impl PushMetricExporter for Guarded<opentelemetry_otlp::MetricExporter> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        // Labels are limited to the catalog's allow-list by the views, so no redaction here.
        let n: usize = metrics.scope_metrics().map(|s| s.metrics().count()).sum();
        match &self.target {
            Target::File(f) => {
                let r = f.write_metrics(metrics);
                self.settle(Signal::Metrics, n, r, |_| {
                    Err(OTelSdkError::InternalFailure(String::new()))
                })
            }
            Target::Console(c) => {
                let r = c.write(&ExportMetricsServiceRequest::from(metrics));
                self.settle(Signal::Metrics, n, r, |_| {
                    Err(OTelSdkError::InternalFailure(String::new()))
                })
            }
            Target::Otlp(exp) => {
                let r = exp.export(metrics).await;
                self.settle(Signal::Metrics, n, r, |f| f.write_metrics(metrics))
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.with_otlp(PushMetricExporter::force_flush)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.with_otlp(|e| e.shutdown_with_timeout(timeout))
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
