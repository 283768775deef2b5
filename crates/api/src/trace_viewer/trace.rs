//! Spans merged into traces, whatever file and service they came from, and what the list says
//! about each trace: its root, services, marks, and the user and lesson ids on its spans.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::decode::{self, AttributeValue, Attributes};

/// Attribute keys that name a user or a lesson on the project's spans.
const USER_KEYS: &[&str] = &["user.id", "enduser.id"];
const VIDEO_KEYS: &[&str] = &["video.id", "lesson.id"];

/// One span, flattened from OTLP JSON.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpanView {
    pub service: String,
    pub name: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// OTLP `SpanKind` (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i64,
    #[serde(skip)]
    pub start_ns: u64,
    #[serde(skip)]
    pub end_ns: u64,
    /// Milliseconds after the trace's first span started.
    pub offset_ms: f64,
    pub duration_ms: f64,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i64,
    pub status_message: String,
    #[schema(value_type = Object)]
    pub attributes: Attributes,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub name: String,
    #[serde(skip)]
    pub time_ns: u64,
    /// Milliseconds after the trace's first span started.
    pub offset_ms: f64,
    #[schema(value_type = Object)]
    pub attributes: Attributes,
}

impl From<decode::Event> for EventView {
    fn from(e: decode::Event) -> Self {
        Self {
            name: e.name,
            time_ns: e.time_unix_nano,
            offset_ms: 0.0,
            attributes: e.attributes,
        }
    }
}

/// One trace: its spans, oldest first.
#[derive(Debug, Clone)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<SpanView>,
}

/// What a trace looks like in the list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_name: String,
    pub services: Vec<String>,
    /// RFC 3339, UTC.
    pub start_time: String,
    pub duration_ms: f64,
    pub span_count: usize,
    pub error_count: usize,
    /// An `auth.failed` event or a 401 answer.
    pub auth_failure: bool,
    pub user_ids: Vec<String>,
    pub video_ids: Vec<String>,
    pub grafana_url: Option<String>,
}

/// Which traces to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub video: Option<String>,
    pub user: Option<String>,
    pub service: Option<String>,
    pub errors_only: bool,
    pub limit: usize,
}

/// Spans gathered by trace id, then made into traces.
#[derive(Default)]
pub(crate) struct Merge {
    by_trace: HashMap<String, BTreeMap<String, SpanView>>,
}

impl Merge {
    /// Adds a span of `service`. A span written twice (e.g. by a retried export) is kept once.
    pub(crate) fn add(&mut self, service: String, span: decode::Span) {
        let view = SpanView {
            service,
            name: span.name,
            span_id: span.span_id,
            parent_span_id: Some(span.parent_span_id).filter(|p| p.bytes().any(|b| b != b'0')),
            kind: span.kind,
            start_ns: span.start_time_unix_nano,
            end_ns: span.end_time_unix_nano,
            offset_ms: 0.0,
            duration_ms: 0.0,
            status_code: span.status.code,
            status_message: span.status.message,
            attributes: span.attributes,
            events: span.events.into_iter().map(EventView::from).collect(),
        };
        self.by_trace
            .entry(span.trace_id)
            .or_default()
            .insert(view.span_id.clone(), view);
    }

