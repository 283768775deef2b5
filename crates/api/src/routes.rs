//! Handlers, one resource per module and one verb per file.

pub mod health;
pub mod test_otel;
