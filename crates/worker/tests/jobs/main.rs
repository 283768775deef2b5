//! The job pipeline against real services: the queue contract on both adapters (Redis Streams
//! and the database), and the worker end to end with real ffmpeg, a real store and the OTLP
//! capture receiver.

mod common;
mod pipeline;
mod process;
mod queue;
