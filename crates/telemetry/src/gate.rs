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

use std::sync::Arc;

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};

/// A `RUST_LOG`-style filter. `target=level` directives are matched by [`ExactTargets`];
/// span and field directives (`[span]=debug`, `target[span{f=v}]=trace`), rarer and only
/// meaningful to an [`EnvFilter`], go to one built from those directives alone, and a
/// callsite is on when either side turns it on (as `EnvFilter` itself combines its static
/// and dynamic directives).
///
/// Not a boxed `dyn Filter<S>`: the gate and the outputs sit at different places in the
/// layer stack, so their `S` differ. Shared (`Arc`) because the gate holds each output's
/// filter too.
#[derive(Clone)]
pub(crate) struct Directives {
    statics: Arc<ExactTargets>,
    dynamic: Option<Arc<EnvFilter>>,
}

impl Directives {
    /// Parses a `RUST_LOG`-style string; the error says which directive is wrong.
    pub(crate) fn parse(directives: &str) -> Result<Self, String> {
        let mut statics = Vec::new();
        let mut dynamic = Vec::new();
        for d in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            if d.contains('[') {
                dynamic.push(d);
            } else {
                statics.push(d);
            }
        }
        let dynamic = if dynamic.is_empty() {
            None
        } else {
            Some(Arc::new(
                EnvFilter::builder()
                    .with_default_directive(LevelFilter::OFF.into())
                    .parse(dynamic.join(","))
                    .map_err(|e| e.to_string())?,
            ))
        };
        Ok(Self {
            statics: Arc::new(ExactTargets::parse(&statics)?),
            dynamic,
        })
    }

    fn callsite_enabled<S>(&self, metadata: &'static Metadata<'static>) -> Interest {
        let statics = if self.statics.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        };
        match &self.dynamic {
            None => statics,
            Some(e) => {
                union([statics, Filter::<S>::callsite_enabled(e.as_ref(), metadata)].into_iter())
            }
        }
    }

    fn enabled<S: Subscriber>(&self, metadata: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        self.statics.enabled(metadata)
            || self
                .dynamic
                .as_ref()
                .is_some_and(|e| Filter::enabled(e.as_ref(), metadata, ctx))
    }

    pub(crate) fn max_level_hint(&self) -> Option<LevelFilter> {
        let statics = self.statics.max_level();
        match &self.dynamic {
            None => Some(statics),
            Some(e) => Filter::<tracing_subscriber::Registry>::max_level_hint(e.as_ref())
                .map(|d| d.max(statics)),
        }
    }
}

/// The same filter as a per-layer filter (the `sdk` backend's layers).
impl<S: Subscriber> Filter<S> for Directives {
    fn enabled(&self, metadata: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        Directives::enabled(self, metadata, ctx)
    }
    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        Directives::callsite_enabled::<S>(self, metadata)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Directives::max_level_hint(self)
    }
}

/// `target=level` directives matched at module-path boundaries: `tower=off` covers `tower`
/// and `tower::buffer`, not `tower_http`. Written here because tracing-subscriber's
/// `Targets` and `EnvFilter` match a target as a string prefix, so the exporters' own
/// `tower=off` silenced the application's `tower_http` request logs too. The most specific
/// (longest) matching target decides; the bare level, if any, covers the rest; with neither,
/// the callsite is off (as with `Targets`). A later directive for the same target replaces
/// an earlier one.
#[derive(Debug)]
pub(crate) struct ExactTargets {
    default: Option<LevelFilter>,
    /// Longest target first.
    targets: Vec<(String, LevelFilter)>,
    /// The most verbose level of all: a callsite above it is off without a look at the targets
    /// (the error-events output sees every info event, see `error_events::ErrorEvents`).
    max: LevelFilter,
}

impl ExactTargets {
    fn parse(directives: &[&str]) -> Result<Self, String> {
        let mut out = Self {
            default: None,
            targets: Vec::new(),
            max: LevelFilter::OFF,
        };
        for d in directives {
            let (target, level) = match d.split_once('=') {
                Some((t, l)) => (
                    Some(t.trim()),
                    l.trim()
                        .parse::<LevelFilter>()
                        .map_err(|e| format!("{d}: {e}"))?,
                ),
                // A bare level is the default; a bare name is a target at every level.
                None => match d.parse::<LevelFilter>() {
                    Ok(level) => (None, level),
                    Err(_) => (Some(*d), LevelFilter::TRACE),
                },
            };
            match target {
                None => out.default = Some(level),
                Some("") => return Err(format!("{d}: empty target")),
                Some(t) => {
                    out.targets.retain(|(known, _)| known != t);
                    out.targets.push((t.to_owned(), level));
                }
            }
        }
        out.targets.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        out.max = out
            .targets
            .iter()
            .map(|(_, l)| *l)
            .chain(out.default)
            .max()
            .unwrap_or(LevelFilter::OFF);
        Ok(out)
    }

    /// The level that applies to `target`.
    fn level(&self, target: &str) -> Option<LevelFilter> {
        self.targets
            .iter()
            .find(|(t, _)| {
                target
                    .strip_prefix(t.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .map(|(_, level)| *level)
            .or(self.default)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
            && self
                .level(metadata.target())
                .is_some_and(|level| *metadata.level() <= level)
    }

    fn max_level(&self) -> LevelFilter {
        self.max
    }
}

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

/// "Always" if one wants it always, "never" if none wants it, else "sometimes".
fn union(interests: impl Iterator<Item = Interest>) -> Interest {
    let mut out = Interest::never();
    for i in interests {
        if i.is_always() {
            return i;
        }
        if i.is_sometimes() {
            out = i;
        }
    }
    out
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

    #[test]
    fn the_most_specific_target_wins_and_later_directives_replace_earlier_ones() {
        let t = ExactTargets::parse(&["warn", "a=debug", "a::b=off", "c=info", "c=error", "d"])
            .unwrap();
        assert_eq!(t.level("a::b::c"), Some(LevelFilter::OFF));
        assert_eq!(t.level("a::bc"), Some(LevelFilter::DEBUG));
        assert_eq!(t.level("c"), Some(LevelFilter::ERROR));
        assert_eq!(t.level("d::x"), Some(LevelFilter::TRACE));
        assert_eq!(t.level("other"), Some(LevelFilter::WARN));
        assert_eq!(t.max_level(), LevelFilter::TRACE);
        assert!(
            ExactTargets::parse(&["a=loud"])
                .unwrap_err()
                .contains("a=loud")
        );
        assert_eq!(ExactTargets::parse(&["a=info"]).unwrap().level("b"), None);
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
