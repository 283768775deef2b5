//! The trace viewer's reading side (`vidscope_api::trace_viewer`): OTLP-JSON trace files, a
//! live one and a rotated backup, read from the end within a byte budget. Never panics; never
//! reads more than its budget; what it lists is consistent (counts, order, a detail for every
//! trace listed) and serialises to JSON.
//!
//! Input: `<budget> <limit> <errors only: 0|1> [service]` on the first line, then the live
//! file; a line `--backup--` starts the backup file.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vidscope_api::trace_viewer::{Filter, read};
use vidscope_core::config::TraceViewerSettings;

struct Input<'a> {
    live: &'a [u8],
    backup: Option<&'a [u8]>,
    budget: u64,
    errors_only: bool,
    service: Option<String>,
    limit: usize,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Self {
        let (line, files) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (data, &[][..]),
        };
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
        let (budget, limit, errors_only) = (number(), number(), number());
        let service = words.next().map(str::to_owned);
        const MARK: &[u8] = b"\n--backup--\n";
        let (live, backup) = match files.windows(MARK.len()).position(|w| w == MARK) {
            Some(i) => (&files[..i + 1], Some(&files[i + MARK.len()..])),
            None => (files, None),
        };
        Input {
            live,
            backup,
            budget: budget.unwrap_or(1 << 16).min(1 << 20),
            errors_only: errors_only == Some(1),
            service,
            limit: limit.unwrap_or(20).min(1000) as usize,
        }
    }
}

/// A directory of the process's own, in memory when /dev/shm is there.
fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let live: PathBuf = dir().path().join("traces.json");
    let backup = dir().path().join("traces.json.1");
    std::fs::write(&live, input.live).unwrap();
    match input.backup {
        Some(b) => std::fs::write(&backup, b).unwrap(),
        None => {
            let _ = std::fs::remove_file(&backup);
        }
    }
    let budget = input.budget;
    let settings = TraceViewerSettings {
        files: vec![live],
        max_bytes_per_file: budget,
        grafana_url: Some("http://grafana.test:3000".into()),
    };
    let snapshot = read(&settings);
    let source = &snapshot.sources[0];
    assert!(
        source.bytes_read <= budget,
        "read {} bytes within a budget of {budget}",
        source.bytes_read
    );
    assert!(source.files_read <= 2);
    let starts: Vec<u64> = snapshot
        .traces
        .iter()
        .map(|t| t.spans.first().map_or(0, |s| s.start_ns))
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {starts:?}"
    );
    for t in &snapshot.traces {
        assert!(!t.spans.is_empty());
        assert!(t.spans.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    }
    let first = snapshot.traces.first().map(|t| t.trace_id.clone());
    let filter = Filter {
        service: input.service.clone(),
        errors_only: input.errors_only,
        limit: input.limit,
        ..Filter::default()
    };
    let list = snapshot.list(&filter, settings.grafana_url.as_deref());
    assert!(list.traces.len() <= input.limit);
    assert!(list.traces.len() <= list.stats.matching);
    assert!(list.stats.matching <= list.stats.traces_read);
    assert!(list.stats.with_errors <= list.stats.matching);
    serde_json::to_string(&list).expect("the list serialises");
    if let Some(id) = first {
        let detail = read(&settings)
            .detail(&id, None)
            .expect("a trace read is found again");
        assert_eq!(detail.summary.span_count, detail.spans.len());
        serde_json::to_string(&detail).expect("the detail serialises");
    }
});
