//! Writing OTLP protobuf by hand: the field primitives, attribute values scrubbed by the
//! redaction rule, and the frame of an export request. Spans (`spans::Finished::encode`) and
//! log records (`logs::Record::encode`) are written with these straight from what was
//! recorded.
//!
//! Why by hand instead of building `opentelemetry_proto` types and letting prost encode them:
//! those types take a `String` for every attribute key and value and a `Vec` per id and per
//! attribute list, and prost then measures each nested message again at every level above
//! it. A nested message here gets a one-byte length placeholder that is widened in place when
//! its body reaches 128 bytes. Attributes and log records seldom do; a span body and a
//! request's outer levels always do, which costs one move of their bytes each.
//!
//! The bytes are exactly prost's for the converted, scrubbed span or record (unit tests in
//! `spans` and `logs` compare them); field order follows prost, which writes fields by tag
//! number.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::redact::{AttributeRule, ValueKind, attribute_rule};
use crate::redact::{REDACTED, redact_str};

fn varint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else {
        encode_varint(v, buf);
    }
}

fn key(buf: &mut Vec<u8>, tag: u32, wire: WireType) {
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
    /// A value type this encoder does not know (the API's `Value` and `Array` are
    /// non-exhaustive): never written; [`check`] finds it first.
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

/// A batch holds a value type the hand-written encoder does not know (a newer
/// `opentelemetry` added one). The pipeline then encodes that batch with prost through
/// `opentelemetry-proto`, which converts every type its release knows: the data is sent, never
/// written as an empty value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute {key:?} has a value type the protobuf writer does not know")]
pub(crate) struct Unencodable {
    pub key: String,
}

/// Whether every value in `attributes` can be written by hand.
pub(crate) fn check(attributes: &[KeyValue]) -> Result<(), Unencodable> {
    for kv in attributes {
        let known = match AnyRef::from(&kv.value) {
            AnyRef::Unknown => false,
            AnyRef::Array(a) => matches!(
                a,
                Array::Bool(_) | Array::I64(_) | Array::F64(_) | Array::String(_)
            ),
            _ => true,
        };
        if !known {
            return Err(Unencodable {
                key: kv.key.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

/// The body of an `AnyValue`, by the redaction rule for its key.
fn any_value(buf: &mut Vec<u8>, value: AnyRef<'_>, rule: AttributeRule) {
    match value {
        AnyRef::Bool(b) => {
            key(buf, 2, WireType::Varint);
            varint(buf, u64::from(b));
        }
        _ if rule == AttributeRule::Replace => any_string(buf, REDACTED),
        AnyRef::Int(i) => {
            key(buf, 3, WireType::Varint);
            varint(buf, i as u64);
        }
        AnyRef::Double(f) => {
            key(buf, 4, WireType::SixtyFourBit);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        AnyRef::Str(s) => any_string(buf, &redact_str(s)),
        AnyRef::Bytes(b) => bytes(buf, 7, b),
        AnyRef::Array(a) => nested(buf, 5, |buf| array(buf, a)),
        // Ruled out by `check` before a batch is written.
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
        // Ruled out by `check` before a batch is written.
        _ => {}
    }
}

/// One `KeyValue` field under `tag`, scrubbed by [`attribute_rule`].
pub(crate) fn attribute(buf: &mut Vec<u8>, tag: u32, k: &str, value: AnyRef<'_>) {
    nested(buf, tag, |buf| {
        string(buf, 1, k);
        let kind = match value {
            AnyRef::Bool(_) => ValueKind::Bool,
            AnyRef::Int(_) | AnyRef::Double(_) => ValueKind::Number,
            _ => ValueKind::Other,
        };
        nested(buf, 2, |buf| any_value(buf, value, attribute_rule(k, kind)));
    });
}

/// Repeated `KeyValue` fields under `tag`.
pub(crate) fn attributes(buf: &mut Vec<u8>, tag: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        attribute(buf, tag, kv.key.as_str(), AnyRef::from(&kv.value));
    }
}

/// An instrumentation scope as a request writes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub schema_url: &'a str,
}

/// An export request for one resource, in the shape both `ExportTraceServiceRequest` and
/// `ExportLogsServiceRequest` have:
/// `{1: {1: resource, 2: [{1: scope, 2: [item, ...], 3: scope schema}, ...], 3: schema}}`.
/// Items are grouped under their scope, scopes in order of first appearance; `item` writes
/// one item's message body.
pub(crate) fn request<'s, T>(
    resource: &Resource,
    schema_url: &str,
    items: &'s [T],
    scope: impl Fn(&'s T) -> Scope<'s>,
    item: impl Fn(&mut Vec<u8>, &T),
) -> Vec<u8> {
    let mut scopes: Vec<Scope<'s>> = Vec::new();
    for i in items {
        let s = scope(i);
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let mut buf = Vec::with_capacity(256 * items.len() + resource.encoded_len() + 64);
    nested(&mut buf, 1, |buf| {
        prost::encoding::message::encode(1, resource, buf);
        for s in scopes {
            nested(buf, 2, |buf| {
                nested(buf, 1, |buf| {
                    string(buf, 1, s.name);
                    string(buf, 2, s.version);
                });
                for i in items.iter().filter(|i| scope(i) == s) {
                    nested(buf, 2, |buf| item(buf, i));
                }
                string(buf, 3, s.schema_url);
            });
        }
        string(buf, 3, schema_url);
    });
    buf
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
