//! The shape of what a capture receiver saw, for the telemetry registry check.
//!
//! `crates/telemetry/registry.yaml` lists every span, event, attribute, log attribute and metric
//! vidscope emits, and `scripts/telemetry-registry.py` holds the suite's telemetry against it.
//! Every test's telemetry reaches a [`CaptureReceiver`](crate::otlp::CaptureReceiver), so when
//! `VIDSCOPE_TELEMETRY_SEEN_DIR` is set each receiver writes one JSON file there with the
//! distinct facts it received: names, kinds, scopes, attribute keys and OTLP value types, never
//! values (bodies, ids and attribute values stay out, so no test data ends up in the file).
//!
//! The file is rewritten whenever a request brings a fact not seen before, not only when the
//! receiver stops: a test process may exit (or panic) without dropping its receiver, and under
//! nextest every test is its own process, so waiting for a drop would lose captures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::resource::v1::Resource;

/// The directory the summaries go to; unset (the default) records nothing.
pub const SEEN_DIR_ENV: &str = "VIDSCOPE_TELEMETRY_SEEN_DIR";

/// Bumped when the file layout changes, so the checker can refuse files it cannot read.
const FORMAT: u64 = 2;

/// Distinguishes the receivers of one process (a test may start several).
static NEXT_RECEIVER: AtomicU64 = AtomicU64::new(0);

/// One category of facts and the meaning of its columns; the checker reads the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fact {
    /// service.name, resource attribute key, value type
    Resource,
    /// service.name, scope name, span name, span kind
    Span,
    /// span name, span kind, attribute key, value type
    SpanAttribute,
    /// span name, span kind, event name
    SpanEvent,
    /// span name, span kind, event name, attribute key, value type
    EventAttribute,
    /// span name, span kind, link attribute key, value type
    LinkAttribute,
    /// service.name, scope name, log record event name ("" when none)
    Log,
    /// scope name, attribute key, value type
    LogAttribute,
    /// service.name, scope name, metric name, unit, metric type
    Metric,
    /// metric name, point attribute key, value type
    MetricLabel,
}

impl Fact {
    fn key(self) -> &'static str {
        match self {
            Fact::Resource => "resource",
            Fact::Span => "span",
            Fact::SpanAttribute => "span_attribute",
            Fact::SpanEvent => "span_event",
            Fact::EventAttribute => "event_attribute",
            Fact::LinkAttribute => "link_attribute",
            Fact::Log => "log",
            Fact::LogAttribute => "log_attribute",
            Fact::Metric => "metric",
            Fact::MetricLabel => "metric_label",
        }
    }
}

/// The distinct facts one receiver saw, and where they are written.
pub(crate) struct SeenLog {
    path: PathBuf,
    /// Each row's columns joined by [`SEP`], so a lookup needs no allocation per column.
    facts: BTreeMap<Fact, BTreeSet<String>>,
    scratch: String,
}

/// ASCII unit separator: no name, key or type contains it.
const SEP: char = '\u{1f}';

