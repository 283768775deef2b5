//! Where a signal goes ([`target`]): OTLP, its file, the console, or nowhere. The OTLP target
//! is an [`OtlpClient`](crate::otlp_transport::OtlpClient) with its own runtime
//! ([`BlockingClient`]), used by the metric exporter on both backends and by the span and log
//! exporters of the `sdk` backend; the fast backend's pipelines use an `OtlpClient` on their
//! own export threads.

use crate::config::{ExporterKind, Signal, TelemetryConfig};
use crate::console::{Console, SharedWriter};
use crate::error::InitError;
use crate::export::Target;
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
