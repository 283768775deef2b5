//! `--tally FILE`: what a capacity estimate needs to know about the telemetry that arrived, per
//! service (scripts/capacity.sh, docs/capacity.md): protobuf bytes, export requests and items
//! per signal, distinct trace ids, the share of span bytes the Collector's tail sampling keeps
//! whatever its percentage (error and slow traces), and the series the metrics and the
//! Collector's span-metrics connector become in Prometheus.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::Serialize;
use vidscope_telemetry::export_request::{self, service_name};
use vidscope_testkit::otlp::Export;

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct SignalTally {
    /// Export requests that carried some of this service's data.
    pub requests: u64,
    /// Protobuf bytes of this service's `Resource*` entries with their field framing: summed
    /// over services they equal the requests' encoded size (the exporters do not compress).
    pub bytes: u64,
    /// Spans, log records or metric data points.
    pub items: u64,
}

#[derive(Debug, Default)]
struct ServiceState {
    traces: SignalTally,
    logs: SignalTally,
    metrics: SignalTally,
    trace_ids: HashSet<[u8; 16]>,
    /// Metric stream (resource, scope, name, point attributes) -> the Prometheus series it
    /// becomes.
    streams: HashMap<u64, u64>,
    resources_with_metrics: HashSet<u64>,
    span_metric_keys: HashSet<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ServiceSummary {
    pub traces: SignalTally,
    pub logs: SignalTally,
    pub metrics: SignalTally,
    /// Distinct trace ids among this service's spans.
    pub trace_ids: usize,
    /// Distinct metric streams: resource, scope, metric name and point attributes.
    pub metric_streams: usize,
    /// What those streams become under Prometheus's OTLP ingestion (classic histograms): one
    /// series per gauge or sum point, one per histogram bucket plus `_sum` and `_count`, one
    /// per summary quantile plus two, an exponential histogram one native series; and one
    /// `target_info` per resource.
    pub prometheus_series: u64,
    /// Distinct keys of the span-metrics connector: resource, span name, kind, status code and
    /// the configured dimensions (looked up in the span's attributes).
    pub span_metric_keys: usize,
}

/// One trace across services, as tail sampling judges it.
#[derive(Debug, Default)]
struct TraceState {
    span_bytes: u64,
    start: u64,
    end: u64,
    error: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// The span-metrics connector's dimensions (`--span-dimensions`).
    dimensions: Vec<String>,
    /// Tail sampling's latency policy: traces longer than this are kept (`--slow-trace-ms`).
    slow_trace_ns: u64,
    services: BTreeMap<String, ServiceState>,
    traces: HashMap<[u8; 16], TraceState>,
}

impl Tally {
    pub(crate) fn new(dimensions: Vec<String>, slow_trace_ms: u64) -> Self {
        Self {
            dimensions,
            slow_trace_ns: slow_trace_ms.saturating_mul(1_000_000),
            ..Self::default()
        }
    }

