//! [`SpanExt`]: OpenTelemetry operations on a tracing span, whichever backend holds its
//! OpenTelemetry side.
//!
//! Each backend implements [`SpanOps`] over its own spans and puts it in the subscriber it
//! builds, as a [`SpanSeam`] layer: the choice is made once, at start-up. A call finds the seam
//! through the span's dispatch (one downcast, as tracing-opentelemetry's own extension trait
//! does) and makes one virtual call. Nothing here names a backend.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{Event, SpanContext, Status, TraceContextExt as _};
use opentelemetry::{Key, KeyValue, Value};
use tracing::Subscriber;
use tracing::span::Id;

/// What [`SpanExt`] does, for one backend's spans. Each operation gets the span and its id in
/// its dispatch: the fast backend finds its span by the id, the `sdk` backend goes through
/// tracing-opentelemetry's extension trait, which takes the span.
pub(crate) trait SpanOps: Send + Sync + 'static {
    fn context(&self, span: &tracing::Span, id: &Id) -> opentelemetry::Context;
    fn set_attributes(&self, span: &tracing::Span, id: &Id, attributes: AttributeIter<'_>);
    fn add_event(&self, span: &tracing::Span, id: &Id, event: Event);
    fn add_link(&self, span: &tracing::Span, id: &Id, cx: SpanContext);
    fn set_status(&self, span: &tracing::Span, id: &Id, status: Status);

    /// The span's own context, from its [`context`](SpanOps::context) unless the backend has
    /// it cheaper.
    fn span_context(&self, span: &tracing::Span, id: &Id) -> SpanContext {
        self.context(span, id).span().span_context().clone()
    }
    fn is_sampled(&self, span: &tracing::Span, id: &Id) -> bool {
        self.span_context(span, id).is_sampled()
    }
}

/// Attributes handed to [`SpanOps::set_attributes`] one at a time, never collected.
pub(crate) type AttributeIter<'a> = &'a mut dyn Iterator<Item = KeyValue>;

/// A backend's [`SpanOps`] as a layer of its subscriber, where [`SpanExt`] finds it by type. It
/// takes no part in any callback. Compose it with another layer (`Layer::and_then`) rather than
/// stacking it on the subscriber: every subscriber-level `Layered` looks its whole inner stack
/// up again when a span closes.
pub(crate) struct SpanSeam(Box<dyn SpanOps>);

impl SpanSeam {
    pub(crate) fn new(ops: impl SpanOps) -> Self {
        Self(Box::new(ops))
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for SpanSeam {}

/// Runs `f` on the seam of the span's subscriber; `None` when the span is disabled or its
/// subscriber has no seam (telemetry off, or a subscriber this crate did not build).
fn with_ops<R>(span: &tracing::Span, f: impl FnOnce(&dyn SpanOps, &Id) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        dispatch
            .downcast_ref::<SpanSeam>()
            .map(|seam| f(seam.0.as_ref(), id))
    })
    .flatten()
}

/// OpenTelemetry operations on a tracing span: the same names as tracing-opentelemetry's
/// `OpenTelemetrySpanExt`, so call sites read the same, and on the `sdk` backend they are
/// that trait's operations. Every operation is a no-op on a span that is disabled or (except
/// `context`) not sampled.
pub trait SpanExt {
    /// The span's OpenTelemetry context: for propagation, correlation and `traceresponse`.
    /// Empty (no valid span) when telemetry is off or the span is disabled.
    fn context(&self) -> opentelemetry::Context;
    /// Whether this span records and will be exported (it was sampled).
    fn is_sampled(&self) -> bool;
    /// The span's own ids and flags, without building a [`Context`](opentelemetry::Context)
    /// (for headers and log lines). Invalid when telemetry is off or the span is disabled.
    fn span_context(&self) -> SpanContext;
    /// Sets several attributes in one lookup of the span; cheaper than recording declared
    /// fields one by one, each of which is a separate dispatch through every layer.
    fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>);
    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>);
    fn add_event_with_timestamp(
        &self,
        name: impl Into<Cow<'static, str>>,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    );
    fn add_link(&self, cx: SpanContext);
    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>);
    fn set_status(&self, status: Status);
}

impl SpanExt for tracing::Span {
    fn context(&self) -> opentelemetry::Context {
        with_ops(self, |ops, id| ops.context(self, id)).unwrap_or_default()
    }
    fn is_sampled(&self) -> bool {
        with_ops(self, |ops, id| ops.is_sampled(self, id)).unwrap_or(false)
    }
    fn span_context(&self) -> SpanContext {
        with_ops(self, |ops, id| ops.span_context(self, id))
            .unwrap_or_else(SpanContext::empty_context)
    }
    fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        with_ops(self, |ops, id| {
            ops.set_attributes(self, id, &mut attributes.into_iter());
        });
    }
    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        self.add_event_with_timestamp(name, SystemTime::now(), attributes);
    }
    fn add_event_with_timestamp(
        &self,
        name: impl Into<Cow<'static, str>>,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) {
        with_ops(self, |ops, id| {
            ops.add_event(self, id, Event::new(name, timestamp, attributes, 0));
        });
    }
    fn add_link(&self, cx: SpanContext) {
        with_ops(self, |ops, id| ops.add_link(self, id, cx));
    }
    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>) {
        self.set_attributes([KeyValue::new(key, value)]);
    }
    fn set_status(&self, status: Status) {
        with_ops(self, |ops, id| ops.set_status(self, id, status));
    }
}
