//! JSON log lines on stdout carrying `trace_id`, `span_id` and `trace_sampled`.
//!
//! Written by hand instead of tracing-subscriber's JSON formatter because that formatter is
//! a layer that needs the `Registry`, which [`crate::store`] replaces. The lines are what it
//! wrote (its flattened format, no span fields), with the ids of the event's span spliced in
//! before the closing brace:
//! `{"timestamp":"…Z","level":"INFO","message":"…",<fields>,"target":"…","trace_id":"…","span_id":"…","trace_sampled":false}`.
//! Outside a span the ids are `null`. Values are written as tracing-serde writes them:
//! numbers and booleans as JSON, everything else as a string; serde_json escapes strings.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tracing::{Event, Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;

use crate::propagation::push_hex;
use crate::store::SpanTable;

/// The stdout log layer.
pub(crate) struct JsonLog<W> {
    writer: W,
    spans: Arc<SpanTable>,
}

impl<W> JsonLog<W> {
    pub(crate) fn new(writer: W, spans: Arc<SpanTable>) -> Self {
        Self { writer, spans }
    }
}

impl<S, W> Layer<S> for JsonLog<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"timestamp\":\"");
        let _ = write!(
            line,
            "{}",
            humantime::format_rfc3339_micros(SystemTime::now())
        );
        line.extend_from_slice(b"\",\"level\":\"");
        line.extend_from_slice(meta.level().as_str().as_bytes());
        line.push(b'"');
        event.record(&mut Fields(&mut line));
        line.extend_from_slice(b",\"target\":");
        json(&mut line, meta.target());
        let ids = self.spans.with_event_span(event, |span| {
            (
                span.cx.trace_id().to_bytes(),
                span.cx.span_id().to_bytes(),
                span.cx.is_sampled(),
            )
        });
        match ids {
            Some((trace_id, span_id, sampled)) => {
                line.extend_from_slice(b",\"trace_id\":\"");
                push_hex(&mut line, &trace_id);
                line.extend_from_slice(b"\",\"span_id\":\"");
                push_hex(&mut line, &span_id);
                line.extend_from_slice(if sampled {
                    b"\",\"trace_sampled\":true}\n"
                } else {
                    b"\",\"trace_sampled\":false}\n"
                });
            }
            None => line.extend_from_slice(b",\"trace_id\":null,\"span_id\":null}\n"),
        }
        // A failed write to stdout is not worth a panic or a retry; the OTLP records stand.
        let _ = self.writer.make_writer_for(meta).write_all(&line);
    }
}

/// Writes `value` as JSON. Serializing a string or a number into a `Vec` cannot fail.
fn json(line: &mut Vec<u8>, value: impl Serialize) {
    let _ = serde_json::to_writer(line, &value);
}

/// A `Debug` or `Display` value as a JSON string, escaped as it is formatted (no
/// intermediate `String`).
struct Text<T>(T);

impl<T: fmt::Display> Serialize for Text<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// An event's fields as `,"name":value` pairs.
struct Fields<'a>(&'a mut Vec<u8>);

impl Fields<'_> {
    fn pair(&mut self, field: &field::Field, value: impl Serialize) {
        self.0.push(b',');
        json(self.0, field.name());
        self.0.push(b':');
        json(self.0, value);
    }
}

impl field::Visit for Fields<'_> {
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        self.pair(field, value);
    }
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        self.pair(field, value);
    }
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        self.pair(field, value);
    }
    fn record_bool(&mut self, field: &field::Field, value: bool) {
        self.pair(field, value);
    }
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.pair(field, value);
    }
    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.pair(field, Text(value));
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        self.pair(field, Text(format_args!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::config::SamplerConfig;
    use crate::spans::{SpanExt as _, Tracer};
    use crate::store::SpanStore;

    /// Every line is one JSON object with the level, message, typed fields, target and the
    /// span's ids (null outside a span); text is escaped.
    #[test]
    fn lines_are_json_objects_with_typed_fields_and_the_spans_ids() {
        // A file is a `MakeWriter`; the lines are read back from it.
        let path = std::env::temp_dir().join(format!(
            "vidscope-json-log-{}-{}",
            std::process::id(),
            crate::pipe::unix_nanos(SystemTime::now())
        ));
        let file = std::fs::File::create(&path).unwrap();
        let store = SpanStore::new(Tracer::new(SamplerConfig::AlwaysOff, None));
        let table = store.table().clone();
        let subscriber = store.with(JsonLog::new(file, table));
        let span_cx = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            let err = std::io::Error::other("disk \"full\"");
            tracing::warn!(
                target: "t",
                n = -3,
                big = u64::MAX,
                ok = true,
                ratio = 0.5,
                name = "a\nb",
                error = &err as &dyn std::error::Error,
                shown = ?Some(1),
                "hello {}",
                "world"
            );
            drop(_entered);
            tracing::info!(target: "t", "outside");
            span.span_context()
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["message"], "hello world");
        assert_eq!(first["n"], -3);
        assert_eq!(first["big"], u64::MAX);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["name"], "a\nb");
        assert_eq!(first["error"], "disk \"full\"");
        assert_eq!(first["shown"], "Some(1)");
        assert_eq!(first["target"], "t");
        assert_eq!(first["trace_id"], span_cx.trace_id().to_string());
        assert_eq!(first["span_id"], span_cx.span_id().to_string());
        assert_eq!(first["trace_sampled"], false);
        let stamp = first["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        assert!(lines[1]["trace_id"].is_null() && lines[1]["span_id"].is_null());
        assert_eq!(lines[1]["message"], "outside");
    }
}
