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

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use vidscope_telemetry::export_request::{ScopedItems, points};

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

    /// Records the facts of an export (never bodies or values); true when any was new.
    pub(crate) fn note<R: ScopedItems>(&mut self, request: &R) -> bool
    where
        R::Item: Noted,
    {
        let mut new = false;
        for group in request.groups() {
            let (added, service) = self.add_resource(group.resource);
            new |= added;
            for item in group.items {
                new |= item.note(self, &service, group.scope_name());
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

/// A span, log record or metric, whose facts a [`SeenLog`] records.
pub(crate) trait Noted {
    /// Adds this item's facts; true when any was new.
    fn note(&self, seen: &mut SeenLog, service: &str, scope: &str) -> bool;
}

impl Noted for Span {
    fn note(&self, seen: &mut SeenLog, service: &str, scope: &str) -> bool {
        // Kind too: the load generator's client spans share names with the API's server spans
        // ("GET /api/videos") and carry other attributes.
        let (name, kind) = (
            self.name.as_str(),
            vidscope_telemetry::span_kind_name(self.kind),
        );
        let mut new = seen.add(Fact::Span, &[service, scope, name, kind]);
        for kv in &self.attributes {
            new |= seen.add(Fact::SpanAttribute, &[name, kind, &kv.key, &kv_type(kv)]);
        }
        for event in &self.events {
            new |= seen.add(Fact::SpanEvent, &[name, kind, &event.name]);
            for kv in &event.attributes {
                let row = [name, kind, &event.name, &kv.key, &kv_type(kv)];
                new |= seen.add(Fact::EventAttribute, &row);
            }
        }
        for kv in self.links.iter().flat_map(|link| &link.attributes) {
            new |= seen.add(Fact::LinkAttribute, &[name, kind, &kv.key, &kv_type(kv)]);
        }
        new
    }
}

impl Noted for LogRecord {
    fn note(&self, seen: &mut SeenLog, service: &str, scope: &str) -> bool {
        let mut new = seen.add(Fact::Log, &[service, scope, &self.event_name]);
        for kv in &self.attributes {
            new |= seen.add(Fact::LogAttribute, &[scope, &kv.key, &kv_type(kv)]);
        }
        new
    }
}

impl Noted for Metric {
    fn note(&self, seen: &mut SeenLog, service: &str, scope: &str) -> bool {
        let (kind, labels) = metric_shape(self);
        let mut new = seen.add(
            Fact::Metric,
            &[service, scope, &self.name, &self.unit, kind],
        );
        for kv in labels {
            new |= seen.add(Fact::MetricLabel, &[&self.name, &kv.key, &kv_type(kv)]);
        }
        new
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

fn metric_shape(m: &Metric) -> (&'static str, Vec<&KeyValue>) {
    let kind = match &m.data {
        None => "empty",
        Some(metric::Data::Gauge(_)) => "gauge",
        Some(metric::Data::Sum(s)) if s.is_monotonic => "counter",
        Some(metric::Data::Sum(_)) => "updowncounter",
        Some(metric::Data::Histogram(_)) => "histogram",
        Some(metric::Data::ExponentialHistogram(_)) => "exponential_histogram",
        Some(metric::Data::Summary(_)) => "summary",
    };
    let labels = points(m).into_iter().flat_map(|p| p.attributes).collect();
    (kind, labels)
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
