//! Real-time updates over a WebSocket (seed 002 ticket 1.7).

pub mod get;
