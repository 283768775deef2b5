//! Sampled spans and log records written straight to OTLP protobuf, scrubbed on the way.
//!
//! Why by hand instead of building `opentelemetry_proto` types and letting prost encode them:
//! those types take a `String` for every attribute key and value and a `Vec` per id and per
//! attribute list, and prost then measures each nested message again at every level
//! above it. Writing the bytes from what was recorded skips all of that; a nested message
//! gets a one-byte length placeholder that is widened in place when its body reaches 128
//! bytes. Attributes and log records seldom do; a span body and a request's outer levels
//! always do, which costs one move of their bytes each.
//!
//! The bytes are exactly prost's for the converted, scrubbed span or record (unit tests in
//! `spans` and `logs` compare them); field order follows prost, which writes fields by tag
//! number.

use opentelemetry::trace::{Event, Link, SpanContext, SpanKind, Status};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::pipe::{AttributeRule, attribute_rule};
use crate::redact::{REDACTED, redact_str};

/// `SpanFlags` bits (opentelemetry.proto.trace.v1): the flags field says whether the parent
/// was remote, as `opentelemetry-proto`'s conversion does.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The W3C flags plus the "is the parent remote" bits.
pub(crate) fn span_flags(cx: &SpanContext, parent_is_remote: bool) -> u32 {
    u32::from(cx.trace_flags().to_u8())
        | HAS_IS_REMOTE
        | if parent_is_remote { IS_REMOTE } else { 0 }
}

fn varint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else {
        encode_varint(v, buf);
    }
}

pub(crate) fn key(buf: &mut Vec<u8>, tag: u32, wire: WireType) {
    if tag < 16 {
        buf.push(((tag << 3) | wire as u32) as u8);
    } else {
        encode_key(tag, wire, buf);
    }
}

/// A length-delimited field whose body `body` writes.
pub(crate) fn nested(buf: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, tag, WireType::LengthDelimited);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        let mut head = [0u8; 10];
        let mut rest = &mut head[..];
        encode_varint(len as u64, &mut rest);
        let n = 10 - rest.len();
        buf[at] = head[0];
        buf.splice(at + 1..at + 1, head[1..n].iter().copied());
    }
}

pub(crate) fn bytes(buf: &mut Vec<u8>, tag: u32, b: &[u8]) {
    key(buf, tag, WireType::LengthDelimited);
    varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A string field, left out when empty (proto3 default).
pub(crate) fn string(buf: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        bytes(buf, tag, s.as_bytes());
    }
}

/// A string field scrubbed of embedded secrets, left out when empty.
pub(crate) fn scrubbed_string(buf: &mut Vec<u8>, tag: u32, s: &str) {
    string(buf, tag, &redact_str(s));
}

/// A varint field, left out when zero.
pub(crate) fn uint(buf: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(buf, tag, WireType::Varint);
        varint(buf, v);
    }
}

/// A fixed64 field, left out when zero.
pub(crate) fn fixed64(buf: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(buf, tag, WireType::SixtyFourBit);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A fixed32 field, left out when zero.
pub(crate) fn fixed32(buf: &mut Vec<u8>, tag: u32, v: u32) {
    if v != 0 {
        key(buf, tag, WireType::ThirtyTwoBit);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// One `AnyValue` string member (tag 1). A oneof member is written even when empty.
pub(crate) fn any_string(buf: &mut Vec<u8>, s: &str) {
    bytes(buf, 1, s.as_bytes());
}

/// An attribute value as the encoder sees it: from an OpenTelemetry [`Value`] (spans) or a
/// log record's field.
#[derive(Clone, Copy)]
pub(crate) enum AnyRef<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(&'a Array),
    /// A value type this encoder does not know yet: written as an empty `AnyValue`.
    Unknown,
}

impl<'a> From<&'a Value> for AnyRef<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Bool(b) => Self::Bool(*b),
            Value::I64(i) => Self::Int(*i),
            Value::F64(f) => Self::Double(*f),
            Value::String(s) => Self::Str(s.as_str()),
            Value::Array(a) => Self::Array(a),
            _ => Self::Unknown,
        }
    }
}

