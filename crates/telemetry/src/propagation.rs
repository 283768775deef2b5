//! W3C trace context and baggage across hops: HTTP headers (server and client side) and the
//! string map a job payload carries through the queue.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Installs the W3C `traceparent` + `baggage` propagator (the SDK's default is a no-op).
pub fn install_propagator() {
    global::set_text_map_propagator(opentelemetry::propagation::TextMapCompositePropagator::new(
        vec![
            Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
            Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
        ],
    ));
}

/// The remote context carried by incoming request headers (empty when there is none).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes `cx` into outgoing request headers.
pub fn inject_http(cx: &Context, headers: &mut http::HeaderMap) {
    global::get_text_map_propagator(|p| p.inject_context(cx, &mut HeaderInjector(headers)));
}

/// The context of `span` as a job payload's string map (`traceparent`, `baggage`).
pub fn inject_map(span: &tracing::Span) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let cx = span.context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    map
}

/// The remote context stored in a job payload's string map.
pub fn extract_map(map: &HashMap<String, String>) -> Context {
    global::get_text_map_propagator(|p| p.extract(map))
}

/// Makes `span` a child of `parent` when `parent` carries a valid remote span.
///
/// Must be called before the span is first entered (tracing-opentelemetry ignores a parent
/// set later).
pub fn set_remote_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// W3C Trace Context level 2 `traceresponse` value: `00-<trace id>-<span id>-<flags>`.
pub fn traceresponse(sc: &SpanContext) -> Option<String> {
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Trace id of `span` as 32 lowercase hex characters, when telemetry is on.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
