//! Why telemetry could not start: the one error of both backends' set-up (`init`, `sdk`).

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot build the OTLP {signal} exporter for {endpoint}: {reason}")]
    Exporter {
        signal: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("cannot open the telemetry file for {signal} in {dir}: {source}")]
    File {
        signal: &'static str,
        dir: String,
        source: std::io::Error,
    },
    #[error("invalid OTEL_EXPORTER_OTLP_HEADERS: {0}")]
    Headers(String),
    #[error("cannot start the {signal} export thread: {source}")]
    ExportThread {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}
