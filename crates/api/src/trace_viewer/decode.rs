//! One line of a trace file, decoded: an OTLP/JSON `ExportTraceServiceRequest`, typed, holding
//! only what the viewer shows.
//!
//! Why not `opentelemetry-proto`'s serde types (`with-serde`), which read the app's own files
//! (they wrote them): they refuse three things the Collector's file exporter (pdata's JSON
//! marshaler) writes, and one refusal loses the whole line, every span in it:
//! - an empty attribute value as `{}` (`"value": {}`): their `AnyValue` wants one known key
//!   ("Invalid data for Value, no known keys found");
//! - an empty array or map as `{"arrayValue": {}}` / `{"kvlistValue": {}}`: pdata leaves out an
//!   empty `values`, which their `ArrayValue` / `KeyValueList` require ("missing field
//!   `values`");
//! - a NaN or infinite double as a string (`"NaN"`, `"+Inf"`, `"-Inf"`): their `doubleValue` is
//!   a plain `f64`.
//!
//! The unit test `opentelemetry_proto_still_refuses_what_the_collector_writes` checks each of
//! these against the `opentelemetry-proto` in the lock file: when it starts to fail, those types
//! can read the Collector's files and this module can go. What both follow, and this module too:
//! ids as hex strings, 64-bit integers as decimal strings (plain numbers are accepted too), enums
//! (`kind`, `status.code`) as integers, camelCase keys, unknown keys ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Attributes by key, the way the viewer's JSON shows them (`{"user.id": "u1"}`).
pub type Attributes = BTreeMap<String, AttributeValue>;

/// An attribute value without OTLP's one-key wrapper: `{"intValue": "201"}` is `201`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged, from = "AnyValue")]
pub enum AttributeValue {
    /// An `AnyValue` with nothing set (`{}`); `null` in the viewer's JSON.
    #[default]
    Empty,
    /// A string, or bytes as the base64 text the file holds.
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<AttributeValue>),
    Map(Attributes),
}

