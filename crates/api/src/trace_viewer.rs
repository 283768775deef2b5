//! The built-in trace viewer's reading side (seed 001's "recommended" viewer): recent traces
//! from OTLP-JSON files, the format vidscope's embedded mode and the Collector's file exporter
//! both write (one `ExportTraceServiceRequest` per line).
//!
//! It is for local and small deployments. Each request reads only the tail of each file
//! (`VIDSCOPE_TRACE_VIEWER_MAX_MB`, with rotated backups newest first until the budget is
//! spent), so memory stays bounded and old traces fall out; at scale the answer is Tempo in
//! Grafana. Spans of the API, the worker and the player's `video.session` are merged by trace id,
//! whatever file they came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use vidscope_core::config::TraceViewerSettings;

/// Rotated backups looked at per file (`traces.json.1` ... `.9`).
const MAX_BACKUPS: usize = 9;
/// Attribute keys that name a user or a lesson on the project's spans.
const USER_KEYS: &[&str] = &["user.id", "enduser.id"];
const VIDEO_KEYS: &[&str] = &["video.id", "lesson.id"];

/// How reading one configured file went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub path: String,
    /// The file (or one of its backups) was read.
    pub ok: bool,
    /// Why not, when it could not be read (a missing file is not an error: nothing yet).
    pub error: Option<String>,
    /// Files read: the file and its rotated backups.
    pub files_read: usize,
    pub bytes_read: u64,
    /// Lines that were not an OTLP-JSON trace export (skipped, counted).
    pub skipped_lines: u64,
}

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
    pub start_ns: u128,
    #[serde(skip)]
    pub end_ns: u128,
    /// Milliseconds after the trace's first span started.
    pub offset_ms: f64,
    pub duration_ms: f64,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i64,
    pub status_message: String,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub name: String,
    #[serde(skip)]
    pub time_ns: u128,
    /// Milliseconds after the trace's first span started.
    pub offset_ms: f64,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
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

/// Everything read from the sources in one pass.
pub struct Snapshot {
    pub traces: Vec<Trace>,
    pub sources: Vec<SourceStatus>,
}

/// Reads every configured source. Blocking file I/O: call it from `spawn_blocking`.
pub fn read(settings: &TraceViewerSettings) -> Snapshot {
    let mut by_trace: HashMap<String, BTreeMap<String, SpanView>> = HashMap::new();
    let mut sources = Vec::new();
    for path in &settings.files {
        sources.push(read_source(
            path,
            settings.max_bytes_per_file,
            &mut by_trace,
        ));
    }
    let mut traces: Vec<Trace> = by_trace
        .into_iter()
        .map(|(trace_id, spans)| {
            let mut spans: Vec<SpanView> = spans.into_values().collect();
            spans.sort_by_key(|s| s.start_ns);
            let t0 = spans.first().map_or(0, |s| s.start_ns);
            for s in &mut spans {
                s.offset_ms = ms(s.start_ns.saturating_sub(t0));
                for e in &mut s.events {
                    e.offset_ms = ms(e.time_ns.saturating_sub(t0));
                }
            }
            Trace { trace_id, spans }
        })
        .collect();
    // Newest first.
    traces.sort_by_key(|t| std::cmp::Reverse(t.spans.first().map_or(0, |s| s.start_ns)));
    Snapshot { traces, sources }
}

fn ms(ns: u128) -> f64 {
    ns as f64 / 1e6
}

/// The Collector's file exporter rotates `traces.json` to `traces-<UTC timestamp>.json` beside
/// it (lumberjack's naming): at most [`MAX_BACKUPS`] of them, newest first (the timestamps
/// sort as text).
fn timestamped_backups(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem), Some(ext)) = (
        path.parent(),
        path.file_stem().and_then(|s| s.to_str()),
        path.extension().and_then(|s| s.to_str()),
    ) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{stem}-");
    let suffix = format!(".{ext}");
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.len() > prefix.len() + suffix.len()
                    && n.starts_with(&prefix)
                    && n.ends_with(&suffix)
                    && n[prefix.len()..].starts_with(|c: char| c.is_ascii_digit())
            })
        })
        .map(|e| e.path())
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(MAX_BACKUPS);
    found
}

