//! What both backends decide alike about a span: whether it is sampled (the standard
//! samplers of `OTEL_TRACES_SAMPLER`), and how many attributes, events and links it keeps.
//!
//! The decision is written once, as [`sampled`]: the fast tracer calls it when a span is
//! created, and the SDK's tracer providers (the `sdk` backend's, and the OpenTelemetry API's
//! tracer on the fast backend) take it as [`Sampler`]. A test holds it against the SDK's own
//! `Sampler` for every configuration.

use opentelemetry::trace::{
    Link, SpanContext, SpanKind, TraceContextExt as _, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    SamplingDecision, SamplingResult, ShouldSample, SpanLimits, TracerProviderBuilder,
};

use crate::config::SamplerConfig;

/// The span limits: the SDK's defaults, beyond which attributes, events and links are counted
/// as dropped. The fast recording applies the three per-span limits; the attributes of its
/// events and links are few and fixed by code (an error event's fields, none on a link).
pub(crate) const SPAN_LIMITS: SpanLimits = SpanLimits {
    max_events_per_span: 128,
    max_attributes_per_span: 128,
    max_links_per_span: 128,
    max_attributes_per_event: 128,
    max_attributes_per_link: 128,
};

/// Whether a span with this parent and trace id is sampled. Only the standard samplers are
/// supported, which is what lets the fast tracer decide without building anything.
#[inline]
pub(crate) fn sampled(
    sampler: SamplerConfig,
    parent: Option<&SpanContext>,
    trace_id: TraceId,
) -> bool {
    use SamplerConfig as S;
    match (sampler, parent) {
        (
            S::ParentBasedAlwaysOn | S::ParentBasedAlwaysOff | S::ParentBasedTraceIdRatio(_),
            Some(p),
        ) => p.is_sampled(),
        (S::AlwaysOn | S::ParentBasedAlwaysOn, _) => true,
        (S::AlwaysOff | S::ParentBasedAlwaysOff, _) => false,
        (S::TraceIdRatio(r) | S::ParentBasedTraceIdRatio(r), _) => ratio_sampled(r, trace_id),
    }
}

/// The SDK's `TraceIdRatioBased` rule (the lower 63 bits of the trace id against the ratio),
/// so a trace is sampled alike here and by other OpenTelemetry SDKs.
fn ratio_sampled(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let bytes = trace_id.to_bytes();
    let low = u64::from_be_bytes(bytes[8..].try_into().unwrap_or_default());
    (low >> 1) < bound
}

/// [`sampled`] as the SDK's tracer providers take a sampler. As the SDK's samplers do, the
/// parent counts when its context has an active span, and the new span inherits the parent's
/// trace state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampler(pub(crate) SamplerConfig);

impl ShouldSample for Sampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let sampled = match parent_context.filter(|cx| cx.has_active_span()) {
            Some(cx) => sampled(self.0, Some(cx.span().span_context()), trace_id),
            None => sampled(self.0, None, trace_id),
        };
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: parent_context.map_or_else(TraceState::default, |cx| {
                cx.span().span_context().trace_state().clone()
            }),
        }
    }
}

/// An SDK tracer provider's builder with the resource, the configured sampler and the span
/// limits: the `sdk` backend's provider, and the fast backend's for the OpenTelemetry API.
pub(crate) fn tracer_provider(
    sampler: SamplerConfig,
    resource: &Resource,
) -> TracerProviderBuilder {
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(Sampler(sampler))
        .with_span_limits(SPAN_LIMITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags};
    use proptest::prelude::*;

    fn tid(low: u64) -> TraceId {
        TraceId::from(u128::from(low))
    }

    #[test]
    fn ratio_matches_the_sdk_rule() {
        // Lower 63 bits against ratio * 2^63.
        assert!(ratio_sampled(0.5, tid(0)));
        assert!(ratio_sampled(0.5, tid((1u64 << 63) - 2)));
        assert!(!ratio_sampled(0.5, tid(1u64 << 63)));
        assert!(!ratio_sampled(0.0, tid(0)));
        assert!(ratio_sampled(1.0, tid(u64::MAX)));
    }

    #[test]
    fn parent_based_samplers_follow_the_parent() {
        let parent = |flags| {
            SpanContext::new(
                tid(u64::MAX),
                SpanId::from(1u64),
                flags,
                true,
                TraceState::default(),
            )
        };
        let on = parent(TraceFlags::SAMPLED);
        let off = parent(TraceFlags::default());
        for s in [
            SamplerConfig::ParentBasedAlwaysOn,
            SamplerConfig::ParentBasedAlwaysOff,
            SamplerConfig::ParentBasedTraceIdRatio(0.0),
        ] {
            assert!(sampled(s, Some(&on), on.trace_id()), "{s:?}");
            assert!(!sampled(s, Some(&off), off.trace_id()), "{s:?}");
        }
        // Not parent-based: the parent's flag does not count.
        assert!(sampled(SamplerConfig::AlwaysOn, Some(&off), off.trace_id()));
        assert!(!sampled(SamplerConfig::AlwaysOff, Some(&on), on.trace_id()));
    }

    /// The SDK's own sampler for a configuration: what the `sdk` backend used before the
    /// decision was written once.
    fn stock(s: SamplerConfig) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler as S;
        match s {
            SamplerConfig::AlwaysOn => S::AlwaysOn,
            SamplerConfig::AlwaysOff => S::AlwaysOff,
            SamplerConfig::TraceIdRatio(r) => S::TraceIdRatioBased(r),
            SamplerConfig::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
            SamplerConfig::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
            SamplerConfig::ParentBasedTraceIdRatio(r) => {
                S::ParentBased(Box::new(S::TraceIdRatioBased(r)))
            }
        }
    }

    fn config() -> impl Strategy<Value = SamplerConfig> {
        let ratio = -0.5..1.5f64;
        prop_oneof![
            Just(SamplerConfig::AlwaysOn),
            Just(SamplerConfig::AlwaysOff),
            ratio.clone().prop_map(SamplerConfig::TraceIdRatio),
            Just(SamplerConfig::ParentBasedAlwaysOn),
            Just(SamplerConfig::ParentBasedAlwaysOff),
            ratio.prop_map(SamplerConfig::ParentBasedTraceIdRatio),
        ]
    }

    proptest! {
        /// Every configuration, with no parent context, one without a span, or a sampled or
        /// unsampled, local or remote parent: the same decision and trace state as the SDK's
        /// sampler.
        #[test]
        fn the_decision_is_the_sdk_samplers(
            config in config(),
            trace_id in any::<u128>(),
            parent in 0u8..6,
        ) {
            let trace_id = TraceId::from(trace_id.max(1));
            let span = |flags, remote| {
                Context::new().with_remote_span_context(SpanContext::new(
                    trace_id,
                    SpanId::from(7u64),
                    flags,
                    remote,
                    "vendor=x".parse().unwrap(),
                ))
            };
            let cx = match parent {
                0 => None,
                1 => Some(Context::new()),
                2 => Some(span(TraceFlags::SAMPLED, true)),
                3 => Some(span(TraceFlags::default(), true)),
                4 => Some(span(TraceFlags::SAMPLED, false)),
                _ => Some(span(TraceFlags::default(), false)),
            };
            let ask = |s: &dyn ShouldSample| {
                let r = s.should_sample(cx.as_ref(), trace_id, "x", &SpanKind::Internal, &[], &[]);
                (r.decision, r.trace_state.header(), r.attributes.len())
            };
            prop_assert_eq!(ask(&Sampler(config)), ask(&stock(config)));
        }
    }
}
