//! The file exporter: one OTLP-JSON object per line, in the OpenTelemetry Collector's
//! file-exporter format (`{"resourceSpans":[...]}`), one file per signal, rotated by size.
//!
//! The JSON comes from `opentelemetry-proto`'s serde support (hex ids, camelCase keys,
//! 64-bit integers as strings), the same types the capture receiver decodes, so the seeds'
//! `jq` recipes written against the Collector's file run unchanged here.
//!
//! **A full disk never leaves half a line.** A write cut short (`ENOSPC`, a quota) is
//! truncated back to the last whole line before the error is returned, so the next line
//! starts on a line of its own and every line stays parseable; a file found ending in an
//! unfinished line when it is opened (a process killed mid-write) is cut back the same way. While writes fail, each
//! batch is dropped and counted by the caller (`telemetry.export.dropped`) and one warning
//! is logged for the whole outage; the next write that succeeds ends it (logged once too),
//! with nobody restarting anything. The rotation is written here rather than taken from
//! the `file-rotate` crate, which could do neither: its writer hides the file, so a cut-short
//! line cannot be taken back, and when the file cannot be reopened after a rotation it
//! reports later writes as written.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;

use crate::config::EXPORT_TARGET;
use crate::config::{ExporterKind, FileConfig, Signal, TelemetryConfig};
use crate::error::InitError;

/// A size-rotated JSON-lines file shared by the exporter and the fallback path of the OTLP
/// exporter of the same signal, and by every telemetry instance of the process that writes
/// to the same path.
#[derive(Clone)]
pub struct JsonLinesFile {
    path: PathBuf,
    inner: Arc<Mutex<Rotating>>,
}

impl std::fmt::Debug for JsonLinesFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesFile")
            .field("path", &self.path)
            .finish()
    }
}

/// The files open in this process, by path. `vidscope up` runs the API's and the worker's
/// telemetry side by side (two services, two resources) into one directory: two rotators on
/// one file would each count its size and rename it under the other's feet, and their lines
/// could interleave. One handle per path keeps every line whole and one rotation in charge.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Mutex<Rotating>>>>> =
    LazyLock::new(Mutex::default);

impl JsonLinesFile {
    /// Opens the signal's file in `cfg.dir`, or shares the handle another telemetry instance
    /// of this process already holds for that path (its rotation settings then apply).
    pub fn open(cfg: &FileConfig, signal: Signal) -> std::io::Result<Self> {
        std::fs::create_dir_all(&cfg.dir)?;
        let path = cfg.dir.join(format!("{}.json", signal.as_str()));
        // The directory exists now, so the canonical form names the file whatever the spelling.
        let key = std::fs::canonicalize(&cfg.dir)?.join(format!("{}.json", signal.as_str()));
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, w| w.strong_count() > 0);
        if let Some(inner) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(Self { path, inner });
        }
        let mut rotating = Rotating {
            path: path.clone(),
            max_bytes: cfg.max_bytes,
            backups: cfg.backups,
            file: None,
            outage: None,
        };
        // Opened now so that a directory that cannot hold the file fails start-up.
        rotating.open()?;
        let inner = Arc::new(Mutex::new(rotating));
        open.insert(key, Arc::downgrade(&inner));
        Ok(Self { path, inner })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `value` as one line, whole or not at all (see the module documentation).
    pub fn write_json<T: serde::Serialize>(&self, value: &T) -> OTelSdkResult {
        let mut line = serde_json::to_vec(value)
            .map_err(|e| OTelSdkError::InternalFailure(format!("encode OTLP-JSON: {e}")))?;
        line.push(b'\n');
        let mut file = self
            .inner
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("file exporter lock poisoned".into()))?;
        file.append(&line).map_err(|e| {
            OTelSdkError::InternalFailure(format!("write {}: {e}", self.path.display()))
        })
    }

    pub fn write_metrics(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let req = ExportMetricsServiceRequest::from(metrics);
        if req
            .resource_metrics
            .iter()
            .all(|rm| rm.scope_metrics.is_empty())
        {
            return Ok(());
        }
        self.write_json(&req)
    }
}

/// One signal's live file and its numbered backups (`traces.json.1` the newest).
struct Rotating {
    path: PathBuf,
    /// The live file rotates once it has grown past this, between two lines, so a line is
    /// never split across files and a file holds at most this plus one line.
    max_bytes: u64,
    backups: usize,
    /// `None` after an open or a rotation failed: retried at the next line.
    file: Option<Live>,
    /// Lines refused since writes began to fail; `None` while they succeed.
    outage: Option<u64>,
}

/// The open live file.
struct Live {
    file: File,
    /// Its length up to the end of its last whole line.
    len: u64,
    /// A cut-short line is still in the file past `len` (its truncation failed): no line is
    /// written until it is gone.
    torn: bool,
}

