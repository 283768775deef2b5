//! The built-in trace viewer's reading side (seed 001's "recommended" viewer): recent traces
//! from OTLP-JSON files, the format vidscope's embedded mode and the Collector's file exporter
//! both write (one `ExportTraceServiceRequest` per line).
//!
//! It is for local and small deployments. Each request reads only the tail of each file
//! (`VIDSCOPE_TRACE_VIEWER_MAX_MB`, with rotated backups newest first until the budget is
//! spent), so memory stays bounded and old traces fall out; at scale the answer is Tempo in
//! Grafana. Spans of the API, the worker and the player's `video.session` are merged by trace id,
//! whatever file they came from.
//!
//! - [`files`]: which files, how much of each, line by line;
//! - [`decode`]: one line, typed (and why not `opentelemetry-proto`'s serde types);
//! - [`trace`]: spans merged into traces, and what the list says about each.
//!
//! The routes (`routes/trace_viewer/`) and the page (`pages/trace_viewer.rs`) only parse the
//! request and answer with what [`Snapshot::list`] and [`Snapshot::detail`] return.

mod decode;
mod files;
mod trace;

use std::collections::BTreeSet;

use serde::Serialize;
use vidscope_core::config::TraceViewerSettings;

pub use decode::{AttributeValue, Attributes};
pub use files::SourceStatus;
pub use trace::{EventView, Filter, SpanView, Trace, TraceSummary, grafana_link};

/// Everything read from the sources in one pass.
pub struct Snapshot {
    pub traces: Vec<Trace>,
    pub sources: Vec<SourceStatus>,
}

/// Reads every configured source. Blocking file I/O: call it from `spawn_blocking`.
pub fn read(settings: &TraceViewerSettings) -> Snapshot {
    let mut merge = trace::Merge::default();
    let sources = settings
        .files
        .iter()
        .map(|path| files::read_source(path, settings.max_bytes_per_file, &mut merge))
        .collect();
    Snapshot {
        traces: merge.finish(),
        sources,
    }
}

/// The list: recent traces, newest first, filtered.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceList {
    pub traces: Vec<TraceSummary>,
    /// How reading each configured file went.
    pub sources: Vec<SourceStatus>,
    pub stats: Stats,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Traces read from the files (before filtering).
    pub traces_read: usize,
    /// Traces that match the filter (before the limit).
    pub matching: usize,
    /// Of those, with at least one error span.
    pub with_errors: usize,
    /// Of those, with an authentication failure.
    pub with_auth_failures: usize,
    /// Every service seen, for the service filter.
    pub services: Vec<String>,
}

/// One trace, for the waterfall.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceDetail {
    pub summary: TraceSummary,
    /// Oldest first; offsets are from the first span's start.
    pub spans: Vec<SpanView>,
}

impl Snapshot {
    /// The traces that match `filter` (the viewer's own requests left out), at most
    /// `filter.limit`, with counts over all that match; `grafana` links each to Explore.
    pub fn list(self, filter: &Filter, grafana: Option<&str>) -> TraceList {
        let services: BTreeSet<&str> = self
            .traces
            .iter()
            .flat_map(|t| t.spans.iter().map(|s| s.service.as_str()))
            .collect();
        let matching: Vec<TraceSummary> = self
            .traces
            .iter()
            .filter(|t| !t.is_the_viewers_own() && t.matches(filter))
            .map(|t| t.summary(grafana))
            .collect();
        let stats = Stats {
            traces_read: self.traces.len(),
            matching: matching.len(),
            with_errors: matching.iter().filter(|s| s.error_count > 0).count(),
            with_auth_failures: matching.iter().filter(|s| s.auth_failure).count(),
            services: services.into_iter().map(str::to_owned).collect(),
        };
        TraceList {
            traces: matching.into_iter().take(filter.limit).collect(),
            sources: self.sources,
            stats,
        }
    }

    /// Every span of `trace_id`; `None` when the files do not (or no longer) hold it.
    pub fn detail(self, trace_id: &str, grafana: Option<&str>) -> Option<TraceDetail> {
        let trace = self.traces.into_iter().find(|t| t.trace_id == trace_id)?;
        Some(TraceDetail {
            summary: trace.summary(grafana),
            spans: trace.spans,
        })
    }
}

/// A test's export line: `spans` (OTLP JSON) of one `service`.
#[cfg(test)]
fn export(service: &str, spans: serde_json::Value) -> String {
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]
    }]})
    .to_string()
}
