// placeholder
pub mod otlp;
