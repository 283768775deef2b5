//! Telemetry the browser reports about itself (seed 000's player metrics).

pub mod player;
