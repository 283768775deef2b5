//! Log lines carry the trace and span of the span they were emitted in, without attaching
//! OpenTelemetry contexts on every span entry.
//!
//! Attaching a span's OpenTelemetry context on every span entry (tracing-opentelemetry's
//! "context activation") costs a context clone, a thread-local push and a pop on every poll
//! of every instrumented future — measured at ~1 400 instructions per poll, ~12 000 per
//! request of the benchmark route — while the only readers of the active context here are the
//! two log outputs (the stdout JSON line and the SDK logger behind the OpenTelemetry log
//! bridge). So [`WithSpanContext`] attaches the event's span context once per log event around
//! the layers it wraps. Code that needs a span's context otherwise uses `SpanExt::context()`.

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::spans::OtelSpan;

/// Wraps log-writing layers: their `on_event` runs with the event's span context attached.
/// They see events only (see the end of the `Layer` impl).
pub struct WithSpanContext<L> {
    inner: L,
}

impl<L> WithSpanContext<L> {
    pub fn new(inner: L) -> Self {
        Self { inner }
    }

    fn event_context<S>(
        &self,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
    ) -> Option<opentelemetry::Context>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.event_span(event)?;
        let ext = span.extensions();
        ext.get::<OtelSpan>().map(OtelSpan::context)
    }
}

impl<S, L> Layer<S> for WithSpanContext<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        match self.event_context(event, &ctx) {
            Some(cx) => {
                let _attached = cx.attach();
                self.inner.on_event(event, ctx);
            }
            None => self.inner.on_event(event, ctx),
        }
    }

    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.inner.on_register_dispatch(dispatch);
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }
    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }
    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }
    // Span callbacks are not forwarded: the wrapped outputs write log lines only (each
    // behind its own filter, see `gate`).
}
