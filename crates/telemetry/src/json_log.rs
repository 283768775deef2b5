//! JSON log lines on stdout carrying `trace_id`, `span_id` and `trace_sampled`.
//!
//! Written by hand instead of tracing-subscriber's JSON formatter because that formatter is
//! a layer that needs the `Registry`, which the fast backend's span store replaces. The lines are what it
//! wrote (its flattened format, no span fields), with the ids of the event's span spliced in
//! before the closing brace:
//! `{"timestamp":"…Z","level":"INFO","message":"…",<fields>,"target":"…","trace_id":"…","span_id":"…","trace_sampled":false}`.
//! Outside a span the ids are `null`. Values are written as tracing-serde writes them:
//! numbers and booleans as JSON, everything else as a string; serde_json escapes strings.
//!
//! Secrets are scrubbed as in every other output (`redact::attribute_rule`): a text value under
//! a sensitive key, or a number whose own name is a secret's, is replaced whole, and secrets inside the message or any text value
//! (`password=…`, `Bearer …`, signed-URL signatures) are replaced.

use std::fmt;
use std::io::Write as _;
use std::time::SystemTime;

use serde::Serialize;
use tracing::{Event, Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;

use crate::propagation::push_hex;
use crate::redact::{AttributeRule, ValueKind, attribute_rule};
use crate::redact::{REDACTED, redact_str};

/// The stdout log layer; `I` finds the ids of an event's span (each backend has its own).
pub(crate) struct JsonLog<W, I> {
    writer: W,
    ids: I,
}

impl<W, I> JsonLog<W, I> {
    pub(crate) fn new(writer: W, ids: I) -> Self {
        Self { writer, ids }
    }
}

/// The trace id, span id and sampled flag of the span an event belongs to.
pub(crate) trait EventIds<S> {
    fn ids(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Option<([u8; 16], [u8; 8], bool)>;
    /// The dispatch the layer belongs to, once it is built.
    fn register(&self, _dispatch: &tracing::Dispatch) {}
}

impl<S, W, I> Layer<S> for JsonLog<W, I>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
    I: EventIds<S> + 'static,
{
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        self.ids.register(dispatch);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
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
        let ids = self.ids.ids(event, &ctx);
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

/// An event's fields as `,"name":value` pairs.
struct Fields<'a>(&'a mut Vec<u8>);

impl Fields<'_> {
    fn pair(&mut self, field: &field::Field, value: impl Serialize) {
        self.0.push(b',');
        json(self.0, field.name());
        self.0.push(b':');
        json(self.0, value);
    }

    /// A text value, scrubbed by the redaction rule for its key.
    fn text(&mut self, field: &field::Field, value: &str) {
        match attribute_rule(field.name(), ValueKind::Other) {
            AttributeRule::Replace => self.pair(field, REDACTED),
            _ => self.pair(field, redact_str(value).as_ref()),
        }
    }

    /// A `Debug` or `Display` value: formatted whole first, since a secret can only be found
    /// in the whole text.
    fn formatted(&mut self, field: &field::Field, value: impl fmt::Display) {
        self.text(field, &value.to_string());
    }

    /// A number, replaced whole when its name is a secret's (`password = 12345678`).
    fn number(&mut self, field: &field::Field, value: impl Serialize) {
        match attribute_rule(field.name(), ValueKind::Number) {
            AttributeRule::Replace => self.pair(field, REDACTED),
            _ => self.pair(field, value),
        }
    }
}

impl field::Visit for Fields<'_> {
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        self.number(field, value);
    }
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        self.number(field, value);
    }
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &field::Field, value: bool) {
        self.pair(field, value);
    }
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.text(field, value);
    }
    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.formatted(field, value);
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        self.formatted(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Ids for an event inside a span (each backend finds its own; their tests check that).
    struct InSpan;

    const IDS: ([u8; 16], [u8; 8], bool) = ([0xab; 16], [0xcd; 8], false);

    impl<S> EventIds<S> for InSpan
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn ids(
            &self,
            event: &Event<'_>,
            ctx: &Context<'_, S>,
        ) -> Option<([u8; 16], [u8; 8], bool)> {
            ctx.event_span(event).map(|_| IDS)
        }
    }

    /// Every line is one JSON object with the level, message, typed fields, target and the
    /// span's ids (null outside a span); text is escaped.
    #[test]
    fn lines_are_json_objects_with_typed_fields_and_the_spans_ids() {
        // A file is a `MakeWriter`; the lines are read back from it.
        let path = std::env::temp_dir().join(format!(
            "vidscope-json-log-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let file = std::fs::File::create(&path).unwrap();
        let subscriber = tracing_subscriber::registry().with(JsonLog::new(file, InSpan));
        tracing::subscriber::with_default(subscriber, || {
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
        assert_eq!(first["trace_id"], "ab".repeat(16));
        assert_eq!(first["span_id"], "cd".repeat(8));
        assert_eq!(first["trace_sampled"], false);
        let stamp = first["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        assert!(lines[1]["trace_id"].is_null() && lines[1]["span_id"].is_null());
        assert_eq!(lines[1]["message"], "outside");
    }
}
