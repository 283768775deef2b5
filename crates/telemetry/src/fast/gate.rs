//! Which spans and events exist at all, decided once per callsite, and which log output an
//! event goes to, decided per event.
//!
//! Why not tracing-subscriber's per-layer filters: the span layers want spans only and the
//! log outputs events only, so per-layer filters disagree on every callsite. tracing then
//! gives every callsite the "sometimes" interest and asks the whole stack `enabled` at every
//! span and event (measured with callgrind on the benchmark route: ~600 instructions a call,
//! three calls a request), and every filtered layer looked its span up in the registry on
//! each enter, exit and close to learn whether its filter let the span in. Here the [`Gate`]
//! is a global filter: a callsite is on when the span filter (for spans) or any log output's
//! filter (for events) wants it, so interests are "always" or "never" and cached by tracing.
//! Each [`Output`] checks its own filter only for the events that got through.
//!
//! A `RUST_LOG` span directive (`[span]=debug`, which needs an `EnvFilter`) is matched against
//! a callsite's own metadata only: it cannot select log lines by the span they are in.

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::filter::{Directives, union};

/// The global filter. See the module documentation.
pub(crate) struct Gate {
    spans: Option<Directives>,
    events: Vec<Directives>,
}

impl Gate {
    /// `spans`: `None` when no span is wanted; `events`: one filter per log output.
    pub(crate) fn new(spans: Option<Directives>, events: Vec<Directives>) -> Self {
        Self { spans, events }
    }
}

impl<S: Subscriber> Layer<S> for Gate {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() {
            self.spans
                .as_ref()
                .map_or_else(Interest::never, |f| f.callsite_enabled::<S>(metadata))
        } else {
            union(
                self.events
                    .iter()
                    .map(|f| f.callsite_enabled::<S>(metadata)),
            )
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        if metadata.is_span() {
            self.spans
                .as_ref()
                .is_some_and(|f| f.enabled(metadata, &ctx))
        } else {
            self.events.iter().any(|f| f.enabled(metadata, &ctx))
        }
    }

    /// The most verbose of the filters; unknown if any of them is (tracing then assumes
    /// `TRACE`), off if there are none.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.spans
            .iter()
            .chain(&self.events)
            .try_fold(LevelFilter::OFF, |most, f| {
                f.max_level_hint().map(|h| most.max(h))
            })
    }
}

/// One log output (the stdout JSON lines, the OTLP log layer) behind its own
/// filter. It sees events only: span callbacks are not forwarded, so an output never
/// formats span fields nobody prints.
pub(crate) struct Output<L> {
    layer: L,
    filter: Directives,
}

impl<L> Output<L> {
    pub(crate) fn new(layer: L, filter: Directives) -> Self {
        Self { layer, filter }
    }

    pub(crate) fn filter(&self) -> &Directives {
        &self.filter
    }
}

impl<L, S> Layer<S> for Output<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.layer.on_register_dispatch(dispatch);
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.layer.on_layer(subscriber);
    }
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Only `enabled`: neither side looks at an event's field values (`EnvFilter` and the
        // exact targets keep `Filter::event_enabled`'s default, true).
        if self.filter.enabled(event.metadata(), &ctx) {
            self.layer.on_event(event, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    fn targets(s: &str) -> Directives {
        Directives::parse(s).unwrap()
    }

    /// Counts the events that reach it.
    #[derive(Clone, Default)]
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// A span exists when the span filter wants it, an event when one output wants it, and
    /// each output gets only the events its own filter admits.
    #[test]
    fn spans_and_events_are_filtered_apart_and_outputs_each_by_their_own_filter() {
        let (a, b) = (Count::default(), Count::default());
        let subscriber = tracing_subscriber::registry()
            .with(Gate::new(
                Some(targets("info,noisy=off")),
                vec![targets("warn"), targets("info,noisy=off")],
            ))
            .with(Output::new(a.clone(), targets("warn")))
            .with(Output::new(b.clone(), targets("info,noisy=off")));
        let hint = subscriber.max_level_hint();
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::info_span!("kept").is_disabled());
            assert!(tracing::debug_span!("too verbose").is_disabled());
            assert!(tracing::info_span!(target: "noisy", "excluded").is_disabled());
            tracing::info!("to b only");
            tracing::warn!("to both");
            tracing::warn!(target: "noisy", "to a only");
            tracing::debug!("to neither");
        });
        assert_eq!((a.get(), b.get()), (2, 2));
        assert_eq!(hint, Some(LevelFilter::INFO));
    }

    /// `tower=off` is the exporters' HTTP stack; `tower_http` is the application's request
    /// logging and must stay on. tracing-subscriber's prefix match turned both off.
    #[test]
    fn targets_match_at_module_boundaries_not_as_string_prefixes() {
        let out = Count::default();
        let filter = targets("info,tower=off,hyper=warn,vidscope_api::routes=debug");
        let subscriber = tracing_subscriber::registry()
            .with(Gate::new(None, vec![filter.clone()]))
            .with(Output::new(out.clone(), filter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "tower_http::trace", "kept");
            tracing::info!(target: "tower", "dropped");
            tracing::info!(target: "tower::buffer", "dropped");
            tracing::info!(target: "hyper_util::client", "kept");
            tracing::info!(target: "hyper::proto", "dropped: below warn");
            tracing::warn!(target: "hyper::proto", "kept");
            tracing::debug!(target: "vidscope_api::routes::videos", "kept");
            tracing::debug!(target: "vidscope_api::routes_extra", "dropped: info");
            tracing::debug!(target: "vidscope_api", "dropped: info");
        });
        assert_eq!(out.get(), 4);
    }

    /// A span directive still selects the span's own callsite, beside the static directives.
    #[test]
    fn span_directives_are_combined_with_the_exact_targets() {
        let f = targets("warn,[upload]=debug");
        let subscriber = tracing_subscriber::registry().with(Gate::new(Some(f), Vec::new()));
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::debug_span!("upload").is_disabled());
            assert!(tracing::info_span!("other").is_disabled());
            assert!(!tracing::warn_span!("other").is_disabled());
        });
    }

    #[test]
    fn without_filters_nothing_is_enabled() {
        let subscriber = tracing_subscriber::registry().with(Gate::new(None, Vec::new()));
        assert_eq!(subscriber.max_level_hint(), Some(LevelFilter::OFF));
        tracing::subscriber::with_default(subscriber, || {
            assert!(tracing::error_span!("nothing").is_disabled());
        });
    }
}
