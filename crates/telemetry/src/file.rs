//! The file exporter: one OTLP-JSON object per line, in the OpenTelemetry Collector's
//! file-exporter format (`{"resourceSpans":[...]}`), one file per signal, rotated by size.
//!
//! The JSON comes from `opentelemetry-proto`'s serde support (hex ids, camelCase keys,
//! 64-bit integers as strings), the same types the capture receiver decodes, so the seeds'
//! `jq` recipes written against the Collector's file run unchanged here.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;

use crate::config::{ExporterKind, FileConfig, Signal, TelemetryConfig};
use crate::error::InitError;

/// A size-rotated JSON-lines file shared by the exporter and the fallback path of the OTLP
/// exporter of the same signal, and by every telemetry instance of the process that writes
/// to the same path.
#[derive(Clone)]
pub struct JsonLinesFile {
    path: PathBuf,
    inner: Arc<Mutex<FileRotate<AppendCount>>>,
}

impl std::fmt::Debug for JsonLinesFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesFile")
            .field("path", &self.path)
            .finish()
    }
}

type Rotating = Mutex<FileRotate<AppendCount>>;

/// The files open in this process, by path. `vidscope up` runs the API's and the worker's
/// telemetry side by side (two services, two resources) into one directory: two rotators on
/// one file would each count its size and rename it under the other's feet, and their lines
/// could interleave. One handle per path keeps every line whole and one rotation in charge.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Rotating>>>> = LazyLock::new(Mutex::default);

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
        // `BytesSurpassed` rotates only between writes, and each line is one write, so a JSON
        // object is never split across files (`Bytes` would cut mid-line).
        let rotate = FileRotate::new(
            &path,
            AppendCount::new(cfg.backups),
            ContentLimit::BytesSurpassed(cfg.max_bytes as usize),
            Compression::None,
            None,
        );
        let inner = Arc::new(Mutex::new(rotate));
        open.insert(key, Arc::downgrade(&inner));
        Ok(Self { path, inner })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write_json<T: serde::Serialize>(&self, value: &T) -> OTelSdkResult {
        let mut line = serde_json::to_vec(value)
            .map_err(|e| OTelSdkError::InternalFailure(format!("encode OTLP-JSON: {e}")))?;
        line.push(b'\n');
        let mut file = self
            .inner
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("file exporter lock poisoned".into()))?;
        file.write_all(&line)
            .and_then(|_| file.flush())
            .map_err(|e| {
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
