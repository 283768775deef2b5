//! What the `sdk` backend adds to tracing-subscriber's registry beside the stock layers: the
//! tracing-opentelemetry layer's filter, the slow-query watch, where the stdout lines find
//! their ids, and `SpanExt`'s operations through tracing-opentelemetry.

use std::time::Instant;

use opentelemetry::trace::{self, SpanContext, Status, TraceContextExt as _};
use tracing::span::{Attributes, Id};
use tracing::{Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::db_watch::DbWatch;
use crate::filter::Directives;
use crate::json_log::EventIds;
use crate::span_ext::{AttributeIter, SpanOps};

/// The per-layer filter of the tracing-opentelemetry layer: spans by the span filter, and
/// error events (which mark their span's status Error and become span events) by their own.
/// Other events stay out of spans, as on the fast path.
pub(crate) struct SpansAndErrors {
    pub spans: Directives,
    pub errors: Directives,
}

impl<S: Subscriber> Filter<S> for SpansAndErrors {
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            Filter::enabled(&self.spans, meta, ctx)
        } else {
            Filter::enabled(&self.errors, meta, ctx)
        }
    }
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_span() {
            Filter::<S>::callsite_enabled(&self.spans, meta)
        } else {
            Filter::<S>::callsite_enabled(&self.errors, meta)
        }
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(
            Filter::<S>::max_level_hint(&self.spans)?
                .max(Filter::<S>::max_level_hint(&self.errors)?),
        )
    }
}

/// Times the spans [`DbWatch`] watches and adds its slow-query event to late ones before the
/// tracing layer exports them (it must sit below that layer, whose `on_close` runs after this
/// one's). The rule and the event are `DbWatch`'s, shared with the fast tracer; where the
/// start time is kept differs (here a span extension, there the recording).
pub(crate) struct SlowQueries {
    pub db: DbWatch,
    /// The dispatch this layer is part of (inside a callback `get_default` answers the no-op
    /// dispatch).
    pub dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

struct Started(Instant);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SlowQueries {
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(started) = self.db.start(attrs.metadata().name())
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(Started(started));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let started = ctx
            .span(&id)
            .and_then(|s| s.extensions().get::<Started>().map(|s| s.0));
        let Some(event) = started.and_then(|s| self.db.slow_query(s)) else {
            return;
        };
        let mut event = Some(event);
        tracing::dispatcher::get_default(|d| {
            if let (Some(cx), Some((name, attributes))) = (
                tracing_opentelemetry::get_otel_context(&id, d),
                event.take(),
            ) {
                cx.span().add_event(name, attributes);
            }
        });
    }
}

/// The stdout lines' ids on the `sdk` backend: tracing-opentelemetry's context of the event's
/// span, looked up through the dispatch the line layer was registered with (inside a callback, `get_default` answers the
/// no-op dispatch: tracing guards against re-entry).
#[derive(Default)]
pub(crate) struct OtelIds(std::sync::OnceLock<tracing::dispatcher::WeakDispatch>);

impl<S> EventIds<S> for OtelIds
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn ids(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Option<([u8; 16], [u8; 8], bool)> {
        let id = ctx.event_span(event)?.id();
        let dispatch = self.0.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(&id, &dispatch)?;
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| {
            (
                sc.trace_id().to_bytes(),
                sc.span_id().to_bytes(),
                sc.is_sampled(),
            )
        })
    }

    fn register(&self, dispatch: &tracing::Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }
}

/// `SpanExt` on the `sdk` backend: tracing-opentelemetry's own extension trait, whose
/// method names `SpanExt` keeps.
pub(crate) struct StockSpans;

impl SpanOps for StockSpans {
    fn context(&self, span: &tracing::Span, _: &Id) -> opentelemetry::Context {
        span.context()
    }
    fn set_attributes(&self, span: &tracing::Span, _: &Id, attributes: AttributeIter<'_>) {
        attributes.for_each(|kv| span.set_attribute(kv.key, kv.value));
    }
    fn add_event(&self, span: &tracing::Span, _: &Id, event: trace::Event) {
        span.add_event_with_timestamp(event.name, event.timestamp, event.attributes);
    }
    fn add_link(&self, span: &tracing::Span, _: &Id, cx: SpanContext) {
        span.add_link(cx);
    }
    fn set_status(&self, span: &tracing::Span, _: &Id, status: Status) {
        span.set_status(status);
    }
}
