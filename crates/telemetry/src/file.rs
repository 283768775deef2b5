//! The file exporter: one OTLP-JSON object per line, in the OpenTelemetry Collector's
//! file-exporter format (`{"resourceSpans":[...]}`), one file per signal, rotated by size.
//!
//! The JSON comes from `opentelemetry-proto`'s serde support (hex ids, camelCase keys,
//! 64-bit integers as strings), the same types the capture receiver decodes, so the seeds'
//! `jq` recipes written against the Collector's file run unchanged here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;

use crate::config::{FileConfig, Signal};

/// A size-rotated JSON-lines file shared by the exporter and the fallback path of the OTLP
/// exporter of the same signal.
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

impl JsonLinesFile {
    pub fn open(cfg: &FileConfig, signal: Signal) -> std::io::Result<Self> {
        std::fs::create_dir_all(&cfg.dir)?;
        let path = cfg.dir.join(format!("{}.json", signal.as_str()));
        // `BytesSurpassed` rotates only between writes, and each line is one write, so a JSON
        // object is never split across files (`Bytes` would cut mid-line).
        let rotate = FileRotate::new(
            &path,
            AppendCount::new(cfg.backups),
            ContentLimit::BytesSurpassed(cfg.max_bytes as usize),
            Compression::None,
            None,
        );
        Ok(Self {
            path,
            inner: Arc::new(Mutex::new(rotate)),
        })
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
