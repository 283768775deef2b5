//! W3C trace context and baggage across hops: HTTP headers (server and client side) and the
//! string map a job payload carries through the queue.

use std::cell::RefCell;
use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};

use crate::span_ext::SpanExt as _;

/// Installs the W3C `traceparent` + `baggage` propagator (the SDK's default is a no-op).
pub fn install_propagator() {
    global::set_text_map_propagator(opentelemetry::propagation::TextMapCompositePropagator::new(
        vec![
            Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
            Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
        ],
    ));
}

// Every extraction starts from an empty context, not `Context::current()` (what `extract`
// does): on the `sdk` backend the current context is the entered span's, so a missing or
// malformed value would come back as that span, valid, and be taken for the caller's.

/// The remote context carried by incoming request headers (empty when there is none).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    // Most requests carry neither header; the propagators' lookups and the global lock are
    // then skipped (~1 000 instructions per request, callgrind).
    if !headers.contains_key("traceparent") && !headers.contains_key("baggage") {
        return Context::new();
    }
    global::get_text_map_propagator(|p| {
        p.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    })
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
    global::get_text_map_propagator(|p| p.extract_with_context(&Context::new(), map))
}

/// The context of one W3C `traceparent` value received outside headers (e.g. in a beacon's
/// body). Read with the W3C propagator itself rather than the global one, so a valid value is
/// recognised even when telemetry is off; an invalid one gives a context without a valid span.
pub fn extract_traceparent(value: &str) -> Context {
    use opentelemetry::propagation::TextMapPropagator as _;
    let map = HashMap::from([("traceparent".to_owned(), value.to_owned())]);
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract_with_context(&Context::new(), &map)
}

thread_local! {
    /// The remote parent for the next root span created on this thread (see
    /// [`with_remote_parent`]).
    static REMOTE_PARENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Runs `make`, which creates a span, with `parent` as that span's parent (in place of the
/// current span, if any). A `parent` without a valid span changes nothing. Only the first
/// span created inside `make` takes it. The parent must be known at creation: sampling is
/// decided then, so there is no `set_parent`.
///
/// Each backend takes it its own way: the fast span store takes it from here
/// ([`take_remote_parent`]); on the `sdk` backend the parent is the current OpenTelemetry
/// context while `make` runs, which tracing-opentelemetry takes as a new span's parent (with
/// context activation, its default), in place of the current tracing span.
pub fn with_remote_parent<R>(parent: Context, make: impl FnOnce() -> R) -> R {
    if !parent.span().span_context().is_valid() {
        return make();
    }
    let _current = parent.clone().attach();
    REMOTE_PARENT.with(|p| *p.borrow_mut() = Some(parent));
    let made = make();
    // Cleared even when no span took it (the span was filtered out).
    REMOTE_PARENT.with(|p| p.borrow_mut().take());
    made
}

/// The remote parent set by [`with_remote_parent`], taken by the span being created.
pub(crate) fn take_remote_parent() -> Option<Context> {
    REMOTE_PARENT.with(|p| p.borrow_mut().take())
}

/// W3C Trace Context level 2 `traceresponse` value: `00-<trace id>-<span id>-<flags>`.
pub fn traceresponse(sc: &SpanContext) -> Option<String> {
    if !sc.is_valid() {
        return None;
    }
    let mut v = Vec::with_capacity(55);
    v.extend_from_slice(b"00-");
    push_hex(&mut v, &sc.trace_id().to_bytes());
    v.push(b'-');
    push_hex(&mut v, &sc.span_id().to_bytes());
    v.push(b'-');
    push_hex(&mut v, &[sc.trace_flags().to_u8()]);
    String::from_utf8(v).ok()
}

/// Trace id of `span` as 32 lowercase hex characters, when telemetry is on.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let mut v = Vec::with_capacity(32);
    push_hex(&mut v, &sc.trace_id().to_bytes());
    String::from_utf8(v).ok()
}

/// Lowercase hex, zero-padded, appended to `out`. By hand because `format!("{:032x}")`
/// through the ids' `LowerHex` went through the padding machinery of `fmt` and cost ~2 100
/// instructions per `traceresponse` header (callgrind), once per request. Bytes, not a
/// `String`: pushing `char`s one at a time cost ~450 instructions for one trace id.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    for (pair, b) in out[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    /// A sampled, local span context with these ids.
    fn sampled(trace_id: u128, span_id: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn traceresponse_is_zero_padded_lowercase_hex() {
        let sc = sampled(
            0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            0x00f0_67aa_0ba9_02b7,
        );
        assert_eq!(
            traceresponse(&sc).as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01")
        );
        assert_eq!(traceresponse(&SpanContext::empty_context()), None);
    }

    /// With a span current (as on the `sdk` backend inside a request), a malformed or missing
    /// value is still "no parent", never the current span.
    #[test]
    fn nothing_valid_is_extracted_from_a_bad_value_whatever_is_current() {
        use opentelemetry::trace::TraceContextExt as _;
        install_propagator();
        let current = sampled(7, 7);
        let _g = Context::new().with_remote_span_context(current).attach();
        assert!(
            !extract_traceparent("00-nope")
                .span()
                .span_context()
                .is_valid()
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "garbage".parse().unwrap());
        assert!(!extract_http(&headers).span().span_context().is_valid());
        let map = HashMap::from([("traceparent".to_owned(), "00-x".to_owned())]);
        assert!(!extract_map(&map).span().span_context().is_valid());
        assert!(
            !extract_map(&HashMap::new())
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn hex_of_any_length() {
        for len in [0usize, 1, 8, 16, 31, 32, 33, 100] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let theirs: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut line = b"x".to_vec();
            push_hex(&mut line, &bytes);
            assert_eq!(line, format!("x{theirs}").into_bytes(), "{len} bytes");
        }
    }
}