/// The spans of one line of a trace file, each with its service's name (`service.name`, or
/// `unknown_service`); `None` when the line is not an OTLP/JSON trace export (not JSON,
/// another signal, cut short). Spans without a trace or span id are left out.
pub(crate) fn spans(line: &str) -> Option<impl Iterator<Item = (String, Span)>> {
    let request: ExportRequest = serde_json::from_str(line).ok()?;
    Some(request.resource_spans.into_iter().flat_map(|rs| {
        let service = match rs.resource.attributes.get("service.name") {
            Some(AttributeValue::String(s)) => s.clone(),
            _ => "unknown_service".to_owned(),
        };
        rs.scope_spans
            .into_iter()
            .flat_map(|ss| ss.spans)
            .filter(|s| !s.trace_id.is_empty() && !s.span_id.is_empty())
            .map(move |s| (service.clone(), s))
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest {
    /// Required: a line of another signal (`resourceLogs`) is not a trace export.
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans {
    resource: Resource,
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resource {
    #[serde(deserialize_with = "key_values")]
    attributes: Attributes,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScopeSpans {
    spans: Vec<Span>,
}

/// One span as the file holds it (ids in hex, as written).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Span {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    /// Empty (or absent) on a root span.
    pub(crate) parent_span_id: String,
    pub(crate) name: String,
    pub(crate) kind: i64,
    #[serde(deserialize_with = "lenient")]
    pub(crate) start_time_unix_nano: u64,
    #[serde(deserialize_with = "lenient")]
    pub(crate) end_time_unix_nano: u64,
    #[serde(deserialize_with = "key_values")]
    pub(crate) attributes: Attributes,
    pub(crate) events: Vec<Event>,
    pub(crate) status: Status,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Event {
    #[serde(deserialize_with = "lenient")]
    pub(crate) time_unix_nano: u64,
    pub(crate) name: String,
    #[serde(deserialize_with = "key_values")]
    pub(crate) attributes: Attributes,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Status {
    pub(crate) code: i64,
    pub(crate) message: String,
}

/// OTLP's `repeated KeyValue` as a map (a later duplicate key wins).
fn key_values<'de, D: Deserializer<'de>>(d: D) -> Result<Attributes, D::Error> {
    #[derive(Deserialize)]
    struct KeyValue {
        key: String,
        #[serde(default)]
        value: AttributeValue,
    }
    let list = Vec::<KeyValue>::deserialize(d)?;
    Ok(list.into_iter().map(|kv| (kv.key, kv.value)).collect())
}

/// OTLP's `AnyValue` as written: at most one of these keys, or none (`{}`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<Lenient<i64>>,
    double_value: Option<Lenient<f64>>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KeyValueList>,
    bytes_value: Option<String>,
}

/// `values` may be left out when empty (pdata does).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ArrayValue {
    values: Vec<AttributeValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyValueList {
    #[serde(deserialize_with = "key_values")]
    values: Attributes,
}

impl From<AnyValue> for AttributeValue {
    fn from(v: AnyValue) -> Self {
        if let Some(s) = v.string_value {
            Self::String(s)
        } else if let Some(b) = v.bool_value {
            Self::Bool(b)
        } else if let Some(i) = v.int_value {
            Self::Int(i.0)
        } else if let Some(d) = v.double_value {
            Self::Double(d.0)
        } else if let Some(a) = v.array_value {
            Self::Array(a.values)
        } else if let Some(m) = v.kvlist_value {
            Self::Map(m.values)
        } else if let Some(b) = v.bytes_value {
            Self::String(b)
        } else {
            Self::Empty
        }
    }
}

/// A number as OTLP/JSON writers write it: a plain JSON number, or a string (the JSON
/// mapping's rule for 64-bit integers, and pdata's for NaN and the infinities, which
/// `f64::from_str` reads whatever their case: `NaN`, `+Inf`, `-Infinity`).
#[derive(Debug, Default, Clone, Copy)]
struct Lenient<T>(T);

fn lenient<'de, D: Deserializer<'de>, T: FromJsonNumber>(d: D) -> Result<T, D::Error> {
    Lenient::deserialize(d).map(|n| n.0)
}

trait FromJsonNumber: FromStr {
    fn from_u64(v: u64) -> Option<Self>;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
}

impl FromJsonNumber for u64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v)
    }
    fn from_i64(v: i64) -> Option<Self> {
        v.try_into().ok()
    }
}

impl FromJsonNumber for i64 {
    fn from_u64(v: u64) -> Option<Self> {
        v.try_into().ok()
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
}

impl FromJsonNumber for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

impl<'de, T: FromJsonNumber> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: FromJsonNumber> V<T> {
            fn or_invalid<E: de::Error>(
                &self,
                v: Option<T>,
                got: de::Unexpected<'_>,
            ) -> Result<T, E> {
                v.ok_or_else(|| E::invalid_value(got, self))
            }
        }
        impl<T: FromJsonNumber> Visitor<'_> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or a number in a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
                self.or_invalid(T::from_u64(v), de::Unexpected::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
                self.or_invalid(T::from_i64(v), de::Unexpected::Signed(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
                self.or_invalid(T::from_f64(v), de::Unexpected::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
                self.or_invalid(v.parse().ok(), de::Unexpected::Str(v))
            }
        }
        d.deserialize_any(V(PhantomData)).map(Lenient)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use serde_json::json;

    use super::*;

    /// One export line of one span whose only attribute has `value`.
    fn line_with(value: serde_json::Value) -> String {
        super::super::export(
            "svc",
            json!([{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00000000000000a1",
                "name": "n", "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                "attributes": [{"key": "a", "value": value}], "status": {}}]),
        )
    }

    /// What pdata's JSON marshaler writes that `opentelemetry-proto` 0.32 refuses.
    fn collector_only() -> [(serde_json::Value, AttributeValue); 5] {
        [
            (json!({}), AttributeValue::Empty),
            (json!({"arrayValue": {}}), AttributeValue::Array(vec![])),
            (
                json!({"kvlistValue": {}}),
                AttributeValue::Map(Attributes::new()),
            ),
            (
                json!({"doubleValue": "+Inf"}),
                AttributeValue::Double(f64::INFINITY),
            ),
            (
                json!({"doubleValue": "-Inf"}),
                AttributeValue::Double(f64::NEG_INFINITY),
            ),
        ]
    }

    fn the_attribute(line: &str) -> AttributeValue {
        let mut spans: Vec<_> = spans(line).expect("an export").collect();
        assert_eq!(spans.len(), 1, "{line}");
        let (_, mut span) = spans.remove(0);
        span.attributes.remove("a").expect("the attribute")
    }

    #[test]
    fn reads_what_the_collectors_file_exporter_writes() {
        for (value, want) in collector_only() {
            assert_eq!(the_attribute(&line_with(value.clone())), want, "{value}");
        }
        let nan = the_attribute(&line_with(json!({"doubleValue": "NaN"})));
        assert!(
            matches!(nan, AttributeValue::Double(d) if d.is_nan()),
            "{nan:?}"
        );
    }

    #[test]
    fn opentelemetry_proto_still_refuses_what_the_collector_writes() {
        // The same line with an ordinary value reads: the refusals below are the values'.
        let fine = line_with(json!({"stringValue": "x"}));
        assert!(serde_json::from_str::<ExportTraceServiceRequest>(&fine).is_ok());
        let nan = json!({"doubleValue": "NaN"});
        for value in collector_only().map(|(v, _)| v).into_iter().chain([nan]) {
            assert!(
                serde_json::from_str::<ExportTraceServiceRequest>(&line_with(value.clone()))
                    .is_err(),
                "opentelemetry-proto now reads {value}: see this module's doc"
            );
        }
    }

    #[test]
    fn reads_every_value_type_and_numbers_either_way() {
        for (value, want) in [
            (
                json!({"stringValue": "s"}),
                AttributeValue::String("s".into()),
            ),
            (json!({"boolValue": true}), AttributeValue::Bool(true)),
            (
                json!({"intValue": "-9007199254740993"}),
                AttributeValue::Int(-9_007_199_254_740_993),
            ),
            (json!({"intValue": 201}), AttributeValue::Int(201)),
            (json!({"doubleValue": 1.5}), AttributeValue::Double(1.5)),
            (json!({"doubleValue": 2}), AttributeValue::Double(2.0)),
            (
                json!({"bytesValue": "AAE="}),
                AttributeValue::String("AAE=".into()),
            ),
            (
                json!({"arrayValue": {"values": [{"boolValue": true}, {}]}}),
                AttributeValue::Array(vec![AttributeValue::Bool(true), AttributeValue::Empty]),
            ),
            (
                json!({"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "1"}}]}}),
                AttributeValue::Map([("k".to_owned(), AttributeValue::Int(1))].into()),
            ),
        ] {
            assert_eq!(the_attribute(&line_with(value.clone())), want, "{value}");
        }
        let numbers = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00000000000000a1",
            "startTimeUnixNano": 1_000_000_000_u64, "endTimeUnixNano": "1500000000",
            "events": [{"name": "e", "timeUnixNano": 1_200_000_000_u64}]}]}]}]});
        let (service, span) = spans(&numbers.to_string()).unwrap().next().unwrap();
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (1_000_000_000, 1_500_000_000)
        );
        assert_eq!(span.events[0].time_unix_nano, 1_200_000_000);
        assert_eq!(service, "unknown_service");
    }

    #[test]
    fn a_line_that_is_not_a_trace_export_is_none() {
        for line in [
            "not json",
            r#"{"resourceLogs": []}"#,
            r#"{"resourceSpans": ["#,
        ] {
            assert!(spans(line).is_none(), "{line}");
        }
    }
}