/// One configured file and its rotated backups, newest data first, within `budget` bytes.
fn read_source(
    path: &Path,
    budget: u64,
    into: &mut HashMap<String, BTreeMap<String, SpanView>>,
) -> SourceStatus {
    let mut status = SourceStatus {
        path: path.display().to_string(),
        ok: false,
        error: None,
        files_read: 0,
        bytes_read: 0,
        skipped_lines: 0,
    };
    let candidates = std::iter::once(path.to_path_buf())
        .chain((1..=MAX_BACKUPS).map(|n| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        }))
        .chain(timestamped_backups(path));
    let mut left = budget;
    for file in candidates {
        if left == 0 {
            break;
        }
        match tail(&file, left) {
            Ok(None) => continue,
            Ok(Some((text, cut))) => {
                status.files_read += 1;
                status.bytes_read += text.len() as u64;
                // A file cut short spent the whole budget: older backups are older still.
                left = if cut {
                    0
                } else {
                    left.saturating_sub(text.len() as u64)
                };
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    if !add_export(line, into) {
                        status.skipped_lines += 1;
                    }
                }
            }
            Err(e) => {
                status.error = Some(format!("{}: {e}", file.display()));
                break;
            }
        }
    }
    status.ok = status.files_read > 0;
    if status.error.is_none() && !status.ok {
        status.error = Some("no such file yet (nothing exported there)".into());
    }
    status
}

/// The last `max` bytes of `file` from the first whole line, and whether the file was longer;
/// `None` when it does not exist.
fn tail(file: &Path, max: u64) -> std::io::Result<Option<(String, bool)>> {
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    // One byte before the cut too, so a cut that falls exactly at a line start keeps that
    // line (the byte read is its preceding newline, dropped below with the partial line).
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::with_capacity((len - from) as usize);
    // `take`: the file may grow while it is read; the tail stays within its budget.
    (&mut f).take(len - from).read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        // Cut into the middle of a line (or just after a newline): drop up to the first one.
        text = text
            .split_once('\n')
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
    }
    Ok(Some((text, start > 0)))
}

/// Adds the spans of one export request; `false` when the line is not one.
fn add_export(line: &str, into: &mut HashMap<String, BTreeMap<String, SpanView>>) -> bool {
    let Ok(req) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    let Some(resource_spans) = req.get("resourceSpans").and_then(Value::as_array) else {
        return false;
    };
    for rs in resource_spans {
        let resource = attributes(&rs["resource"]["attributes"]);
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or("unknown_service")
            .to_owned();
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                let (Some(trace_id), Some(span_id)) =
                    (span["traceId"].as_str(), span["spanId"].as_str())
                else {
                    continue;
                };
                let view = SpanView {
                    service: service.clone(),
                    name: span["name"].as_str().unwrap_or("").to_owned(),
                    span_id: span_id.to_owned(),
                    parent_span_id: span["parentSpanId"]
                        .as_str()
                        .filter(|p| !p.is_empty() && p.bytes().any(|b| b != b'0'))
                        .map(str::to_owned),
                    kind: span["kind"].as_i64().unwrap_or(0),
                    start_ns: nanos(&span["startTimeUnixNano"]),
                    end_ns: nanos(&span["endTimeUnixNano"]),
                    offset_ms: 0.0,
                    duration_ms: ms(nanos(&span["endTimeUnixNano"])
                        .saturating_sub(nanos(&span["startTimeUnixNano"]))),
                    status_code: span["status"]["code"].as_i64().unwrap_or(0),
                    status_message: span["status"]["message"].as_str().unwrap_or("").to_owned(),
                    attributes: attributes(&span["attributes"]),
                    events: span["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| EventView {
                            name: e["name"].as_str().unwrap_or("").to_owned(),
                            time_ns: nanos(&e["timeUnixNano"]),
                            offset_ms: 0.0,
                            attributes: attributes(&e["attributes"]),
                        })
                        .collect(),
                };
                // A span written twice (e.g. by a retried export) is kept once.
                into.entry(trace_id.to_owned())
                    .or_default()
                    .insert(span_id.to_owned(), view);
            }
        }
    }
    true
}