/// The body of an `AnyValue`, by the redaction rule for its key.
fn any_value(buf: &mut Vec<u8>, value: AnyRef<'_>, rule: AttributeRule) {
    match value {
        AnyRef::Bool(b) => {
            key(buf, 2, WireType::Varint);
            varint(buf, u64::from(b));
        }
        AnyRef::Int(i) => {
            key(buf, 3, WireType::Varint);
            varint(buf, i as u64);
        }
        AnyRef::Double(f) => {
            key(buf, 4, WireType::SixtyFourBit);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        _ if rule == AttributeRule::Replace => any_string(buf, REDACTED),
        AnyRef::Str(s) => any_string(buf, &redact_str(s)),
        AnyRef::Bytes(b) => bytes(buf, 7, b),
        AnyRef::Array(a) => nested(buf, 5, |buf| array(buf, a)),
        AnyRef::Unknown => {}
    }
}

/// An `ArrayValue` body: each element an `AnyValue` (field 1), strings scrubbed.
fn array(buf: &mut Vec<u8>, a: &Array) {
    fn each<T>(buf: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
        for item in items {
            nested(buf, 1, |buf| write(buf, item));
        }
    }
    let keep = AttributeRule::Keep;
    match a {
        Array::Bool(v) => each(buf, v, |buf, b| any_value(buf, AnyRef::Bool(*b), keep)),
        Array::I64(v) => each(buf, v, |buf, i| any_value(buf, AnyRef::Int(*i), keep)),
        Array::F64(v) => each(buf, v, |buf, f| any_value(buf, AnyRef::Double(*f), keep)),
        Array::String(v) => each(buf, v, |buf, s: &StringValue| {
            any_string(buf, &redact_str(s.as_str()))
        }),
        _ => {}
    }
}

/// One `KeyValue` field under `tag`, scrubbed by [`attribute_rule`].
pub(crate) fn attribute(buf: &mut Vec<u8>, tag: u32, k: &str, value: AnyRef<'_>) {
    nested(buf, tag, |buf| {
        string(buf, 1, k);
        let scalar = matches!(value, AnyRef::Bool(_) | AnyRef::Int(_) | AnyRef::Double(_));
        nested(buf, 2, |buf| {
            any_value(buf, value, attribute_rule(k, scalar))
        });
    });
}

/// Repeated `KeyValue` fields under `tag`.
fn attributes(buf: &mut Vec<u8>, tag: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        attribute(buf, tag, kv.key.as_str(), AnyRef::from(&kv.value));
    }
}

fn nanos(t: std::time::SystemTime) -> u64 {
    crate::pipe::unix_nanos(t)
}

fn event(buf: &mut Vec<u8>, e: &Event) {
    nested(buf, 11, |buf| {
        fixed64(buf, 1, nanos(e.timestamp));
        scrubbed_string(buf, 2, &e.name);
        attributes(buf, 3, &e.attributes);
        uint(buf, 4, u64::from(e.dropped_attributes_count));
    });
}

fn link(buf: &mut Vec<u8>, l: &Link) {
    nested(buf, 13, |buf| {
        let cx = &l.span_context;
        bytes(buf, 1, &cx.trace_id().to_bytes());
        bytes(buf, 2, &cx.span_id().to_bytes());
        string(buf, 3, &cx.trace_state().header());
        attributes(buf, 4, &l.attributes);
        uint(buf, 5, u64::from(l.dropped_attributes_count));
        key(buf, 6, WireType::ThirtyTwoBit);
        buf.extend_from_slice(&span_flags(cx, cx.is_remote()).to_le_bytes());
    });
}

/// The OTLP `SpanKind` number.
fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// What a span is made of, borrowed from wherever it was recorded.
pub(crate) struct SpanParts<'a> {
    pub cx: &'a SpanContext,
    pub parent_span_id: opentelemetry::trace::SpanId,
    pub parent_is_remote: bool,
    pub name: &'a str,
    pub kind: &'a SpanKind,
    pub start: std::time::SystemTime,
    pub end: std::time::SystemTime,
    pub attributes: &'a [KeyValue],
    pub dropped_attributes: u32,
    pub events: &'a [Event],
    pub dropped_events: u32,
    pub links: &'a [Link],
    pub dropped_links: u32,
    pub status: &'a Status,
}

/// The body of one `Span` message, scrubbed as `Spans::scrub` scrubs the converted span.
pub(crate) fn span(buf: &mut Vec<u8>, s: &SpanParts<'_>) {
    bytes(buf, 1, &s.cx.trace_id().to_bytes());
    bytes(buf, 2, &s.cx.span_id().to_bytes());
    string(buf, 3, &s.cx.trace_state().header());
    if s.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(buf, 4, &s.parent_span_id.to_bytes());
    }
    string(buf, 5, s.name);
    uint(buf, 6, kind(s.kind));
    fixed64(buf, 7, nanos(s.start));
    fixed64(buf, 8, nanos(s.end));
    attributes(buf, 9, s.attributes);
    uint(buf, 10, u64::from(s.dropped_attributes));
    for e in s.events {
        event(buf, e);
    }
    uint(buf, 12, u64::from(s.dropped_events));
    for l in s.links {
        link(buf, l);
    }
    uint(buf, 14, u64::from(s.dropped_links));
    nested(buf, 15, |buf| {
        let (message, code) = match s.status {
            Status::Unset => ("", 0),
            Status::Ok => ("", 1),
            Status::Error { description } => (description.as_ref(), 2),
        };
        scrubbed_string(buf, 2, message);
        uint(buf, 3, code);
    });
    key(buf, 16, WireType::ThirtyTwoBit);
    buf.extend_from_slice(&span_flags(s.cx, s.parent_is_remote).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_body_of_128_bytes_or_more_gets_a_wider_length() {
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let mut ours = Vec::new();
            nested(&mut ours, 2, |b| b.extend(std::iter::repeat_n(7u8, len)));
            let mut theirs = Vec::new();
            prost::encoding::bytes::encode(2, &vec![7u8; len], &mut theirs);
            assert_eq!(ours, theirs, "body of {len} bytes");
        }
    }
}
