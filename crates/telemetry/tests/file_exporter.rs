//! The file exporter on a disk that fills up (issue 27, defect 4), on a real filesystem: a
//! tmpfs of 1 MiB mounted for the test (so the test runs as root, as the test command does).
//!
//! The child (this binary's `child` test, idle unless `VIDSCOPE_TEST_CHILD` is set) writes
//! every signal to files on that filesystem in three phases, flushing after each: with room,
//! with the filesystem filled (a filler file takes all but two pages, so a batch's line is
//! cut short), and after the filler is deleted. Then it prints its export counters. Before
//! the fix the cut-short line stayed in the file and the next batch was glued onto it.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{json_lines, print_stats, run_child, stats_line, work};
use vidscope_telemetry::TelemetryConfig;

/// Spans (each with one log record) per phase: one batch, a line of ~60 KB per signal, far
/// more than the room left when the disk is full.
const PER_PHASE: i64 = 200;

/// The phases, in order; a span's `round` is its phase's index × 1000 plus its number.
const PHASES: [&str; 3] = ["room", "full", "freed"];

/// The child's side. See the module documentation.
#[test]
fn child() {
    let Ok(scenario) = std::env::var("VIDSCOPE_TEST_CHILD") else {
        return;
    };
    assert_eq!(scenario, "disk-full");
    let mount = PathBuf::from(std::env::var("VIDSCOPE_TEST_MOUNT").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = TelemetryConfig::new("vidscope-test").from_env().unwrap();
        let guard = vidscope_telemetry::init(&config).unwrap();
        let filler = mount.join("filler");
        for (phase, name) in PHASES.iter().enumerate() {
            if *name == "full" {
                fill(&filler);
            }
            if *name == "freed" {
                std::fs::remove_file(&filler).unwrap();
            }
            (0..PER_PHASE).for_each(|i| work(phase as i64 * 1000 + i));
            guard.metrics().test_otel_requests.add(1, &[]);
            guard.flush().await;
        }
        guard.shutdown().await;
        print_stats(guard.stats());
    });
}

/// Fills the filesystem with `path`, then gives two pages back: a line longer than that is
/// written in part before the write fails, the case that corrupted the files.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("fill: {e}"),
        }
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(8192)).unwrap();
}

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every line of every file under `dir`, parsed; a line that is not JSON fails the test.
fn parsed_lines(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends in the middle of a line"
        );
        let lines = text
            .lines()
            .enumerate()
            .map(|(n, line)| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    let start: String = line.chars().take(120).collect();
                    panic!("{name} line {}: not JSON ({e}): {start}…", n + 1)
                })
            })
            .collect();
        files.insert(name, lines);
    }
    files
}

/// The `round` of every span named `work` (traces) or of every record (logs) in `lines`.
fn rounds(lines: &[Value], items: &str) -> Vec<i64> {
    let (outer, inner, list) = match items {
        "spans" => ("resourceSpans", "scopeSpans", "spans"),
        _ => ("resourceLogs", "scopeLogs", "logRecords"),
    };
    let mut out = Vec::new();
    for line in lines {
        for r in line[outer].as_array().into_iter().flatten() {
            for s in r[inner].as_array().into_iter().flatten() {
                for item in s[list].as_array().into_iter().flatten() {
                    let round = item["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|kv| kv["key"] == "round")
                        .and_then(|kv| kv["value"]["intValue"].as_str()?.parse::<i64>().ok());
                    out.extend(round);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// A full disk costs whole batches, counted, and one warning per file; writing resumes by
/// itself when space returns; every line of every file stays JSON.
fn a_full_disk_drops_whole_batches_and_writing_resumes(backend: &'static str) {
    let root = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(root.path().join("disk"), "1m");
    let dir = mount.0.join("telemetry");
    let vars = [
        ("OTEL_TRACES_EXPORTER", "file".to_owned()),
        ("OTEL_METRICS_EXPORTER", "file".to_owned()),
        ("OTEL_LOGS_EXPORTER", "file".to_owned()),
        ("VIDSCOPE_TELEMETRY_DIR", dir.display().to_string()),
        ("VIDSCOPE_TEST_MOUNT", mount.0.display().to_string()),
        // Exports only when flushed: one batch per signal and phase.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "600000".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000".to_owned()),
        // The end of an outage is an info line; its start, a warning, shows at any level.
        ("OTEL_LOG_LEVEL", "info".to_owned()),
    ];
    let stdout = run_child("disk-full", backend, &vars);
    let stats = stats_line(&stdout);
    let files = parsed_lines(&dir);
    let expected: Vec<i64> = [0, 2]
        .into_iter()
        .flat_map(|phase| (0..PER_PHASE).map(move |i| phase * 1000 + i))
        .collect();
    for (signal, file, items) in [
        ("traces", "traces.json", "spans"),
        ("logs", "logs.json", "logs"),
    ] {
        let what = format!("{backend} {signal}");
        assert_eq!(
            rounds(&files[file], items),
            expected,
            "{what}: the phases with room, whole; none of the full one"
        );
        assert_eq!(stats[signal]["dropped"], PER_PHASE, "{what}: {stats}");
        assert_eq!(stats[signal]["exported"], 2 * PER_PHASE, "{what}: {stats}");
        let path = dir.join(file).display().to_string();
        let about = |message: &str| {
            json_lines(&stdout)
                .into_iter()
                .filter(|l| l["path"] == path.as_str() && l["message"] == message)
                .collect::<Vec<_>>()
        };
        let warned = about(
            "cannot write the telemetry file (disk full?); its batches are dropped and counted \
             in telemetry.export.dropped until a write succeeds again, which is retried with \
             every batch (logged once)",
        );
        assert_eq!(warned.len(), 1, "{what}: one warning\n{stdout}");
        assert_eq!(warned[0]["level"], "WARN");
        let resumed = about("the telemetry file is written again");
        assert_eq!(resumed.len(), 1, "{what}: resumed once\n{stdout}");
        assert_eq!(resumed[0]["lines_dropped"], 1, "{what}");
    }
    // Metrics: their lines are small and may have fitted; every line parsed above.
    assert!(files.contains_key("metrics.json"), "{backend}: {files:?}");
}

#[test]
fn a_full_disk_on_the_fast_backend() {
    a_full_disk_drops_whole_batches_and_writing_resumes("fast");
}

#[test]
fn a_full_disk_on_the_sdk_backend() {
    a_full_disk_drops_whole_batches_and_writing_resumes("sdk");
}