/// OTLP JSON writes 64-bit integers as strings; some writers use numbers.
fn nanos(v: &Value) -> u128 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().map_or(0, u128::from),
        _ => 0,
    }
}

/// OTLP `KeyValue`s as a plain JSON object.
fn attributes(list: &Value) -> Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), any_value(&kv["value"]))))
        .collect()
}

fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = v.get("intValue") {
        // A string on the wire (64-bit); a number here when it fits.
        return i
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .map_or_else(|| i.clone(), Value::from);
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(a) = v.get("arrayValue") {
        return Value::Array(
            a["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(any_value)
                .collect(),
        );
    }
    if let Some(m) = v.get("kvlistValue") {
        return Value::Object(attributes(&m["values"]));
    }
    if let Some(b) = v.get("bytesValue") {
        return b.clone();
    }
    Value::Null
}

impl Trace {
    fn values(&self, keys: &[&str]) -> Vec<String> {
        let set: BTreeSet<String> = self
            .spans
            .iter()
            .flat_map(|s| keys.iter().filter_map(|k| s.attributes.get(*k)))
            .filter_map(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
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
                || s.attributes.get("http.response.status_code") == Some(&Value::from(401))
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
        self.root()
            .and_then(|s| s.attributes.get("http.route"))
            .and_then(Value::as_str)
            .is_some_and(|r| r == "/trace-viewer" || r.starts_with("/api/trace-viewer/"))
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
fn rfc3339(ns: u128) -> String {
    let since_epoch = std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + since_epoch).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(service: &str, spans: Value) -> String {
        serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]
        }]})
        .to_string()
    }

    #[test]
    fn merges_services_by_trace_and_reads_every_value_type() {
        let t = "0af7651916cd43dd8448eb211c80319c";
        let api = export(
            "vidscope-api",
            serde_json::json!([{"traceId": t, "spanId": "00000000000000a1", "name": "POST /api/upload",
                "kind": 2, "startTimeUnixNano": "1000000000", "endTimeUnixNano": "1500000000",
                "attributes": [{"key": "user.id", "value": {"stringValue": "u1"}},
                               {"key": "http.response.status_code", "value": {"intValue": "201"}},
                               {"key": "d", "value": {"doubleValue": 1.5}},
                               {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": true}]}}}],
                "status": {}}]),
        );
        let worker = export(
            "vidscope-worker",
            serde_json::json!([{"traceId": t, "spanId": "00000000000000b2", "parentSpanId": "00000000000000a1",
                "name": "process video.probe", "kind": 5, "startTimeUnixNano": "1200000000",
                "endTimeUnixNano": "3000000000", "status": {"code": 2, "message": "ffprobe failed"},
                "attributes": [{"key": "video.id", "value": {"stringValue": "v9"}}],
                "events": [{"name": "exception", "timeUnixNano": "2000000000", "attributes": []}]}]),
        );
        let mut map = HashMap::new();
        assert!(add_export(&api, &mut map));
        assert!(add_export(&worker, &mut map));
        assert!(!add_export("{\"resourceLogs\": []}", &mut map));
        assert!(!add_export("not json", &mut map));
        let spans: Vec<SpanView> = map.remove(t).unwrap().into_values().collect();
        let trace = Trace {
            trace_id: t.into(),
            spans,
        };
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
        let api_span = &trace
            .spans
            .iter()
            .find(|s| s.service == "vidscope-api")
            .unwrap();
        assert_eq!(api_span.attributes["http.response.status_code"], 201);
        assert_eq!(api_span.attributes["d"], 1.5);
        assert_eq!(api_span.attributes["a"], serde_json::json!([true]));

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

    #[test]
    fn a_tail_that_starts_at_a_line_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("traces.json");
        let line = |i: u32| {
            export(
                "svc",
                serde_json::json!([{"traceId": format!("{i:032x}"), "spanId": "0000000000000001",
                    "name": "n", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]),
            )
        };
        let last = line(2) + "\n";
        std::fs::write(&file, format!("{}\n{last}", line(1))).unwrap();
        let s = TraceViewerSettings {
            files: vec![file],
            max_bytes_per_file: last.len() as u64,
            grafana_url: None,
        };
        assert_eq!(
            read(&s).traces.len(),
            1,
            "the last whole line fits the budget"
        );
    }

    /// One export line holding one span of trace `i` (its id is `i` in hex), started at `i` µs.
    fn numbered_export(i: u32) -> String {
        export(
            "svc",
            serde_json::json!([{"traceId": format!("{i:032x}"), "spanId": "0000000000000001",
                "name": "n", "startTimeUnixNano": (u64::from(i) * 1000).to_string(),
                "endTimeUnixNano": (u64::from(i) * 1000 + 1).to_string()}]),
        )
    }

    /// Under compose the viewer reads the Collector's file, whose backups are named by time.
    #[test]
    fn reads_the_collectors_timestamped_backups_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("traces.json");
        let line = numbered_export;
        std::fs::write(&file, line(3) + "\n").unwrap();
        std::fs::write(
            dir.path().join("traces-2026-12-06T10-00-00.000.json"),
            line(1) + "\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("traces-2026-12-06T11-00-00.000.json"),
            line(2) + "\n",
        )
        .unwrap();
        // Not a backup of this file.
        std::fs::write(dir.path().join("traces-other.json"), line(7) + "\n").unwrap();
        let settings = TraceViewerSettings {
            files: vec![file.clone()],
            max_bytes_per_file: 1 << 20,
            grafana_url: None,
        };
        let got = read(&settings);
        let ids: Vec<String> = got.traces.iter().map(|t| t.trace_id.clone()).collect();
        assert_eq!(
            ids,
            [3, 2, 1].map(|i| format!("{i:032x}")),
            "the file and its two backups"
        );
        assert_eq!(got.sources[0].files_read, 3);
        // Within a budget of one line, only the live file is read.
        let one = read(&TraceViewerSettings {
            max_bytes_per_file: line(3).len() as u64 + 1,
            ..settings
        });
        assert_eq!(one.sources[0].files_read, 1);
    }

    #[test]
    fn reads_only_the_tail_and_the_backups_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("traces.json");
        let line = numbered_export;
        let old: String = (0..5).map(|i| line(i) + "\n").collect();
        let new: String = (5..10).map(|i| line(i) + "\n").collect();
        std::fs::write(dir.path().join("traces.json.1"), &old).unwrap();
        std::fs::write(&file, format!("{new}garbage\n")).unwrap();
        let settings = |max| TraceViewerSettings {
            files: vec![file.clone(), dir.path().join("absent.json")],
            max_bytes_per_file: max,
            grafana_url: None,
        };
        let all = read(&settings(1 << 20));
        assert_eq!(all.traces.len(), 10);
        assert_eq!(
            all.traces[0].trace_id,
            format!("{:032x}", 9),
            "newest first"
        );
        assert_eq!(all.sources[0].files_read, 2);
        assert_eq!(all.sources[0].skipped_lines, 1);
        assert!(!all.sources[1].ok);
        // A budget of about two lines keeps only the newest whole lines.
        let some = read(&settings((line(9).len() * 2 + 10) as u64));
        assert!(
            some.traces.len() < 5 && !some.traces.is_empty(),
            "{}",
            some.traces.len()
        );
        assert_eq!(some.sources[0].files_read, 1);
    }
}
