//! Export accounting for all three signals, and what the SDK's exporters are wrapped in
//! ([`Guarded`]): drop accounting, a rate-limited warning and the optional file fallback around
//! the OTLP, file or console target (the metric exporter is in `exporters`; the fast backend's
//! spans and logs go through `pipe`, which uses the same accounting).
//!
//! Failures are handled here rather than returned to the SDK: it would log every failed
//! export, and it does not count what it loses. Here each lost item is counted in
//! `telemetry.export.dropped` and a warning is logged at most once per [`WARN_EVERY`] per
//! signal. Items a collector accepted the request of but rejected (OTLP partial success) are
//! counted there too, with a warning once per distinct message (see
//! [`ExportStats::record_accepted`]).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use crate::config::{EXPORT_TARGET, Signal};
use crate::file::JsonLinesFile;

/// Minimum time between two "export failed" warnings for one signal.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// Distinct partial-success messages warned about, over all signals; later new ones are
/// counted without a warning, so a collector that puts a batch id in each message cannot
/// flood the log.
const MAX_REJECTION_MESSAGES: usize = 32;

/// What the collector accepted but refused part of (an OTLP response's `partial_success`).
/// The default, nothing rejected and no message, is a full success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartialSuccess {
    /// Spans, log records or metric data points the collector dropped.
    pub rejected: u64,
    /// The collector's explanation (may be empty; may come with nothing rejected, as a warning).
    pub message: String,
}

/// Counters shared by the exporters and read by the `telemetry.export.*` self-metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    exported: [AtomicU64; 3],
    dropped: [AtomicU64; 3],
    fallback: [AtomicU64; 3],
    warnings: [AtomicU64; 3],
    last_warning: Mutex<[Option<Instant>; 3]>,
    rejection_warnings: [AtomicU64; 3],
    /// The partial-success messages already warned about, per signal.
    rejection_messages: Mutex<HashSet<(usize, String)>>,
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

    /// Partial-success warnings logged: one per distinct message and signal.
    pub fn rejection_warnings(&self, s: Signal) -> u64 {
        self.rejection_warnings[idx(s)].load(Ordering::Relaxed)
    }

    /// A batch of `items` the collector accepted. What its answer says it rejected is counted
    /// as dropped (for metrics: data points, where `items` counts metric streams), and its
    /// message is logged once per distinct message and signal: a collector that refuses
    /// part of every batch for one reason says so once, not every few seconds.
    pub(crate) fn record_accepted(&self, s: Signal, items: usize, answer: &PartialSuccess) {
        let rejected = answer.rejected;
        self.exported[idx(s)].fetch_add((items as u64).saturating_sub(rejected), Ordering::Relaxed);
        if rejected == 0 && answer.message.is_empty() {
            return;
        }
        self.dropped[idx(s)].fetch_add(rejected, Ordering::Relaxed);
        let first = self.rejection_messages.lock().is_ok_and(|mut seen| {
            seen.len() < MAX_REJECTION_MESSAGES && seen.insert((idx(s), answer.message.clone()))
        });
        if first {
            self.rejection_warnings[idx(s)].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: EXPORT_TARGET,
                signal = s.as_str(),
                rejected,
                total_dropped = self.dropped(s),
                error = %answer.message,
                "the collector rejected part of a telemetry export; counted in \
                 telemetry.export.dropped (this message is logged once)"
            );
        }
    }

    /// A batch of `items` written to the signal's file, or not: a failed write (a full disk)
    /// drops the batch, counted here without the export-failure warning, as the file warns
    /// once per outage itself (see `file`).
    pub(crate) fn record_written(&self, s: Signal, items: usize, written: &OTelSdkResult) {
        match written {
            Ok(()) => self.record_accepted(s, items, &PartialSuccess::default()),
            Err(_) => self.record_dropped(s, items),
        }
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

    pub(crate) fn settle(
        &self,
        s: Signal,
        items: usize,
        primary: OTelSdkResult,
        fallback: impl FnOnce(&JsonLinesFile) -> OTelSdkResult,
    ) -> OTelSdkResult {
        self.settle_sent(
            s,
            items,
            primary.map(|()| PartialSuccess::default()),
            fallback,
        )
    }

    /// [`Guarded::settle`] for an OTLP export, whose success may be partial.
    pub(crate) fn settle_sent(
        &self,
        s: Signal,
        items: usize,
        primary: Result<PartialSuccess, OTelSdkError>,
        fallback: impl FnOnce(&JsonLinesFile) -> OTelSdkResult,
    ) -> OTelSdkResult {
        match primary {
            Ok(answer) => self.stats.record_accepted(s, items, &answer),
            Err(e) => {
                let fell_back = self.fallback.as_ref().is_some_and(|f| fallback(f).is_ok());
                self.stats.record_failure(s, items, &e, fell_back);
            }
        }
        // Accounted for above; an error here would only make the SDK log it again.
        Ok(())
    }
}
