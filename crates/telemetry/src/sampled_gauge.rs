//! [`SampledGauge`]: a gauge of a value the process reads from elsewhere (the outbox's
//! backlog in the database, a queue's depth in Redis), exported only while its last reading
//! succeeded.
//!
//! A synchronous gauge cannot do this: the SDK keeps its last value (cumulative) and exports
//! it at every interval until the process ends, so while the database or Redis is down the
//! dashboard would go on showing the backlog of the last good sample as if it were current.
//! This one is an observable gauge reading the latest samples, which [`SampledGauge::forget`]
//! clears: the series is then absent (Prometheus shows no data, an `absent()` alert can fire)
//! until a reading succeeds again. The SDK aggregates observable gauges as delta (0.32), so
//! only what the callback observes at a collection is exported.

use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrumentBuilder, ObservableGauge};

/// The latest reading of each attribute set.
type Samples = Arc<Mutex<Vec<(Vec<KeyValue>, i64)>>>;

/// A gauge exported only while its samples are good ([module docs](self)).
#[derive(Clone)]
pub struct SampledGauge {
    samples: Samples,
    // Kept so the instrument lives as long as the catalog holding it.
    _gauge: ObservableGauge<i64>,
}

impl SampledGauge {
    /// `gauge`: the instrument as the catalog describes it (name, unit, description); the
    /// callback that reads the samples is added here.
    pub(crate) fn new(gauge: AsyncInstrumentBuilder<'_, ObservableGauge<i64>, i64>) -> Self {
        let samples = Samples::default();
        let read = samples.clone();
        let gauge = gauge
            .with_callback(move |o| {
                // A poisoned lock (a panic while recording) loses the samples, not the process.
                if let Ok(samples) = read.lock() {
                    for (attributes, value) in samples.iter() {
                        o.observe(*value, attributes);
                    }
                }
            })
            .build();
        Self {
            samples,
            _gauge: gauge,
        }
    }

    /// The value of the series `attributes` is now `value`, until recorded again or forgotten.
    pub fn record(&self, value: i64, attributes: &[KeyValue]) {
        let Ok(mut samples) = self.samples.lock() else {
            return;
        };
        match samples.iter_mut().find(|(a, _)| a.as_slice() == attributes) {
            Some((_, v)) => *v = value,
            None => samples.push((attributes.to_vec(), value)),
        }
    }

    /// The value could not be read: every series of this gauge stops being exported until the
    /// next [`record`](Self::record).
    pub fn forget(&self) {
        if let Ok(mut samples) = self.samples.lock() {
            samples.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

    use super::*;

    /// The `backlog` points of each export, as the catalog's exporter is set up: cumulative.
    /// (The SDK's in-memory exporter needs its `testing` feature, a rebuild of the SDK for
    /// every test binary of the workspace.)
    type Points = Vec<(Vec<KeyValue>, i64)>;

    #[derive(Clone, Default)]
    struct Exports(Arc<Mutex<Vec<Points>>>);

    impl Exports {
        fn last(&self) -> Points {
            let mut points = self.0.lock().unwrap().last().cloned().unwrap();
            points.sort_by_key(|(_, v)| *v);
            points
        }
    }

    impl PushMetricExporter for Exports {
        async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
            let mut points = Vec::new();
            for scope in metrics.scope_metrics() {
                for metric in scope.metrics().filter(|m| m.name() == "backlog") {
                    if let AggregatedMetrics::I64(MetricData::Gauge(g)) = metric.data() {
                        points.extend(
                            g.data_points()
                                .map(|p| (p.attributes().cloned().collect(), p.value())),
                        );
                    }
                }
            }
            self.0.lock().unwrap().push(points);
            Ok(())
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }

    #[test]
    fn a_forgotten_gauge_is_not_exported_until_it_is_recorded_again() {
        let exports = Exports::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exports.clone()).build())
            .build();
        let meter = provider.meter("test");
        let gauge = SampledGauge::new(
            meter
                .i64_observable_gauge("backlog")
                .with_unit("{job}")
                .with_description("Backlog."),
        );
        // A collection with nothing in it is not exported at all: a counter makes every one
        // an export, so an empty `last()` means the gauge was left out.
        meter.u64_counter("alive").build().add(1, &[]);
        let ready = [KeyValue::new("state", "ready")];
        let dead = [KeyValue::new("state", "dead")];

        gauge.record(7, &ready);
        gauge.record(1, &dead);
        gauge.record(5, &ready);
        provider.force_flush().unwrap();
        assert_eq!(
            exports.last(),
            vec![(dead.to_vec(), 1), (ready.to_vec(), 5)]
        );

        // Nothing recorded since: the last readings still stand.
        provider.force_flush().unwrap();
        assert_eq!(exports.last().len(), 2);

        gauge.forget();
        provider.force_flush().unwrap();
        assert_eq!(exports.last(), vec![]);
        provider.force_flush().unwrap();
        assert_eq!(exports.last(), vec![]);

        gauge.record(0, &ready);
        provider.force_flush().unwrap();
        assert_eq!(exports.last(), vec![(ready.to_vec(), 0)]);
        provider.shutdown().unwrap();
    }
}