    pub(crate) fn add(&mut self, export: Export<'_>) {
        match export {
            Export::Traces(request) => {
                for rs in &request.resource_spans {
                    let resource = hash_resource(rs.resource.as_ref());
                    let state = service(&mut self.services, rs.resource.as_ref());
                    let spans = rs.scope_spans.iter().flat_map(|ss| &ss.spans);
                    let mut items = 0;
                    for span in spans {
                        items += 1;
                        if let Ok(id) = <[u8; 16]>::try_from(span.trace_id.as_slice()) {
                            state.trace_ids.insert(id);
                            let trace = self.traces.entry(id).or_insert_with(|| TraceState {
                                start: span.start_time_unix_nano,
                                ..TraceState::default()
                            });
                            trace.span_bytes += span.encoded_len() as u64;
                            trace.start = trace.start.min(span.start_time_unix_nano);
                            trace.end = trace.end.max(span.end_time_unix_nano);
                            trace.error |= span.status.as_ref().is_some_and(|s| s.code == 2);
                        }
                        let mut h = DefaultHasher::new();
                        resource.hash(&mut h);
                        span.name.hash(&mut h);
                        span.kind.hash(&mut h);
                        span.status.as_ref().map(|s| s.code).hash(&mut h);
                        for dimension in &self.dimensions {
                            let value = span.attributes.iter().find(|kv| &kv.key == dimension);
                            value.map(Message::encode_to_vec).hash(&mut h);
                        }
                        state.span_metric_keys.insert(h.finish());
                    }
                    bump(&mut state.traces, rs.encoded_len(), items);
                }
            }
            Export::Logs(request) => {
                for rl in &request.resource_logs {
                    let state = service(&mut self.services, rl.resource.as_ref());
                    let items = rl.scope_logs.iter().map(|sl| sl.log_records.len()).sum();
                    bump(&mut state.logs, rl.encoded_len(), items);
                }
            }
            Export::Metrics(request) => {
                for rm in &request.resource_metrics {
                    let resource = hash_resource(rm.resource.as_ref());
                    let state = service(&mut self.services, rm.resource.as_ref());
                    state.resources_with_metrics.insert(resource);
                    let mut items = 0;
                    for sm in &rm.scope_metrics {
                        let scope = sm.scope.as_ref().map(Message::encode_to_vec);
                        for m in &sm.metrics {
                            for (attributes, series) in points(m) {
                                items += 1;
                                let mut h = DefaultHasher::new();
                                (resource, &scope, &m.name).hash(&mut h);
                                hash_attributes(attributes, &mut h);
                                state.streams.insert(h.finish(), series);
                            }
                        }
                    }
                    bump(&mut state.metrics, rm.encoded_len(), items);
                }
            }
        }
    }

    pub(crate) fn summary(&self) -> serde_json::Value {
        let services: BTreeMap<&str, ServiceSummary> = self
            .services
            .iter()
            .map(|(name, s)| {
                let summary = ServiceSummary {
                    traces: s.traces,
                    logs: s.logs,
                    metrics: s.metrics,
                    trace_ids: s.trace_ids.len(),
                    metric_streams: s.streams.len(),
                    prometheus_series: s.streams.values().sum::<u64>()
                        + s.resources_with_metrics.len() as u64,
                    span_metric_keys: s.span_metric_keys.len(),
                };
                (name.as_str(), summary)
            })
            .collect();
        let kept = |t: &&TraceState| t.error || t.end.saturating_sub(t.start) > self.slow_trace_ns;
        let span_bytes = |t: &TraceState| t.span_bytes;
        serde_json::json!({
            "services": services,
            "trace_ids": self.traces.len(),
            "span_bytes": self.traces.values().map(span_bytes).sum::<u64>(),
            "always_kept_traces": self.traces.values().filter(kept).count(),
            "always_kept_span_bytes": self.traces.values().filter(kept).map(span_bytes).sum::<u64>(),
            "span_dimensions": self.dimensions,
            "slow_trace_ms": self.slow_trace_ns / 1_000_000,
        })
    }
}

fn service<'a>(
    services: &'a mut BTreeMap<String, ServiceState>,
    resource: Option<&Resource>,
) -> &'a mut ServiceState {
    let name = service_name(resource).unwrap_or("unknown_service");
    services.entry(name.to_owned()).or_default()
}

/// Adds one resource entry: its bytes with the tag and length prefix it has as a repeated field
/// of the request, so the entries of a request sum to its encoded length.
fn bump(tally: &mut SignalTally, len: usize, items: usize) {
    tally.requests += 1;
    tally.bytes += (1 + prost::length_delimiter_len(len) + len) as u64;
    tally.items += items as u64;
}

/// Each data point's attributes and the number of Prometheus series it becomes: one, or for a
/// histogram or summary its buckets or quantiles plus `_sum` and `_count`.
fn points(m: &Metric) -> impl Iterator<Item = (&[KeyValue], u64)> {
    export_request::points(m)
        .into_iter()
        .map(|p| (p.attributes, p.parts.map_or(1, |n| n as u64 + 2)))
}

fn hash_resource(resource: Option<&Resource>) -> u64 {
    let mut h = DefaultHasher::new();
    hash_attributes(resource.map_or(&[][..], |r| &r.attributes), &mut h);
    h.finish()
}

