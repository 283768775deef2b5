//! The three OTLP export requests read one way: as groups of items, each group with the
//! resource and the instrumentation scope it was sent under. The console lines and the test
//! kit (its registry check, its load sink) all read requests so; the nesting of each request
//! type (resource, then scope, then items) is written here once.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

/// The items of one scope of one resource.
#[derive(Debug)]
pub struct Group<'a, T> {
    pub resource: Option<&'a Resource>,
    pub scope: Option<&'a InstrumentationScope>,
    pub items: &'a [T],
}

impl<'a, T> Group<'a, T> {
    /// The scope's name; empty when the request names no scope.
    pub fn scope_name(&self) -> &'a str {
        self.scope.map_or("", |s| s.name.as_str())
    }
}

/// An export request as its [`Group`]s, in the order they were sent.
pub trait ScopedItems {
    /// A span, a log record or a metric.
    type Item;

    fn groups(&self) -> impl Iterator<Item = Group<'_, Self::Item>>;
}

/// `request type: resource list . scope list . item list -> item type`.
macro_rules! scoped_items {
    ($($request:ty: $resources:ident . $scopes:ident . $items:ident -> $item:ty;)*) => {$(
        impl ScopedItems for $request {
            type Item = $item;

            fn groups(&self) -> impl Iterator<Item = Group<'_, $item>> {
                self.$resources.iter().flat_map(|r| {
                    r.$scopes.iter().map(|s| Group {
                        resource: r.resource.as_ref(),
                        scope: s.scope.as_ref(),
                        items: &s.$items,
                    })
                })
            }
        }
    )*};
}

scoped_items! {
    ExportTraceServiceRequest: resource_spans.scope_spans.spans -> Span;
    ExportLogsServiceRequest: resource_logs.scope_logs.log_records -> LogRecord;
    ExportMetricsServiceRequest: resource_metrics.scope_metrics.metrics -> Metric;
}

/// One data point of a metric, whichever of the five types it is.
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    pub attributes: &'a [KeyValue],
    /// A histogram point's bucket counts, a summary point's quantile values: the parts that
    /// become series of their own in Prometheus. `None` for the other types.
    pub parts: Option<usize>,
}

/// The data points of `metric`, in order (none when it carries no data).
pub fn points(metric: &Metric) -> Vec<Point<'_>> {
    fn each<'a, P>(
        points: &'a [P],
        view: impl Fn(&'a P) -> (&'a [KeyValue], Option<usize>),
    ) -> Vec<Point<'a>> {
        points
            .iter()
            .map(|p| {
                let (attributes, parts) = view(p);
                Point { attributes, parts }
            })
            .collect()
    }
    match &metric.data {
        None => Vec::new(),
        Some(metric::Data::Gauge(g)) => each(&g.data_points, |p| (&p.attributes, None)),
        Some(metric::Data::Sum(s)) => each(&s.data_points, |p| (&p.attributes, None)),
        Some(metric::Data::Histogram(h)) => each(&h.data_points, |p| {
            (&p.attributes, Some(p.bucket_counts.len()))
        }),
        Some(metric::Data::ExponentialHistogram(h)) => {
            each(&h.data_points, |p| (&p.attributes, None))
        }
        Some(metric::Data::Summary(s)) => each(&s.data_points, |p| {
            (&p.attributes, Some(p.quantile_values.len()))
        }),
    }
}

/// The resource's `service.name` when it is a string: what tells one service's telemetry from
/// another's.
pub fn service_name(resource: Option<&Resource>) -> Option<&str> {
    resource
        .into_iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}
