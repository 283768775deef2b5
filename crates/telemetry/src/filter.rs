//! Which spans and events each output takes: `RUST_LOG`-style directives matched at module
//! boundaries ([`Directives`]), and the filters both backends build from the configuration
//! (spans, OTLP log records, error events, stdout lines), which keep the exporters' own
//! diagnostics out of what is exported.

use std::sync::Arc;

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};

use crate::config::EXPORT_TARGET;
use crate::config::TelemetryConfig;
use crate::error::InitError;

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
        // A later span directive for the same span and fields replaces an earlier one, as for
        // targets. (Two would also trip a debug assertion of tracing-subscriber 0.3.23, whose
        // field values matched as text compare unequal to themselves: found by `rust_log`.)
        let mut seen = std::collections::HashSet::new();
        let mut dynamic: Vec<&str> = dynamic
            .into_iter()
            .rev()
            .filter(|d| seen.insert(selector(d)))
            .collect();
        dynamic.reverse();
        let dynamic = if dynamic.is_empty() {
            None
        } else {
            Some(Arc::new(
                EnvFilter::builder()
                    .with_default_directive(LevelFilter::OFF.into())
                    // Field values matched as text, not compiled as regular expressions: a
                    // value such as `.....` (found by the `rust_log` fuzz target) made the
                    // compiled matcher take longer than 10 s to build at start-up.
                    .with_regex(false)
                    .parse(dynamic.join(","))
                    .map_err(|e| e.to_string())?,
            ))
        };
        Ok(Self {
            statics: Arc::new(ExactTargets::parse(&statics)?),
            dynamic,
        })
    }

    pub(crate) fn callsite_enabled<S>(&self, metadata: &'static Metadata<'static>) -> Interest {
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

    pub(crate) fn enabled<S: Subscriber>(
        &self,
        metadata: &Metadata<'_>,
        ctx: &Context<'_, S>,
    ) -> bool {
        self.statics.enabled(metadata)
            || self
                .dynamic
                .as_ref()
                .is_some_and(|e| Filter::enabled(e.as_ref(), metadata, ctx))
    }

    /// The level the `target=level` directives give `target` (the fuzz target's oracle).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn static_level(&self, target: &str) -> Option<LevelFilter> {
        self.statics.level(target)
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

/// What a span directive selects, without its level and white space: `a[s{f=1}] = debug` and
/// `a[s{f=1}]=trace` select the same.
fn selector(directive: &str) -> String {
    let without_level = match directive.rsplit_once('=') {
        Some((selector, level)) if !level.contains([']', '}']) => selector,
        _ => directive,
    };
    without_level.split_whitespace().collect()
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

/// "Always" if one wants it always, "never" if none wants it, else "sometimes".
pub(crate) fn union(interests: impl Iterator<Item = Interest>) -> Interest {
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

/// The targets of the OpenTelemetry crates' own diagnostics. Their `otel_debug!`/`otel_warn!`
/// macros log with `target: env!("CARGO_PKG_NAME")`, so the target is the package name, hyphens
/// and all (`opentelemetry-otlp`, `opentelemetry-http`), not the module path
/// (`opentelemetry_otlp`); both spellings are listed, since a plain `tracing` call inside one of
/// them would use the module path. [`ExactTargets`] matches at `::` boundaries, so
/// `opentelemetry` does not cover the others.
pub(crate) const OTEL_TARGETS: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "opentelemetry_otlp",
    "opentelemetry-http",
    "opentelemetry_http",
    "opentelemetry-proto",
    "opentelemetry_proto",
    "opentelemetry-appender-tracing",
    "opentelemetry_appender_tracing",
    "tracing-opentelemetry",
    "tracing_opentelemetry",
];

/// Targets that must never feed spans or OTLP logs: the exporters' own HTTP/gRPC stacks and
/// the OpenTelemetry crates' diagnostics (a feedback loop: each export would log, and the log
/// would be exported), and this crate's diagnostics. They go to stdout only.
fn not_exported() -> String {
    let mut s = String::from(
        "h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,reqwest=off,vidscope_telemetry=off",
    );
    for t in OTEL_TARGETS {
        s.push(',');
        s.push_str(t);
        s.push_str("=off");
    }
    s
}

/// The filter for a `RUST_LOG`-style directive string (see [`Directives`]); `var` names the
/// variable in the error.
pub(crate) fn parse(var: &'static str, directives: &str) -> Result<Directives, InitError> {
    Directives::parse(directives).map_err(|reason| {
        InitError::Config(crate::config::ConfigError {
            var,
            value: directives.to_owned(),
            reason,
        })
    })
}

/// The stdout filter: `RUST_LOG`, with the OpenTelemetry crates and this crate's export
/// diagnostics (`vidscope_telemetry::export`) at `OTEL_LOG_LEVEL` whatever `RUST_LOG` says
/// (a later directive for the same target replaces an earlier one).
pub(crate) fn stdout(config: &TelemetryConfig) -> Result<Directives, InitError> {
    let mut s = config.log_filter.clone();
    for t in OTEL_TARGETS.iter().chain(&[EXPORT_TARGET]) {
        s.push(',');
        s.push_str(t);
        s.push('=');
        s.push_str(&config.sdk_log_level);
    }
    parse("RUST_LOG", &s)
}

/// Which spans become OpenTelemetry spans: info and above, minus the exporters' own stacks.
pub(crate) fn spans() -> Result<Directives, InitError> {
    parse("RUST_LOG", &format!("info,{}", not_exported()))
}

/// Which events become OTLP log records: `RUST_LOG`, minus the exporters' own stacks.
pub(crate) fn otlp_logs(config: &TelemetryConfig) -> Result<Directives, InitError> {
    parse(
        "RUST_LOG",
        &format!("{},{}", config.log_filter, not_exported()),
    )
}

/// Which error events mark their span: every error outside the exporters' own stacks.
pub(crate) fn errors() -> Result<Directives, InitError> {
    parse("RUST_LOG", &format!("error,{}", not_exported()))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A span field's value is matched as text: `(` is not a broken regular expression, and
    /// nothing is compiled (a value the `rust_log` fuzz target found took over 10 s to).
    #[test]
    fn span_field_values_are_text_not_regular_expressions() {
        for d in ["a[s{f=(}]=debug", "a[s{f=a.c|[x}]=trace,info"] {
            assert!(Directives::parse(d).is_ok(), "{d}");
        }
    }

    /// The same span directive twice: the later one is kept (it used to reach a debug
    /// assertion of tracing-subscriber, found by the `rust_log` fuzz target).
    #[test]
    fn a_repeated_span_directive_replaces_the_earlier_one() {
        let d = "[{f=v}]=trace,info,[{f=v}]=debug";
        assert!(Directives::parse(d).is_ok(), "{d}");
    }
}