    /// The traces, newest first; each one's spans oldest first, timed from its first span.
    pub(crate) fn finish(self) -> Vec<Trace> {
        let mut traces: Vec<Trace> = self
            .by_trace
            .into_iter()
            .map(|(trace_id, spans)| {
                let mut spans: Vec<SpanView> = spans.into_values().collect();
                spans.sort_by_key(|s| s.start_ns);
                let t0 = spans.first().map_or(0, |s| s.start_ns);
                for s in &mut spans {
                    s.offset_ms = ms(s.start_ns.saturating_sub(t0));
                    s.duration_ms = ms(s.end_ns.saturating_sub(s.start_ns));
                    for e in &mut s.events {
                        e.offset_ms = ms(e.time_ns.saturating_sub(t0));
                    }
                }
                Trace { trace_id, spans }
            })
            .collect();
        traces.sort_by_key(|t| std::cmp::Reverse(t.spans.first().map_or(0, |s| s.start_ns)));
        traces
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Trace {
    fn values(&self, keys: &[&str]) -> Vec<String> {
        let set: BTreeSet<String> = self
            .spans
            .iter()
            .flat_map(|s| keys.iter().filter_map(|k| s.attributes.get(*k)))
            .filter_map(|v| match v {
                AttributeValue::String(s) if !s.is_empty() => Some(s.clone()),
                AttributeValue::Int(i) => Some(i.to_string()),
                AttributeValue::Double(d) => Some(d.to_string()),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    }

    fn services(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.spans.iter().map(|s| s.service.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    fn auth_failure(&self) -> bool {
        self.spans.iter().any(|s| {
            s.events.iter().any(|e| e.name == "auth.failed")
                || s.attributes.get("http.response.status_code") == Some(&AttributeValue::Int(401))
        })
    }

    fn error_count(&self) -> usize {
        self.spans.iter().filter(|s| s.status_code == 2).count()
    }

    /// The span without a parent in the trace (the earliest such), else the earliest span.
    fn root(&self) -> Option<&SpanView> {
        let ids: BTreeSet<&str> = self.spans.iter().map(|s| s.span_id.as_str()).collect();
        self.spans
            .iter()
            .find(|s| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p)))
            .or_else(|| self.spans.first())
    }

    /// The viewer's own API calls (every 5 s while auto-refresh is on) would bury what it is
    /// there to show; they are left out of the list.
    pub fn is_the_viewers_own(&self) -> bool {
        match self.root().and_then(|s| s.attributes.get("http.route")) {
            Some(AttributeValue::String(r)) => {
                r == "/trace-viewer" || r.starts_with("/api/trace-viewer/")
            }
            _ => false,
        }
    }

    pub fn matches(&self, f: &Filter) -> bool {
        let has = |want: &Option<String>, found: Vec<String>| {
            want.as_ref().is_none_or(|w| found.iter().any(|v| v == w))
        };
        has(&f.video, self.values(VIDEO_KEYS))
            && has(&f.user, self.values(USER_KEYS))
            && has(&f.service, self.services())
            && (!f.errors_only || self.error_count() > 0)
    }

    pub fn summary(&self, grafana: Option<&str>) -> TraceSummary {
        let start = self.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = self.spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
        TraceSummary {
            trace_id: self.trace_id.clone(),
            root_name: self.root().map(|s| s.name.clone()).unwrap_or_default(),
            services: self.services(),
            start_time: rfc3339(start),
            duration_ms: ms(end.saturating_sub(start)),
            span_count: self.spans.len(),
            error_count: self.error_count(),
            auth_failure: self.auth_failure(),
            user_ids: self.values(USER_KEYS),
            video_ids: self.values(VIDEO_KEYS),
            grafana_url: grafana.map(|g| grafana_link(g, &self.trace_id)),
        }
    }
}

/// An Explore link opening `trace_id` in the provisioned Tempo datasource (uid `tempo`).
pub fn grafana_link(grafana: &str, trace_id: &str) -> String {
    let panes = serde_json::json!({"t": {
        "datasource": "tempo",
        "queries": [{"refId": "A", "datasource": {"type": "tempo", "uid": "tempo"},
                     "queryType": "traceql", "query": trace_id}],
        "range": {"from": "now-24h", "to": "now"},
    }});
    let panes = panes.to_string();
    let encoded = percent_encoding::utf8_percent_encode(&panes, percent_encoding::NON_ALPHANUMERIC);
    format!("{grafana}/explore?schemaVersion=1&panes={encoded}")
}

/// Unix nanoseconds as RFC 3339 UTC with milliseconds (humantime, already in the workspace).
fn rfc3339(ns: u64) -> String {
    let since_epoch = std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + since_epoch).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{decode, export};
    use super::*;

    #[test]
    fn merges_services_by_trace_and_reads_every_value_type() {
        let t = "0af7651916cd43dd8448eb211c80319c";
        let api = export(
            "vidscope-api",
            json!([{"traceId": t, "spanId": "00000000000000a1", "name": "POST /api/upload",
                "kind": 2, "startTimeUnixNano": "1000000000", "endTimeUnixNano": "1500000000",
                "attributes": [{"key": "user.id", "value": {"stringValue": "u1"}},
                               {"key": "http.response.status_code", "value": {"intValue": "201"}},
                               {"key": "d", "value": {"doubleValue": 1.5}},
                               {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": true}]}}}],
                "status": {}}]),
        );
        let worker = export(
            "vidscope-worker",
            json!([{"traceId": t, "spanId": "00000000000000b2", "parentSpanId": "00000000000000a1",
                "name": "process video.probe", "kind": 5, "startTimeUnixNano": "1200000000",
                "endTimeUnixNano": "3000000000", "status": {"code": 2, "message": "ffprobe failed"},
                "attributes": [{"key": "video.id", "value": {"stringValue": "v9"}}],
                "events": [{"name": "exception", "timeUnixNano": "2000000000", "attributes": []}]}]),
        );
        let mut merge = Merge::default();
        for line in [&api, &worker] {
            for (service, span) in decode::spans(line).unwrap() {
                merge.add(service, span);
            }
        }
        let traces = merge.finish();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        let s = trace.summary(Some("http://g:3000"));
        assert_eq!(s.root_name, "POST /api/upload");
        assert_eq!(s.services, ["vidscope-api", "vidscope-worker"]);
        assert_eq!(s.span_count, 2);
        assert_eq!(s.error_count, 1);
        assert!(!s.auth_failure);
        assert_eq!(s.user_ids, ["u1"]);
        assert_eq!(s.video_ids, ["v9"]);
        assert_eq!(s.duration_ms, 2000.0);
        assert_eq!(s.start_time, "1970-01-01T00:00:01.000Z");
        assert!(s.grafana_url.unwrap().contains(t));
        let api_span = &trace.spans[0];
        assert_eq!(api_span.service, "vidscope-api");
        let json = serde_json::to_value(api_span).unwrap();
        assert_eq!(json["attributes"]["http.response.status_code"], 201);
        assert_eq!(json["attributes"]["d"], 1.5);
        assert_eq!(json["attributes"]["a"], json!([true]));
        let worker_span = &trace.spans[1];
        assert_eq!(
            (worker_span.offset_ms, worker_span.duration_ms),
            (200.0, 1800.0)
        );
        assert_eq!(worker_span.events[0].offset_ms, 1000.0);

        let f = |user: Option<&str>, errors_only| Filter {
            user: user.map(str::to_owned),
            errors_only,
            limit: 10,
            ..Filter::default()
        };
        assert!(trace.matches(&f(Some("u1"), true)));
        assert!(!trace.matches(&f(Some("u2"), false)));
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2026-12-04T01:02:03.456Z
        assert_eq!(
            rfc3339(1_796_346_123_456_000_000),
            "2026-12-04T01:02:03.456Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