impl SeenLog {
    /// `None` unless [`SEEN_DIR_ENV`] names a directory (created if missing).
    pub(crate) fn from_env() -> Option<SeenLog> {
        let dir = PathBuf::from(std::env::var_os(SEEN_DIR_ENV).filter(|d| !d.is_empty())?);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            // A test must not fail because the bookkeeping cannot be written; the registry
            // check then misses this capture and says which items were never emitted.
            eprintln!("{SEEN_DIR_ENV}: cannot create {}: {err}", dir.display());
            return None;
        }
        let n = NEXT_RECEIVER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("seen-{}-{n}.json", std::process::id()));
        Some(SeenLog {
            path,
            facts: BTreeMap::new(),
            scratch: String::new(),
        })
    }

    fn add(&mut self, fact: Fact, columns: &[&str]) -> bool {
        self.scratch.clear();
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                self.scratch.push(SEP);
            }
            self.scratch.push_str(column);
        }
        let set = self.facts.entry(fact).or_default();
        // Checked before copying: almost every item repeats facts already seen.
        if set.contains(self.scratch.as_str()) {
            return false;
        }
        set.insert(self.scratch.clone())
    }

    fn add_resource(&mut self, resource: Option<&Resource>) -> (bool, String) {
        let attrs = resource
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let service = attrs
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(value_text)
            .unwrap_or_default();
        let mut new = false;
        for kv in attrs {
            new |= self.add(Fact::Resource, &[&service, &kv.key, &kv_type(kv)]);
        }
        (new, service)
    }

    /// Records the facts of a trace export; true when any was new.
    pub(crate) fn note_traces(&mut self, request: &ExportTraceServiceRequest) -> bool {
        let mut new = false;
        for resource_spans in &request.resource_spans {
            let (added, service) = self.add_resource(resource_spans.resource.as_ref());
            new |= added;
            for scope_spans in &resource_spans.scope_spans {
                let scope = scope_name(scope_spans.scope.as_ref());
                for span in &scope_spans.spans {
                    // Kind too: the load generator's client spans share names with the API's
                    // server spans ("GET /api/videos") and carry other attributes.
                    let (name, kind) = (
                        span.name.as_str(),
                        vidscope_telemetry::span_kind_name(span.kind),
                    );
                    new |= self.add(Fact::Span, &[&service, scope, name, kind]);
                    for kv in &span.attributes {
                        let row = [name, kind, &kv.key, &kv_type(kv)];
                        new |= self.add(Fact::SpanAttribute, &row);
                    }
                    for event in &span.events {
                        new |= self.add(Fact::SpanEvent, &[name, kind, &event.name]);
                        for kv in &event.attributes {
                            let row = [name, kind, &event.name, &kv.key, &kv_type(kv)];
                            new |= self.add(Fact::EventAttribute, &row);
                        }
                    }
                    for link in &span.links {
                        for kv in &link.attributes {
                            let row = [name, kind, &kv.key, &kv_type(kv)];
                            new |= self.add(Fact::LinkAttribute, &row);
                        }
                    }
                }
            }
        }
        new
    }

    /// Records the facts of a logs export (never bodies); true when any was new.
    pub(crate) fn note_logs(&mut self, request: &ExportLogsServiceRequest) -> bool {
        let mut new = false;
        for resource_logs in &request.resource_logs {
            let (added, service) = self.add_resource(resource_logs.resource.as_ref());
            new |= added;
            for scope_logs in &resource_logs.scope_logs {
                let scope = scope_name(scope_logs.scope.as_ref());
                for record in &scope_logs.log_records {
                    new |= self.add(Fact::Log, &[&service, scope, &record.event_name]);
                    for kv in &record.attributes {
                        new |= self.add(Fact::LogAttribute, &[scope, &kv.key, &kv_type(kv)]);
                    }
                }
            }
        }
        new
    }

    /// Records the facts of a metrics export; true when any was new.
    pub(crate) fn note_metrics(&mut self, request: &ExportMetricsServiceRequest) -> bool {
        let mut new = false;
        for resource_metrics in &request.resource_metrics {
            let (added, service) = self.add_resource(resource_metrics.resource.as_ref());
            new |= added;
            for scope_metrics in &resource_metrics.scope_metrics {
                let scope = scope_name(scope_metrics.scope.as_ref());
                for m in &scope_metrics.metrics {
                    let (kind, labels) = metric_shape(m.data.as_ref());
                    new |= self.add(Fact::Metric, &[&service, scope, &m.name, &m.unit, kind]);
                    for kv in labels {
                        new |= self.add(Fact::MetricLabel, &[&m.name, &kv.key, &kv_type(kv)]);
                    }
                }
            }
        }
        new
    }

    /// Replaces the file atomically (write, then rename), so a checker reading the directory
    /// while tests still run never sees half a file.
    pub(crate) fn write(&self) {
        let facts: serde_json::Map<String, serde_json::Value> = self
            .facts
            .iter()
            .map(|(fact, rows)| {
                let rows: Vec<Vec<&str>> = rows.iter().map(|r| r.split(SEP).collect()).collect();
                (fact.key().to_owned(), serde_json::json!(rows))
            })
            .collect();
        let document = serde_json::json!({
            "format": FORMAT,
            "source": source(),
            "backend": std::env::var("VIDSCOPE_TELEMETRY_BACKEND").unwrap_or_default(),
            "database": std::env::var("VIDSCOPE_TEST_DB").unwrap_or_default(),
            "facts": facts,
        });
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&document)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(err) = written {
            eprintln!(
                "{SEEN_DIR_ENV}: cannot write {}: {err}",
                self.path.display()
            );
        }
    }
}

/// The test binary and its arguments (nextest passes the test's name), so the checker can say
/// which test emitted an unregistered item.
fn source() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("{exe} {}", args.join(" ")).trim().to_owned()
}

fn scope_name(scope: Option<&InstrumentationScope>) -> &str {
    scope.map_or("", |s| s.name.as_str())
}

fn metric_shape(data: Option<&metric::Data>) -> (&'static str, Vec<&KeyValue>) {
    match data {
        None => ("empty", Vec::new()),
        Some(metric::Data::Gauge(g)) => (
            "gauge",
            g.data_points.iter().flat_map(|p| &p.attributes).collect(),
        ),
        Some(metric::Data::Sum(s)) => (
            if s.is_monotonic {
                "counter"
            } else {
                "updowncounter"
            },
            s.data_points.iter().flat_map(|p| &p.attributes).collect(),
        ),
        Some(metric::Data::Histogram(h)) => (
            "histogram",
            h.data_points.iter().flat_map(|p| &p.attributes).collect(),
        ),
        Some(metric::Data::ExponentialHistogram(h)) => (
            "exponential_histogram",
            h.data_points.iter().flat_map(|p| &p.attributes).collect(),
        ),
        Some(metric::Data::Summary(s)) => (
            "summary",
            s.data_points.iter().flat_map(|p| &p.attributes).collect(),
        ),
    }
}

fn kv_type(kv: &KeyValue) -> String {
    kv.value
        .as_ref()
        .map_or_else(|| "empty".to_owned(), value_type)
}

/// The OTLP value type: `string`, `bool`, `int`, `double`, `bytes`, `map`, `empty`, and arrays
/// as `<element>[]` (`array` when the elements differ or there are none).
fn value_type(value: &AnyValue) -> String {
    use any_value::Value;
    match &value.value {
        None | Some(Value::StringValueStrindex(_)) => "empty".to_owned(),
        Some(Value::StringValue(_)) => "string".to_owned(),
        Some(Value::BoolValue(_)) => "bool".to_owned(),
        Some(Value::IntValue(_)) => "int".to_owned(),
        Some(Value::DoubleValue(_)) => "double".to_owned(),
        Some(Value::BytesValue(_)) => "bytes".to_owned(),
        Some(Value::KvlistValue(_)) => "map".to_owned(),
        Some(Value::ArrayValue(a)) => {
            let mut types = a.values.iter().map(value_type);
            match types.next() {
                Some(first) if types.all(|t| t == first) => format!("{first}[]"),
                _ => "array".to_owned(),
            }
        }
    }
}

/// Only for `service.name`, which is always a string in practice.
fn value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}
