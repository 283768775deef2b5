//! What a `wait_*` timeout prints: everything that did arrive, so a failing test explains
//! itself.

use std::fmt::Write as _;

use super::model::{CapturedPoint, PointValue};
use super::{SUMMARY_ENTRIES, SUMMARY_TEXT_CHARS, Store};

pub(super) fn summarize(store: &Store, retain: bool) -> String {
    let mut out = String::new();
    let counts = store.requests;
    let _ = writeln!(
        out,
        "received {} span(s), {} log record(s), {} metric point(s) in {} accepted export \
         request(s) [grpc: traces={} metrics={} logs={}; http: traces={} metrics={} logs={}]; \
         {} rejected by set_reject",
        store.items.spans,
        store.items.log_records,
        store.items.metric_points,
        counts.total(),
        counts.grpc.traces,
        counts.grpc.metrics,
        counts.grpc.logs,
        counts.http.traces,
        counts.http.metrics,
        counts.http.logs,
        store.rejected,
    );
    if !retain {
        out.push_str("(receiver started with retain = false: contents were not kept)\n");
    }

    write_list(&mut out, "spans", &store.spans, |s| {
        format!(
            "{:?} trace={} span={} parent={} via {:?}",
            truncate(&s.name),
            s.trace_id,
            s.span_id,
            s.parent_span_id.as_deref().unwrap_or("-"),
            s.transport,
        )
    });
    write_list(&mut out, "metrics", &store.metrics, |m| {
        let values: Vec<String> = m.points.iter().take(5).map(point_summary).collect();
        format!(
            "{:?} {:?} {} point(s) [{}] via {:?}",
            truncate(&m.name),
            m.kind,
            m.points.len(),
            values.join(", "),
            m.transport,
        )
    });
    write_list(&mut out, "logs", &store.logs, |l| {
        format!(
            "[{}] {:?} trace={} via {:?}",
            if l.severity_text.is_empty() {
                l.severity_number.to_string()
            } else {
                l.severity_text.clone()
            },
            truncate(l.body.as_deref().unwrap_or("")),
            l.trace_id.as_deref().unwrap_or("-"),
            l.transport,
        )
    });
    write_list(&mut out, "refused requests", &store.problems, |p| {
        truncate(p)
    });
    out
}

fn write_list<T>(out: &mut String, title: &str, items: &[T], render: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    let skipped = items.len().saturating_sub(SUMMARY_ENTRIES);
    if skipped > 0 {
        let _ = writeln!(out, "  ... {skipped} earlier entries omitted");
    }
    for item in &items[skipped..] {
        let _ = writeln!(out, "  - {}", render(item));
    }
}

fn point_summary(point: &CapturedPoint) -> String {
    match &point.value {
        PointValue::Int(i) => i.to_string(),
        PointValue::Double(d) => d.to_string(),
        PointValue::Histogram { count, sum, .. }
        | PointValue::ExponentialHistogram { count, sum, .. } => match sum {
            Some(sum) => format!("count={count} sum={sum}"),
            None => format!("count={count}"),
        },
        PointValue::Summary { count, sum, .. } => format!("count={count} sum={sum}"),
        PointValue::Empty => "empty".to_owned(),
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(SUMMARY_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
