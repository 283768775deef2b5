//! The job pipeline against real services: the queue contract on both adapters (Redis Streams
//! and the database), and the worker end to end with real ffmpeg, a real store and the OTLP
//! capture receiver.

// Written once here rather than on each long test.
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]

mod common;
mod lessons;
mod pipeline;
mod process;
mod queue;