/// Order-independent, as Prometheus labels are.
fn hash_attributes(attributes: &[KeyValue], h: &mut DefaultHasher) {
    let mut encoded: Vec<Vec<u8>> = attributes.iter().map(Message::encode_to_vec).collect();
    encoded.sort();
    encoded.hash(h);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, NumberDataPoint, ResourceMetrics, ScopeMetrics,
        metric,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..KeyValue::default()
        }
    }

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Resource::default()
        })
    }

    fn span(trace: u8, route: &str) -> Span {
        Span {
            trace_id: vec![trace; 16],
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_500_000_000,
            name: "GET".to_owned(),
            attributes: vec![kv("http.route", route), kv("user.id", &trace.to_string())],
            ..Span::default()
        }
    }

    fn traces(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn metrics(service: &str, users: &[&str]) -> ExportMetricsServiceRequest {
        let gauge = Metric {
            name: "queue.depth".to_owned(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: users
                    .iter()
                    .map(|u| NumberDataPoint {
                        attributes: vec![kv("state", u)],
                        ..NumberDataPoint::default()
                    })
                    .collect(),
            })),
            ..Metric::default()
        };
        let histogram = Metric {
            name: "duration".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    bucket_counts: vec![0; 4],
                    explicit_bounds: vec![1.0, 2.0, 3.0],
                    ..HistogramDataPoint::default()
                }],
                ..Histogram::default()
            })),
            ..Metric::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(service),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![gauge, histogram],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    #[test]
    fn counts_bytes_traces_and_series_per_service() {
        let mut tally = Tally::new(vec!["http.route".to_owned()], 1000);
        let api = traces("api", vec![span(1, "/a"), span(1, "/a"), span(2, "/b")]);
        // Trace 2 lasts 1.5 s once the worker's span arrives: tail sampling keeps it.
        let late = Span {
            start_time_unix_nano: 2_000_000_000,
            end_time_unix_nano: 2_500_000_000,
            ..span(2, "/a")
        };
        let worker = traces("worker", vec![late.clone()]);
        tally.add(Export::Traces(&api));
        tally.add(Export::Traces(&worker));
        // The same streams exported twice (cumulative temporality) are the same series.
        let m = metrics("api", &["ready", "dead"]);
        tally.add(Export::Metrics(&m));
        tally.add(Export::Metrics(&m));
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource("worker"),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 3],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        tally.add(Export::Logs(&logs));

        let s = tally.summary();
        let api_s = &s["services"]["api"];
        assert_eq!(api_s["traces"]["items"], 3);
        assert_eq!(api_s["traces"]["bytes"], api.encoded_len() as u64);
        assert_eq!(api_s["trace_ids"], 2);
        // user.id is no dimension: spans differing only there share a key.
        assert_eq!(api_s["span_metric_keys"], 2);
        assert_eq!(api_s["metrics"]["requests"], 2);
        assert_eq!(api_s["metrics"]["items"], 6);
        assert_eq!(api_s["metrics"]["bytes"], 2 * m.encoded_len() as u64);
        assert_eq!(api_s["metric_streams"], 3);
        // 2 gauge series + 4 buckets + _sum + _count + target_info.
        assert_eq!(api_s["prometheus_series"], 2 + 6 + 1);
        assert_eq!(s["services"]["worker"]["logs"]["items"], 3);
        assert_eq!(s["services"]["worker"]["trace_ids"], 1);
        // Trace 2 spans both services.
        assert_eq!(s["trace_ids"], 2);
        assert_eq!(s["always_kept_traces"], 1);
        let kept = span(2, "/b").encoded_len() + late.encoded_len();
        assert_eq!(s["always_kept_span_bytes"], kept as u64);
        let mut errors = Tally::new(Vec::new(), 1000);
        let mut failed = span(3, "/a");
        failed.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            ..Default::default()
        });
        errors.add(Export::Traces(&traces("api", vec![failed, span(4, "/a")])));
        assert_eq!(errors.summary()["always_kept_traces"], 1);
    }
}
