//! Where a signal goes ([`target`]): OTLP, its file, the console, or nowhere; and the metric
//! exporter of both backends, as the SDK's periodic reader sees it. The OTLP target
//! is an [`OtlpClient`](crate::otlp_transport::OtlpClient) with its own runtime
//! ([`BlockingClient`]), used by the metric exporter on both backends and by the span and log
//! exporters of the `sdk` backend; the fast backend's pipelines use an `OtlpClient` on their
//! own export threads.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

use crate::config::{ExporterKind, Signal, TelemetryConfig};
use crate::console::{Console, SharedWriter};
use crate::error::InitError;
use crate::export::{Guarded, Target};
use crate::otlp_transport::BlockingClient;

/// The target of one signal, or `None` when its exporter is `none`.
pub(crate) fn target(
    config: &TelemetryConfig,
    signal: Signal,
    console: &SharedWriter,
) -> Result<Option<Target<BlockingClient>>, InitError> {
    Ok(match config.exporter(signal) {
        ExporterKind::Otlp => Some(Target::Otlp(BlockingClient::new(config, signal)?)),
        ExporterKind::File => Some(Target::File(crate::file::open_file(config, signal)?)),
        ExporterKind::Console => Some(Target::Console(Console::new(console.clone()))),
        ExporterKind::None => None,
    })
}

impl PushMetricExporter for Guarded<BlockingClient> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        // Labels are limited to the catalog's allow-list by the views, so no redaction here.
        let n: usize = metrics.scope_metrics().map(|s| s.metrics().count()).sum();
        match &self.target {
            Target::File(f) => {
                let written = f.write_metrics(metrics);
                self.stats.record_written(Signal::Metrics, n, &written);
                Ok(())
            }
            Target::Console(c) => {
                let r = c.write(&ExportMetricsServiceRequest::from(metrics));
                self.settle(Signal::Metrics, n, r, |_| {
                    Err(OTelSdkError::InternalFailure(String::new()))
                })
            }
            Target::Otlp(client) => {
                let sent = client
                    .send(&ExportMetricsServiceRequest::from(metrics))
                    .map_err(OTelSdkError::InternalFailure);
                self.settle_sent(Signal::Metrics, n, sent, |f| f.write_metrics(metrics))
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
