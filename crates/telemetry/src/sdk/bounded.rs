//! The SDK's batch processors behind a queue bound of this crate's, so what they drop is
//! counted in `telemetry.export.dropped` as the fast pipeline counts it.
//!
//! The SDK's `BatchSpanProcessor` and `BatchLogProcessor` drop an item when their queue is
//! full and only count it privately (a total logged at shutdown). [`Bounded`] sits in front
//! of one and admits an item only while fewer than the queue size are held (handed on and
//! not yet in an export batch, see [`QueueBound`]); the processor's own queue, of the same
//! size, then never overflows, and every item turned away is counted here. One atomic add
//! per item, on a backend that is not the budgeted one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::Severity;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::config::Signal;
use crate::export::ExportStats;

/// Items a signal's batch processor holds, against its queue size; shared by [`Bounded`]
/// (which admits) and the exporter (which is handed the batches, see `SdkExport`).
#[derive(Debug)]
pub(crate) struct QueueBound {
    signal: Signal,
    max: usize,
    /// Admitted and not yet handed to the exporter: in the processor's queue, or taken from
    /// it for the batch being put together.
    held: AtomicUsize,
    /// Turned away since the last report.
    full: AtomicU64,
    stats: Arc<ExportStats>,
}

impl QueueBound {
    pub(crate) fn new(signal: Signal, max: usize, stats: Arc<ExportStats>) -> Arc<Self> {
        Arc::new(Self {
            signal,
            max,
            held: AtomicUsize::new(0),
            full: AtomicU64::new(0),
            stats,
        })
    }

    /// Whether one more item fits. Counted up first and taken back when it does not fit, so
    /// concurrent callers can only be turned away too early, never let past the bound.
    fn admit(&self) -> bool {
        if self.held.fetch_add(1, Ordering::AcqRel) < self.max {
            return true;
        }
        self.held.fetch_sub(1, Ordering::AcqRel);
        self.full.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// `items` reached the exporter: they no longer take room in the queue. Reports what
    /// was turned away meanwhile.
    pub(crate) fn handed_over(&self, items: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(items))
            });
        self.report();
    }

    /// Counts what was turned away since the last report as dropped, with the fast
    /// pipeline's rate-limited warning.
    fn report(&self) {
        let full = self.full.swap(0, Ordering::Relaxed);
        if full > 0 {
            self.stats.record_failure(
                self.signal,
                full as usize,
                &OTelSdkError::InternalFailure(format!(
                    "the {} export queue is full",
                    self.signal.as_str()
                )),
                false,
            );
        }
    }
}

/// A batch processor behind a [`QueueBound`] of its queue's size.
#[derive(Debug)]
pub(crate) struct Bounded<P> {
    pub inner: P,
    pub bound: Arc<QueueBound>,
}

impl<P> Bounded<P> {
    /// Runs `done` (the processor's flush or shutdown), then reports what was turned away
    /// since the last batch: a final flush with nothing queued exports no batch.
    fn then_report(&self, done: OTelSdkResult) -> OTelSdkResult {
        self.bound.report();
        done
    }
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.bound.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.then_report(self.inner.force_flush())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.then_report(self.inner.shutdown_with_timeout(timeout))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<P: LogProcessor> LogProcessor for Bounded<P> {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        if self.bound.admit() {
            self.inner.emit(data, instrumentation);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.then_report(self.inner.force_flush())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.then_report(self.inner.shutdown_with_timeout(timeout))
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers racing past the bound: never more than `max` admitted at once, and every
    /// refusal counted.
    #[test]
    fn the_bound_admits_at_most_its_size_and_counts_the_rest() {
        let stats = Arc::new(ExportStats::default());
        let bound = QueueBound::new(Signal::Traces, 100, stats.clone());
        let admitted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| bound.admit()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100);
        bound.handed_over(60);
        assert_eq!(stats.dropped(Signal::Traces), 3900);
        assert!(
            (0..60).all(|_| bound.admit()),
            "room for what was handed over"
        );
        assert!(!bound.admit());
    }
}
