//! Error events mark their span on the fast backend (the `sdk` backend's tracing layer does
//! the same for its spans).

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{KeyValue, Value};
use tracing::field;

use crate::fast::store::SpanTable;

/// Error events inside a sampled span mark it: status Error and a span event, as
/// tracing-opentelemetry does (the `sdk` backend). The event is named by its message, or
/// `exception` with `exception.message` (and the status description) for an event whose only
/// text is an `error` field (what `#[instrument(err)]` emits); its fields become attributes
/// beside `level` and `target`.
pub(crate) struct ErrorEvents {
    spans: std::sync::Arc<SpanTable>,
}

impl ErrorEvents {
    pub(crate) fn new(spans: std::sync::Arc<SpanTable>) -> Self {
        Self { spans }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        self.spans.with_event_span(event, |span| {
            if !span.is_recording() {
                return;
            }
            let mut fields = ErrorFields::default();
            event.record(&mut fields);
            let meta = event.metadata();
            let mut attributes = vec![
                KeyValue::new("level", meta.level().as_str()),
                KeyValue::new("target", meta.target()),
            ];
            let mut status = Status::error("");
            let name: Cow<'static, str> = match (fields.message, fields.error) {
                (Some(message), _) => Cow::Owned(message),
                (None, Some(error)) => {
                    status = Status::error(error.clone());
                    attributes.push(KeyValue::new("exception.message", error));
                    Cow::Borrowed("exception")
                }
                (None, None) => Cow::Borrowed(meta.name()),
            };
            attributes.extend(fields.other);
            span.set_status(status);
            span.add_event(Event::new(name, SystemTime::now(), attributes, 0));
        });
    }
}

/// An error event's message, `error` field and other fields.
#[derive(Default)]
struct ErrorFields {
    message: Option<String>,
    error: Option<String>,
    other: Vec<KeyValue>,
}

impl ErrorFields {
    fn text(&mut self, field: &field::Field, value: String) {
        match field.name() {
            "message" => self.message = Some(value),
            "error" => self.error = Some(value),
            name => self.other.push(KeyValue::new(name, value)),
        }
    }
}

impl field::Visit for ErrorFields {
    fn record_bool(&mut self, field: &field::Field, value: bool) {
        self.other.push(KeyValue::new(field.name(), value));
    }
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        self.other.push(KeyValue::new(field.name(), value));
    }
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        self.other.push(KeyValue::new(field.name(), value));
    }
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        let v = i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::I64);
        self.other.push(KeyValue::new(field.name(), v));
    }
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.text(field, value.to_owned());
    }
    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}
