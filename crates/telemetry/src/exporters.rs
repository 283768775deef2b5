//! The stock OTLP exporters (opentelemetry-otlp) of each signal, built from the configuration,
//! and where a signal goes ([`target`]): the metric exporter serves both backends, the span
//! and log exporters the `sdk` backend. The gRPC metadata of `OTEL_EXPORTER_OTLP_HEADERS` is
//! shared with the fast backend's own transport.

use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};

use crate::config::{ExporterKind, OtlpProtocol, Signal, TelemetryConfig};
use crate::console::{Console, SharedWriter};
use crate::error::InitError;
use crate::export::Target;

/// An OTLP exporter of one signal for the configured protocol, endpoint, timeout and headers.
/// A macro because the three builders (`SpanExporter`, `LogExporter`, `MetricExporter`) share
/// their methods but no trait.
macro_rules! otlp_exporter {
    ($config:expr, $exporter:ty, $signal:expr) => {{
        let config: &TelemetryConfig = $config;
        let signal: Signal = $signal;
        let endpoint = config.endpoints.get(&signal).cloned().unwrap_or_default();
        let builder = <$exporter>::builder();
        let built = match config.protocol {
            OtlpProtocol::Grpc => builder
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(config.export_timeout)
                .with_metadata(grpc_metadata(&config.headers).map_err(InitError::Headers)?)
                .build(),
            p => builder
                .with_http()
                .with_protocol(if p == OtlpProtocol::HttpJson {
                    Protocol::HttpJson
                } else {
                    Protocol::HttpBinary
                })
                .with_endpoint(endpoint.clone())
                .with_timeout(config.export_timeout)
                .with_headers(config.headers.iter().cloned().collect())
                .build(),
        };
        built.map_err(|source| InitError::Exporter {
            signal: signal.as_str(),
            endpoint,
            source,
        })
    }};
}

/// The OTLP span exporter.
pub(crate) fn span_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    otlp_exporter!(config, opentelemetry_otlp::SpanExporter, Signal::Traces)
}

/// The OTLP log exporter.
pub(crate) fn log_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::LogExporter, InitError> {
    otlp_exporter!(config, opentelemetry_otlp::LogExporter, Signal::Logs)
}

/// The OTLP metric exporter (both backends).
pub(crate) fn metric_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::MetricExporter, InitError> {
    otlp_exporter!(config, opentelemetry_otlp::MetricExporter, Signal::Metrics)
}

/// The target of one signal, or `None` when its exporter is `none`.
pub(crate) fn target<E>(
    config: &TelemetryConfig,
    signal: Signal,
    console: &SharedWriter,
    otlp: impl FnOnce(&TelemetryConfig) -> Result<E, InitError>,
) -> Result<Option<Target<E>>, InitError> {
    Ok(match config.exporter(signal) {
        ExporterKind::Otlp => Some(Target::Otlp(otlp(config)?)),
        ExporterKind::File => Some(Target::File(crate::file::open_file(config, signal)?)),
        ExporterKind::Console => Some(Target::Console(Console::new(console.clone()))),
        ExporterKind::None => None,
    })
}

/// `OTEL_EXPORTER_OTLP_HEADERS` as gRPC metadata; an error names the bad header.
pub(crate) fn grpc_metadata(
    headers: &[(String, String)],
) -> Result<tonic::metadata::MetadataMap, String> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (k, v) in headers {
        let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
            .map_err(|e| format!("{k}: {e}"))?;
        metadata.insert(key, v.parse().map_err(|e| format!("{k}: {e}"))?);
    }
    Ok(metadata)
}
