//! Handlers, one resource per module and one verb per file.

pub mod auth;
pub mod health;
pub mod test_otel;
