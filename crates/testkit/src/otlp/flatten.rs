//! From OTLP requests to the flat views of [`super::model`]: hex ids, owned attributes,
//! each item with its resource and scope.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint, metric,
    number_data_point,
};
use vidscope_telemetry::export_request::ScopedItems;

use super::model::{
    AttrValue, Attributes, CapturedEvent, CapturedLink, CapturedLog, CapturedMetric, CapturedPoint,
    CapturedSpan, MetricKind, PointValue, Transport, attributes, hex,
};

/// OTLP uses both "empty" and "all zeroes" for an absent id depending on the SDK.
fn optional_id(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(|b| *b == 0) {
        None
    } else {
        Some(hex(bytes))
    }
}

/// The resource and scope a group of items was sent under.
struct Origin {
    resource: Attributes,
    scope_name: String,
    scope_version: String,
}

/// Each item of `request`, made a flat view by `flat` with its [`Origin`], appended to `out`.
/// The request's nesting (resource, scope, items) is walked by [`ScopedItems`], where it is
/// written once for the three signals.
fn flatten<R: ScopedItems, T>(
    request: &R,
    out: &mut Vec<T>,
    flat: impl Fn(&R::Item, &Origin) -> T,
) {
    for group in request.groups() {
        let (scope_name, scope_version) = group
            .scope
            .map(|s| (s.name.clone(), s.version.clone()))
            .unwrap_or_default();
        let origin = Origin {
            resource: group
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default(),
            scope_name,
            scope_version,
        };
        out.extend(group.items.iter().map(|item| flat(item, &origin)));
    }
}

pub(super) fn flatten_spans(
    request: &ExportTraceServiceRequest,
    transport: Transport,
    out: &mut Vec<CapturedSpan>,
) {
    flatten(request, out, |span, origin| {
        let status = span.status.as_ref();
        CapturedSpan {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: optional_id(&span.parent_span_id),
            trace_state: span.trace_state.clone(),
            name: span.name.clone(),
            kind: span.kind,
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            attributes: attributes(&span.attributes),
            events: span
                .events
                .iter()
                .map(|event| CapturedEvent {
                    name: event.name.clone(),
                    time_unix_nano: event.time_unix_nano,
                    attributes: attributes(&event.attributes),
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| CapturedLink {
                    trace_id: hex(&link.trace_id),
                    span_id: hex(&link.span_id),
                    attributes: attributes(&link.attributes),
                })
                .collect(),
            status_code: status.map_or(0, |s| s.code),
            status_message: status.map(|s| s.message.clone()).unwrap_or_default(),
            resource: origin.resource.clone(),
            scope_name: origin.scope_name.clone(),
            scope_version: origin.scope_version.clone(),
            transport,
        }
    });
}

pub(super) fn flatten_logs(
    request: &ExportLogsServiceRequest,
    transport: Transport,
    out: &mut Vec<CapturedLog>,
) {
    flatten(request, out, |record, origin| {
        let body_value = record
            .body
            .as_ref()
            .map(AttrValue::from)
            .filter(|v| *v != AttrValue::Empty);
        let body = body_value.as_ref().map(|v| match v {
            AttrValue::Str(s) => s.clone(),
            other => other.to_json().to_string(),
        });
        CapturedLog {
            trace_id: optional_id(&record.trace_id),
            span_id: optional_id(&record.span_id),
            time_unix_nano: record.time_unix_nano,
            observed_time_unix_nano: record.observed_time_unix_nano,
            severity_number: record.severity_number,
            severity_text: record.severity_text.clone(),
            body,
            body_value,
            attributes: attributes(&record.attributes),
            event_name: Some(record.event_name.clone()).filter(|n| !n.is_empty()),
            flags: record.flags,
            resource: origin.resource.clone(),
            scope_name: origin.scope_name.clone(),
            scope_version: origin.scope_version.clone(),
            transport,
        }
    });
}

pub(super) fn flatten_metrics(
    request: &ExportMetricsServiceRequest,
    transport: Transport,
    out: &mut Vec<CapturedMetric>,
) {
    flatten(request, out, |metric, origin| {
        let (kind, points) = match &metric.data {
            None => (MetricKind::Empty, Vec::new()),
            Some(metric::Data::Gauge(gauge)) => (
                MetricKind::Gauge,
                gauge.data_points.iter().map(number_point).collect(),
            ),
            Some(metric::Data::Sum(sum)) => (
                MetricKind::Sum {
                    monotonic: sum.is_monotonic,
                    temporality: sum.aggregation_temporality.into(),
                },
                sum.data_points.iter().map(number_point).collect(),
            ),
            Some(metric::Data::Histogram(histogram)) => (
                MetricKind::Histogram {
                    temporality: histogram.aggregation_temporality.into(),
                },
                histogram.data_points.iter().map(histogram_point).collect(),
            ),
            Some(metric::Data::ExponentialHistogram(histogram)) => (
                MetricKind::ExponentialHistogram {
                    temporality: histogram.aggregation_temporality.into(),
                },
                histogram
                    .data_points
                    .iter()
                    .map(exponential_histogram_point)
                    .collect(),
            ),
            Some(metric::Data::Summary(summary)) => (
                MetricKind::Summary,
                summary.data_points.iter().map(summary_point).collect(),
            ),
        };
        CapturedMetric {
            name: metric.name.clone(),
            description: metric.description.clone(),
            unit: metric.unit.clone(),
            kind,
            points,
            resource: origin.resource.clone(),
            scope_name: origin.scope_name.clone(),
            scope_version: origin.scope_version.clone(),
            transport,
        }
    });
}

/// A [`CapturedPoint`] from the fields every OTLP data point type has, with the `value` and
/// exemplar count its type gives. A macro: the four point types share these fields but no
/// trait.
macro_rules! captured_point {
    ($point:expr, $exemplars:expr, $value:expr) => {
        CapturedPoint {
            attributes: attributes(&$point.attributes),
            start_time_unix_nano: $point.start_time_unix_nano,
            time_unix_nano: $point.time_unix_nano,
            value: $value,
            exemplars_count: $exemplars,
            flags: $point.flags,
        }
    };
}

fn number_point(point: &NumberDataPoint) -> CapturedPoint {
    captured_point!(
        point,
        point.exemplars.len(),
        match point.value {
            Some(number_data_point::Value::AsInt(i)) => PointValue::Int(i),
            Some(number_data_point::Value::AsDouble(d)) => PointValue::Double(d),
            None => PointValue::Empty,
        }
    )
}

fn histogram_point(point: &HistogramDataPoint) -> CapturedPoint {
    captured_point!(
        point,
        point.exemplars.len(),
        PointValue::Histogram {
            count: point.count,
            sum: point.sum,
            bucket_counts: point.bucket_counts.clone(),
            explicit_bounds: point.explicit_bounds.clone(),
            min: point.min,
            max: point.max,
        }
    )
}

fn exponential_histogram_point(point: &ExponentialHistogramDataPoint) -> CapturedPoint {
    captured_point!(
        point,
        point.exemplars.len(),
        PointValue::ExponentialHistogram {
            count: point.count,
            sum: point.sum,
            scale: point.scale,
            zero_count: point.zero_count,
            min: point.min,
            max: point.max,
        }
    )
}

fn summary_point(point: &SummaryDataPoint) -> CapturedPoint {
    captured_point!(
        point,
        // OTLP summary points carry no exemplars.
        0,
        PointValue::Summary {
            count: point.count,
            sum: point.sum,
            quantiles: point
                .quantile_values
                .iter()
                .map(|q| (q.quantile, q.value))
                .collect(),
        }
    )
}
