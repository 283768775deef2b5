//! [`SpanExt`]: OpenTelemetry operations on a tracing span, whichever backend holds its
//! OpenTelemetry side (the span store's [`OtelSpan`] on the fast backend, tracing-opentelemetry
//! on the `sdk` one). Above both backends, so neither imports the other through it.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, Status, TraceContextExt};
use opentelemetry::{Key, KeyValue, Value};

use crate::fast::spans::OtelSpan;
use crate::fast::store::SpanStore;

/// Where a span's OpenTelemetry side lives.
enum Lookup<R> {
    /// In the span store (fast backend), or nowhere (the span is disabled): `f`'s result.
    Fast(Option<R>),
    /// Under another subscriber: tracing-opentelemetry's (the `sdk` backend).
    Other,
}

fn lookup<R>(span: &tracing::Span, f: impl FnOnce(&OtelSpan) -> R) -> Lookup<R> {
    span.with_subscriber(
        |(id, dispatch)| match dispatch.downcast_ref::<SpanStore>() {
            Some(store) => Lookup::Fast(store.table().with(id, f)),
            None => Lookup::Other,
        },
    )
    .unwrap_or(Lookup::Fast(None))
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
        match lookup(self, |o| o.context()) {
            Lookup::Fast(cx) => cx.unwrap_or_default(),
            Lookup::Other => tracing_opentelemetry::OpenTelemetrySpanExt::context(self),
        }
    }
    fn is_sampled(&self) -> bool {
        match lookup(self, |o| o.is_recording()) {
            Lookup::Fast(s) => s.unwrap_or(false),
            Lookup::Other => tracing_opentelemetry::OpenTelemetrySpanExt::context(self)
                .span()
                .span_context()
                .is_sampled(),
        }
    }
    fn span_context(&self) -> SpanContext {
        match lookup(self, |o| o.cx.clone()) {
            Lookup::Fast(cx) => cx.unwrap_or_else(SpanContext::empty_context),
            Lookup::Other => tracing_opentelemetry::OpenTelemetrySpanExt::context(self)
                .span()
                .span_context()
                .clone(),
        }
    }
    fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        apply(self, attributes, OtelSpan::set_attributes, |a| {
            for kv in a {
                tracing_opentelemetry::OpenTelemetrySpanExt::set_attribute(self, kv.key, kv.value);
            }
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
        apply(
            self,
            (name.into(), attributes),
            |o, (name, attributes)| o.add_event(name, timestamp, attributes),
            |(name, attributes)| {
                tracing_opentelemetry::OpenTelemetrySpanExt::add_event_with_timestamp(
                    self, name, timestamp, attributes,
                );
            },
        );
    }
    fn add_link(&self, cx: SpanContext) {
        apply(
            self,
            cx,
            |o, cx| o.add_link(cx, Vec::new()),
            |cx| tracing_opentelemetry::OpenTelemetrySpanExt::add_link(self, cx),
        );
    }
    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>) {
        self.set_attributes([KeyValue::new(key, value)]);
    }
    fn set_status(&self, status: Status) {
        apply(self, status, OtelSpan::set_status, |status| {
            tracing_opentelemetry::OpenTelemetrySpanExt::set_status(self, status);
        });
    }
}

/// Hands `value` to the span's OpenTelemetry side: `fast` gets it on the span store's (nothing
/// happens on a disabled span), `stock` under tracing-opentelemetry (the `sdk` backend).
fn apply<T>(
    span: &tracing::Span,
    value: T,
    fast: impl FnOnce(&OtelSpan, T),
    stock: impl FnOnce(T),
) {
    let mut value = Some(value);
    if let Lookup::Other = lookup(span, |o| {
        if let Some(v) = value.take() {
            fast(o, v);
        }
    }) && let Some(v) = value
    {
        stock(v);
    }
}