impl Rotating {
    fn open(&mut self) -> std::io::Result<&mut Live> {
        let file = match self.file.take() {
            Some(live) => live,
            None => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&self.path)?;
                let len = file.metadata()?.len();
                let whole = whole_lines_len(&mut file, len)?;
                if whole < len {
                    // A process killed in the middle of a line, or an older version on a
                    // full disk: the next line must not be glued onto the fragment.
                    file.set_len(whole)?;
                    tracing::warn!(
                        target: EXPORT_TARGET,
                        path = %self.path.display(),
                        bytes = len - whole,
                        "cut off an unfinished line at the end of the telemetry file"
                    );
                }
                Live {
                    file,
                    len: whole,
                    torn: false,
                }
            }
        };
        Ok(self.file.insert(file))
    }

    /// Appends one line (ending in a newline), or nothing; logs the start and the end of an
    /// outage once each.
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self.try_append(line) {
            Ok(()) => {
                if let Some(lines) = self.outage.take() {
                    tracing::info!(
                        target: EXPORT_TARGET,
                        path = %self.path.display(),
                        lines_dropped = lines,
                        "the telemetry file is written again"
                    );
                }
                Ok(())
            }
            Err(e) => {
                match &mut self.outage {
                    Some(lines) => *lines += 1,
                    None => {
                        self.outage = Some(1);
                        tracing::warn!(
                            target: EXPORT_TARGET,
                            path = %self.path.display(),
                            error = %e,
                            "cannot write the telemetry file (disk full?); its batches are \
                             dropped and counted in telemetry.export.dropped until a write \
                             succeeds again, which is retried with every batch (logged once)"
                        );
                    }
                }
                Err(e)
            }
        }
    }

    fn try_append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let live = self.open()?;
        if live.torn {
            live.file.set_len(live.len)?;
            live.torn = false;
        }
        if live.len > self.max_bytes {
            self.rotate()?;
        }
        let live = self.open()?;
        match live.file.write_all(line) {
            Ok(()) => {
                live.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Part of the line may be in the file: take it back, or remember to.
                live.torn = live.file.set_len(live.len).is_err();
                Err(e)
            }
        }
    }

    /// Renames the live file to `.1` (and each older backup one number up, dropping the
    /// oldest); the next line opens a new live file. Renames need no free space.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let numbered = |n: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.backups == 0 {
            return std::fs::remove_file(&self.path);
        }
        for n in (1..self.backups).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(1))
    }
}

/// The length of `file` (`len` bytes) up to the end of its last whole line: the position
/// after its last newline, found by reading backwards (at once for a file that ends in one).
fn whole_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The file of `signal` in the configured directory, its failure an [`InitError`] naming both.
pub(crate) fn open_file(
    config: &TelemetryConfig,
    signal: Signal,
) -> Result<JsonLinesFile, InitError> {
    JsonLinesFile::open(&config.file, signal).map_err(|source| InitError::File {
        signal: signal.as_str(),
        dir: config.file.dir.display().to_string(),
        source,
    })
}

/// The file that takes the batches a signal's OTLP export failed to deliver, when
/// `fallback_to_file` asks for one (and the signal goes over OTLP).
pub(crate) fn fallback_file(
    config: &TelemetryConfig,
    signal: Signal,
) -> Result<Option<JsonLinesFile>, InitError> {
    if config.fallback_to_file && *config.exporter(signal) == ExporterKind::Otlp {
        open_file(config, signal).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file left with an unfinished last line (a process killed mid-write) is cut back to
    /// its last whole line when opened, so the next line starts on a line of its own.
    #[test]
    fn an_unfinished_last_line_is_cut_off_when_the_file_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FileConfig {
            dir: dir.path().to_owned(),
            max_bytes: 1 << 20,
            backups: 1,
        };
        let path = dir.path().join("logs.json");
        let pad = "y".repeat(100_000);
        std::fs::write(&path, format!("{{\"a\":1}}\n{{\"b\":\"{pad}")).unwrap();
        let file = JsonLinesFile::open(&cfg, Signal::Logs).unwrap();
        file.write_json(&serde_json::json!({"c": 3})).unwrap();
        // The fragment is longer than one backward read: the newline is found in the second.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text == "{\"a\":1}\n{\"c\":3}\n",
            "{} bytes, starting {:?}",
            text.len(),
            text.chars().take(40).collect::<String>()
        );
        // Nothing but a fragment: the file starts again empty.
        drop(file);
        std::fs::write(&path, "{\"b\":").unwrap();
        let file = JsonLinesFile::open(&cfg, Signal::Logs).unwrap();
        file.write_json(&serde_json::json!({"d": 4})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"d\":4}\n");
    }

    /// Two telemetry instances of one process (the API and the worker under `vidscope up`)
    /// write through one handle: every line stays whole, and one rotation counts them all.
    #[test]
    fn instances_writing_to_one_directory_share_the_file_and_its_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FileConfig {
            dir: dir.path().to_owned(),
            max_bytes: 4096,
            backups: 2,
        };
        let api = JsonLinesFile::open(&cfg, Signal::Traces).unwrap();
        // Another spelling of the same directory still finds the open handle.
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let worker = JsonLinesFile::open(
            &FileConfig {
                dir: dir.path().join("sub").join(".."),
                ..cfg.clone()
            },
            Signal::Traces,
        )
        .unwrap();
        assert!(
            Arc::ptr_eq(&api.inner, &worker.inner),
            "one handle per path"
        );
        let other = JsonLinesFile::open(&cfg, Signal::Logs).unwrap();
        assert!(
            !Arc::ptr_eq(&api.inner, &other.inner),
            "one handle per signal"
        );

        let writers: Vec<_> = [api, worker]
            .into_iter()
            .enumerate()
            .map(|(n, file)| {
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let pad = "x".repeat(100);
                        file.write_json(&serde_json::json!({ "writer": n, "i": i, "pad": pad }))
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut lines = 0;
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("traces.json") {
                assert!(path.is_dir() || name.starts_with("logs.json"), "{name}");
                continue;
            }
            files += 1;
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{name}: a broken line ({e}): {line}"));
                assert!(v["writer"].is_u64());
                lines += 1;
            }
        }
        // 400 lines of ~130 bytes rotate past 4 KiB many times: one rotator keeps the live
        // file and exactly `backups` older ones; two rotators would each keep their own count.
        assert_eq!(files, 3, "the live file and two backups");
        assert!(
            lines > 0 && lines < 400,
            "older lines rotated away: {lines}"
        );
    }
}
