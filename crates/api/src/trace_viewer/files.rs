//! The trace files on disk: each configured file with its rotated backups, newest first,
//! read from the end within a byte budget, line by line.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::decode;
use super::trace::Merge;

/// Rotated backups looked at per file (`traces.json.1` ... `.9`).
const MAX_BACKUPS: usize = 9;

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
    /// The files' bytes read as lines (from the first whole line of a file cut by the budget):
    /// at most `VIDSCOPE_TRACE_VIEWER_MAX_MB`.
    pub bytes_read: u64,
    /// Lines that were not an OTLP-JSON trace export (skipped, counted).
    pub skipped_lines: u64,
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
pub(crate) fn read_source(path: &Path, budget: u64, into: &mut Merge) -> SourceStatus {
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
            Ok(Some(Tail { text, bytes, cut })) => {
                status.files_read += 1;
                status.bytes_read += bytes;
                // A file cut short spent the whole budget: older backups are older still.
                left = if cut { 0 } else { left.saturating_sub(bytes) };
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match decode::spans(line) {
                        Some(spans) => spans.for_each(|(service, span)| into.add(service, span)),
                        None => status.skipped_lines += 1,
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

/// The end of a file, from its first whole line.
struct Tail {
    /// Decoded lossily: a line with invalid UTF-8 is skipped later as not JSON.
    text: String,
    /// The file's bytes that `text` holds (not `text.len()`: an invalid byte decodes to three).
    bytes: u64,
    /// Whether the file was longer than the budget.
    cut: bool,
}

/// The last `max` bytes of `file` from the first whole line; `None` when it does not exist.
fn tail(file: &Path, max: u64) -> std::io::Result<Option<Tail>> {
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
    let kept = if start > 0 {
        // Cut into the middle of a line (or just after a newline): drop up to the first one.
        bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |i| &bytes[i + 1..])
    } else {
        &bytes[..]
    };
    Ok(Some(Tail {
        text: String::from_utf8_lossy(kept).into_owned(),
        bytes: kept.len() as u64,
        cut: start > 0,
    }))
}

#[cfg(test)]
mod tests {
    use vidscope_core::config::TraceViewerSettings;

    use super::super::{export, read};

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

    /// Found by the `trace_viewer` fuzz target: `bytesRead` counted the text after lossy UTF-8
    /// decoding, where each invalid byte is three, so a file within the budget was reported
    /// (and charged against the budget) as several times larger.
    #[test]
    fn bytes_read_are_the_files_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("traces.json");
        let mut bytes = vec![0xFF; 100];
        bytes.push(b'\n');
        bytes.extend_from_slice(numbered_export(1).as_bytes());
        bytes.push(b'\n');
        std::fs::write(&file, &bytes).unwrap();
        let budget = bytes.len() as u64;
        let got = read(&TraceViewerSettings {
            files: vec![file],
            max_bytes_per_file: budget,
            grafana_url: None,
        });
        assert_eq!(got.sources[0].bytes_read, budget, "the whole file, once");
        assert_eq!(got.sources[0].skipped_lines, 1);
        assert_eq!(got.traces.len(), 1);
        // Cut inside the invalid bytes: what is kept starts at the first whole line.
        let cut = read(&TraceViewerSettings {
            files: got.sources.iter().map(|s| s.path.clone().into()).collect(),
            max_bytes_per_file: budget - 50,
            grafana_url: None,
        });
        assert_eq!(
            cut.sources[0].bytes_read,
            numbered_export(1).len() as u64 + 1
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
